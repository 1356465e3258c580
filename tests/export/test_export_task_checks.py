"""The task checks are a plug-in of the pipeline: found by name or `module:attribute`, refused with a clear error
when they are not, and what the export measures on comes from the plug-in it was given."""

from __future__ import annotations

import json

import pytest
from shadow_edge.export.task_checks import TaskChecks, load_task_checks

# a plug-in for the export test below: the robot dog's checks on three fixed examples
PLUGIN = f"{__name__}:ThreeExamples"


def test_robot_dog_is_the_registered_default():
    from shadow_edge.export import ExportOptions

    checks = load_task_checks(ExportOptions().task)
    assert isinstance(checks, TaskChecks) and checks.name == "robot-dog"
    examples = checks.eval_examples("test", 5)
    assert len(examples) == 5 and {"text", "program", "lang"} <= set(examples[0])
    assert len(checks.prompts(3)) == 3
    score = checks.score([e["program"] for e in examples], examples)
    assert score["accuracy"] == 1.0 and score["n"] == 5
    assert "action_language" in checks.manifest_fields()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("robot-cat", "unknown task 'robot-cat'"),
        ("no_such_module_xyz:Checks", "cannot load"),
        ("json:JSONDecoder", "does not give a TaskChecks"),
        ("json:dumps", r"json:dumps\(\) failed \(TypeError"),
    ],
)
def test_bad_task_names_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        load_task_checks(name)


def _robot_dog():
    from shadow_edge.tasks.robot_dog.export_checks import RobotDogChecks

    return RobotDogChecks


def ThreeExamples():  # noqa: N802 -- a factory named like the class it stands for
    class Three(_robot_dog()):
        name = "three"

        def eval_examples(self, split, limit):
            return [
                {"text": "sit down", "program": "sit", "lang": "en"},
                {"text": "stand up", "program": "stand_up", "lang": "en"},
                {"text": "bark twice", "program": "bark n=2", "lang": "en"},
            ]

    return Three()


def test_export_measures_on_the_plug_in_it_was_given(tmp_path, smollm2_tokenizer_dir):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")
    from peft import ShadowConfig, get_peft_model
    from shadow_edge.export import ExportOptions, export
    from tiny_models import FAMILIES, tiny_kwargs
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    kwargs = {**tiny_kwargs(layers=2, vocab_size=len(tokenizer)), "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}  # fmt: skip
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(FAMILIES["llama"](**kwargs))
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    get_peft_model(base, ShadowConfig(task_type="CAUSAL_LM", shadow_num_hidden_layers=1)).save_pretrained(
        tmp_path / "adapter"
    )
    out = tmp_path / "model"
    options = ExportOptions(base=str(tmp_path / "base"), adapter=str(tmp_path / "adapter"), out_dir=str(out),
                            task=PLUGIN, agreement_prompts=2, threads=1)  # fmt: skip
    result = export(options)
    report = json.loads((out / "report.json").read_text())
    assert report["programs"]["eval_examples"] == 3
    assert result.modes["detached"].programs.texts == ["sit down", "stand up", "bark twice"]
    with pytest.raises(ValueError, match="unknown task"):
        export(
            ExportOptions(base=options.base, adapter=options.adapter, out_dir=str(tmp_path / "x"), task="cat")
        )
    assert not (tmp_path / "x").exists()
