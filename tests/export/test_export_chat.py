"""`shadow-export --mode chat`: the base alone as a plain causal LM with the full vocabulary and a KV cache. The
directory loads through the runtime's manifest and session code, its answers equal PyTorch's, INT8 is held to the
agreement and size bars, and a chat export refuses what does not apply to it."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from shadow_edge.export import ExportFailed, ExportOptions, export  # noqa: E402
from shadow_edge.export.cli import main as export_main  # noqa: E402
from shadow_edge.export.validate_chat import decode  # noqa: E402
from shadow_edge.runtime.manifest import load_manifest  # noqa: E402
from shadow_edge.runtime.session import create_decoder_session  # noqa: E402
from tiny_models import FAMILIES, tiny_kwargs  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

torch.set_num_threads(1)
FAST = dict(chat_prompts=3, chat_new_tokens=4, threads=1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, smollm2_tokenizer_dir) -> str:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    kwargs = {**tiny_kwargs(layers=2, vocab_size=len(tokenizer)), "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}  # fmt: skip
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("chat-base")
    AutoModelForCausalLM.from_config(FAMILIES["qwen2"](**kwargs)).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return str(root)


def test_fp32_chat_export_loads_in_the_runtime(tiny_base, tmp_path):
    out = tmp_path / "chat"
    result = export(ExportOptions(base=tiny_base, mode="chat", out_dir=str(out), **FAST))
    assert result.passed and set(result.modes) == {"chat"}
    manifest = load_manifest(out)  # every file's sha256 verified
    assert (manifest.mode, manifest.precision, manifest.raw["task"]) == ("chat", "fp32", "causal_lm")
    vocab = manifest.raw["architecture"]["vocab_size"]
    assert manifest.raw["head"] == {"kind": "full", "size": vocab} and manifest.head_token_ids is None
    assert [c.name for c in manifest.caches] == ["base"]
    assert "action_language" not in manifest.raw and manifest.raw["source"]["adapter"] is None
    assert manifest.prompt_prefix.startswith("<|im_start|>") and manifest.prompt_suffix.endswith(
        "assistant\n"
    )
    assert {"decoder.onnx", "tokenizer.json", "chat_template.jinja", "report.json"} <= set(
        manifest.raw["files"]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["checks"]["fp32_logits"]["max_abs_logit_diff"] <= 1e-4
    assert report["checks"]["chat_greedy_vs_torch"] == {
        **report["checks"]["chat_greedy_vs_torch"],
        "passed": True,
    }
    session = create_decoder_session(manifest, providers="cpu", threads=1)
    answer = decode(session, manifest.caches, [1, 2, 3], 3, manifest.special_tokens["eos"])
    assert len(answer.tokens) >= 1 and answer.logits[0].shape == (vocab,)


def test_int8_chat_export_is_measured_against_pytorch(tiny_base, tmp_path):
    out = tmp_path / "chat-int8"
    export(
        ExportOptions(
            base=tiny_base, mode="chat", precision="int8", out_dir=str(out), chat_min_top1=0.5, **FAST
        )
    )
    manifest = load_manifest(out)
    assert (manifest.mode, manifest.precision) == ("chat", "int8")
    report = json.loads((out / "report.json").read_text())
    (attempt,) = report["quantization"]["attempts"]
    assert "MatMulNBits" in attempt["quantize"]["op_counts"] and attempt["int8_method"] == "nbits"
    assert attempt["quantize"]["kept_float"] == []  # the full-vocabulary head is 8-bit too
    agreement = report["checks"]["quantized_agreement"]
    assert agreement["passed"] and agreement["top1_agreement"] >= 0.5 and agreement["positions"] > 0
    assert report["checks"]["quantized_size"]["size_ratio"] <= 0.30


def test_failed_chat_validation_writes_nothing(tiny_base, tmp_path):
    out = tmp_path / "chat"
    options = ExportOptions(base=tiny_base, mode="chat", precision="int8", out_dir=str(out), max_size_ratio=0.01,
                            chat_min_top1=0.0, **FAST)  # fmt: skip
    with pytest.raises(ExportFailed, match="quantized_size"):
        export(options)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "extra",
    [
        ["--adapter", "adapters/robot-dog-shadow"],
        ["--int4"],
        ["--int8", "--calibration", "robot-dog"],
        ["--optimum"],
    ],
)
def test_chat_refuses_what_does_not_apply(tiny_base, tmp_path, extra, capsys):
    out = tmp_path / "chat"
    assert export_main(["--mode", "chat", "--base", tiny_base, "-o", str(out), *extra]) == 2
    assert "chat" in capsys.readouterr().err and not out.exists()
