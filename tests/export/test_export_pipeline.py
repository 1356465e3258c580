"""`shadow-export` end to end on tiny random bases (Llama / Qwen2 / Qwen3) with the SmolLM2 tokenizer and chat
template: the directory it writes runs in the runtime, every check is in report.json, quantized exports are chosen
and measured, and a failed or refused export leaves OUT_DIR exactly as it was."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")

from peft import ShadowConfig, get_peft_model  # noqa: E402
from shadow_edge.export import ExportFailed, ExportOptions, export  # noqa: E402
from shadow_edge.export.checkpoint import CheckpointError  # noqa: E402
from shadow_edge.export.cli import main as export_main  # noqa: E402
from shadow_edge.export.output_dir import OutputDirError  # noqa: E402
from shadow_edge.runtime.commander import Commander  # noqa: E402
from shadow_edge.runtime.manifest import load_manifest  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    Qwen2Config,
    Qwen3Config,
)

torch.set_num_threads(1)
BASES = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    head_dim=8,
    max_position_embeddings=512,
)
FAST = dict(eval_limit=12, agreement_prompts=6, threads=1)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory, smollm2_tokenizer_dir):
    """`(base_dir, adapter_dir)` for an architecture and task: a random base with the real SmolLM2 tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    cache = {}

    def make(arch: str, task: str = "CAUSAL_LM"):
        if (arch, task) in cache:
            return cache[arch, task]
        root = tmp_path_factory.mktemp(f"{arch}-{task.lower()}")
        torch.manual_seed(len(cache))
        config = BASES[arch](
            **TINY,
            vocab_size=len(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        if task == "SEQ_CLS":
            config.num_labels = 3
            base = AutoModelForSequenceClassification.from_config(config)
        else:
            base = AutoModelForCausalLM.from_config(config)
        base.save_pretrained(root / "base")
        tokenizer.save_pretrained(root / "base")
        model = get_peft_model(base, ShadowConfig(task_type=task, shadow_num_hidden_layers=1))
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "shadow" in name:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.2)
        model.save_pretrained(root / "adapter")
        cache[arch, task] = (str(root / "base"), str(root / "adapter"))
        return cache[arch, task]

    return make


def read_report(directory) -> dict:
    return json.loads((directory / "report.json").read_text())


@pytest.mark.parametrize("arch", sorted(BASES))
def test_fp32_detached_export_runs_in_the_runtime(arch, tiny_pair, tmp_path):
    base, adapter = tiny_pair(arch)
    out = tmp_path / "model"
    result = export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), **FAST))
    assert result.passed
    manifest = load_manifest(out)  # every file's sha256 verified
    assert (manifest.mode, manifest.precision, manifest.raw["task"]) == ("detached", "fp32", "causal_lm")
    assert manifest.raw["head"]["kind"] == "action" and manifest.raw["head"]["size"] < 1000
    assert manifest.raw["architecture"]["model_type"] == arch
    assert manifest.raw["source"]["adapter"].endswith("adapter")
    assert {"decoder.onnx", "tokenizer.json", "chat_template.jinja", "report.json"} <= set(
        manifest.raw["files"]
    )
    checks = read_report(out)["checks"]
    assert checks["fp32_logits"]["max_abs_logit_diff"] <= 1e-4
    for name in ("prompt_tokenization", "onnx_vs_torch_programs", "action_head_vs_full_head"):
        assert checks[name]["passed"], checks[name]
    assert not list(tmp_path.glob("*.partial-*"))
    result = Commander(out, threads=1).run("walk forward two metres").to_json()
    assert result["route"] in ("robot", "remote", "reject") and "latency_ms" in result


@pytest.mark.parametrize(("precision", "method"), [("int8", "dynamic"), ("int8", "nbits"), ("int4", None)])
def test_quantized_export_is_measured_against_fp32(precision, method, tiny_pair, tmp_path):
    base, adapter = tiny_pair("qwen3")
    out = tmp_path / "model"
    options = ExportOptions(
        base=base, adapter=adapter, out_dir=str(out), precision=precision, max_accuracy_loss=100.0, **FAST
    )
    if method:
        options.int8_method = method
    export(options)
    manifest = load_manifest(out)
    assert manifest.precision == precision
    report = read_report(out)
    (attempt,) = report["quantization"]["attempts"]
    assert attempt["int8_method"] == method
    assert attempt["quantize"]["size_ratio"] < 0.5
    assert set(report["programs"]["accuracy"]) == {"fp32", precision}
    assert report["checks"]["quantized_accuracy"]["max_loss_points"] == 100.0
    assert "decoder.onnx" in manifest.raw["files"] and not (out / ".work").exists()
    Commander(out, threads=1).run("sit down")


def test_auto_int8_falls_back_when_dynamic_misses_the_bar(tiny_pair, tmp_path):
    """With a bar no kernel can miss by less (-100 points: quantized must *gain* 100 points), both are tried and
    the export fails, saying why, without writing OUT_DIR."""
    base, adapter = tiny_pair("llama")
    out = tmp_path / "model"
    options = ExportOptions(base=base, adapter=adapter, out_dir=str(out), precision="int8", **FAST)
    options.max_accuracy_loss = -100.0
    with pytest.raises(ExportFailed, match="quantized_accuracy") as info:
        export(options)
    attempts = info.value.report["reports"]["detached"]["quantization"]["attempts"]
    assert [a["int8_method"] for a in attempts] == ["dynamic", "nbits"]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_both_modes(tiny_pair, tmp_path):
    base, adapter = tiny_pair("llama")
    out = tmp_path / "model"
    result = export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), mode="both", **FAST))
    assert set(result.modes) == {"detached", "attached"}
    detached, attached = load_manifest(out / "detached"), load_manifest(out / "attached")
    assert [c["name"] for c in attached.raw["architecture"]["caches"]] == ["base", "shadow"]
    assert [c["name"] for c in detached.raw["architecture"]["caches"]] == ["shadow"]
    assert (
        read_report(out)["passed"]
        and read_report(out / "attached")["checks"]["onnx_vs_torch_programs"]["passed"]
    )
    result = Commander(out / "attached", threads=1).run("bark twice").to_json()
    assert result["route"] in ("robot", "remote", "reject") and not result.get("error")


def test_sequence_classification_adapter(tiny_pair, tmp_path):
    base, adapter = tiny_pair("qwen2", "SEQ_CLS")
    out = tmp_path / "model"
    export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), mode="attached", **FAST))
    manifest = load_manifest(out)
    assert manifest.raw["task"] == "seq_cls" and manifest.raw["head"]["kind"] == "full"
    assert read_report(out)["checks"]["fp32_logits"]["passed"]


def test_failed_validation_leaves_the_previous_export(tiny_pair, tmp_path):
    base, adapter = tiny_pair("llama")
    out = tmp_path / "model"
    export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), **FAST))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ExportFailed, match="fp32_logits"):
        export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), atol=1e-12, rtol=0.0, **FAST))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_out_dir_with_user_files_is_refused_before_any_work(tiny_pair, tmp_path):
    base, adapter = tiny_pair("llama")
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not an export")
    with pytest.raises(OutputDirError, match="not a shadow-export output"):
        export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), **FAST))
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]


def test_adapter_for_another_base_is_refused(tiny_pair, tmp_path):
    base, _ = tiny_pair("llama")
    _, adapter = tiny_pair("qwen2", "SEQ_CLS")
    other = tmp_path / "adapter"
    shutil.copytree(adapter, other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "LORA"}))
    with pytest.raises(CheckpointError, match="not 'SHADOW'"):
        export(ExportOptions(base=base, adapter=str(other), out_dir=str(tmp_path / "out"), **FAST))
    assert not (tmp_path / "out").exists()


def test_cli_exit_codes(tiny_pair, tmp_path, capsys):
    base, adapter = tiny_pair("llama")
    out = tmp_path / "model"
    fast = ["--eval-limit", "8", "--agreement-prompts", "4", "--threads", "1"]
    assert export_main(["--base", base, "--adapter", adapter, "-o", str(out), *fast]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (
        export_main(
            ["--base", base, "--adapter", adapter, "-o", str(out), "--atol", "1e-12", "--rtol", "0", *fast]
        )
        == 1
    )
    assert "was not written" in capsys.readouterr().err
    assert export_main(["--base", str(tmp_path / "nothing"), "--adapter", adapter, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "Traceback" not in err
    assert export_main(["--base", base, "--adapter", adapter, "--int4", "--calibration", "robot-dog"]) == 2
    assert load_manifest(out).precision == "fp32"


def test_official_shadow_peft_checkpoint(tiny_pair, tmp_path):
    """A checkpoint in the official shadow-peft layout exports through the same command, both modes."""
    from shadow_edge.export.official import (
        OfficialShadowConfig,
        build_official_model,
        save_official_checkpoint,
    )

    base, _ = tiny_pair("qwen3")
    torch.manual_seed(3)
    config = OfficialShadowConfig(num_shadow_layers=1, modules_to_save=["shadow_lm_head"])
    model = build_official_model(AutoModelForCausalLM.from_pretrained(base), config, "causal_lm")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "shadow" in name:
                p.add_(torch.randn(p.shape) * 0.2)
    save_official_checkpoint(model, tmp_path / "official")
    out = tmp_path / "model"
    result = export(
        ExportOptions(base=base, adapter=str(tmp_path / "official"), out_dir=str(out), mode="both", **FAST)
    )
    assert result.passed
    for mode in ("detached", "attached"):
        manifest = load_manifest(out / mode)
        assert manifest.raw["source"]["dialect"] == "official"
        assert read_report(out / mode)["checks"]["onnx_vs_torch_programs"]["passed"]


def test_optimum_export_loads_in_ort_model_for_causal_lm(tiny_pair, tmp_path):
    from optimum.onnxruntime import ORTModelForCausalLM

    base, adapter = tiny_pair("llama")
    out = tmp_path / "model"
    export(ExportOptions(base=base, adapter=adapter, out_dir=str(out), optimum=True, **FAST))
    manifest = load_manifest(out)
    assert "optimum/genai_config.json" in manifest.raw["files"]
    report = read_report(out)
    assert report["checks"]["optimum_export"]["passed"]
    genai = json.loads((out / "optimum" / "genai_config.json").read_text())["model"]
    assert genai["decoder"]["num_hidden_layers"] == 1 and genai["type"] == "llama"
    assert genai["eos_token_id"] == manifest.special_tokens["eos"]
    model = ORTModelForCausalLM.from_pretrained(out / "optimum", use_cache=True)
    assert model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3, min_new_tokens=3).shape == (1, 6)
