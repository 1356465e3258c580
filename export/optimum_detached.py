"""The detached shadow for other runtimes: an optimum-onnx export that `ORTModelForCausalLM` loads, with an
onnxruntime-genai `genai_config.json` beside it.

The detached shadow (projection folded into the head) is an ordinary HF causal LM, so optimum's own exporter
(`text-generation-with-past`) handles it. The files are FP32 and full-vocabulary: they serve people who already run
optimum or onnxruntime-genai, not the robot (the robot's `decoder.onnx` is smaller and faster). The export is
validated by loading it with `ORTModelForCausalLM` and comparing its greedy tokens with the torch model's.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from shadow_edge.export.detached import detached_hf_model

log = logging.getLogger(__name__)

GENAI_CONFIG = "genai_config.json"
SEARCH_MAX_LENGTH = 256  # prompt + program; the robot-dog prompts are ~30 tokens, programs <= 48


def genai_config(
    onnx_path: Path, config: Any, eos_id: int, pad_id: int, bos_id: int | None
) -> dict[str, Any]:
    """onnxruntime-genai's description of a decoder-only model, with I/O names read from the ONNX file."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    names = {
        "past_key_names": "past_key_values.%d.key",
        "past_value_names": "past_key_values.%d.value",
        "present_key_names": "present.%d.key",
        "present_value_names": "present.%d.value",
    }
    for key, pattern in names.items():
        if pattern % 0 not in (inputs if key.startswith("past") else outputs):
            raise ValueError(
                f"{onnx_path}: no {pattern % 0!r}; optimum's naming changed, genai_config would be wrong"
            )
    heads = int(config.num_attention_heads)
    head_size = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    decoder_inputs = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    if "position_ids" in inputs:
        decoder_inputs["position_ids"] = "position_ids"
    return {
        "model": {
            "bos_token_id": bos_id,
            "context_length": int(getattr(config, "max_position_embeddings", 2048)),
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": onnx_path.name,
                "head_size": int(head_size),
                "hidden_size": int(config.hidden_size),
                "inputs": {
                    **decoder_inputs,
                    "past_key_names": names["past_key_names"],
                    "past_value_names": names["past_value_names"],
                },  # fmt: skip
                "outputs": {
                    "logits": "logits",
                    "present_key_names": names["present_key_names"],
                    "present_value_names": names["present_value_names"],
                },  # fmt: skip
                "num_attention_heads": heads,
                "num_hidden_layers": int(config.num_hidden_layers),
                "num_key_value_heads": int(getattr(config, "num_key_value_heads", None) or heads),
            },
            "eos_token_id": eos_id,
            "pad_token_id": pad_id,
            "type": config.model_type,
            "vocab_size": int(config.vocab_size),
        },
        "search": {
            "do_sample": False,
            "early_stopping": True,
            "max_length": SEARCH_MAX_LENGTH,
            "min_length": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": False,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


def optimum_export_checkpoint(source: Path, out_dir: Path) -> None:
    """optimum-onnx's export of an HF causal-LM checkpoint directory: one merged decoder with past K/V, FP32."""
    import optimum.exporters.onnx as optimum_onnx

    with warnings.catch_warnings():  # the tracer's shape warnings are about cases optimum handles itself
        warnings.simplefilter("ignore")
        optimum_onnx.main_export(
            str(source), output=out_dir, task="text-generation-with-past", do_validation=False
        )


def export_optimum_detached(
    model: Any, tokenizer: Any, out_dir: Path, prompts: list[list[int]], eos_id: int, pad_id: int
) -> dict[str, Any]:
    """Write the optimum export + genai_config.json into `out_dir` and check it against torch; return a report."""
    from optimum.onnxruntime import ORTModelForCausalLM

    hf_model = detached_hf_model(model).eval()
    work = out_dir.parent / f".{out_dir.name}-hf"
    shutil.rmtree(work, ignore_errors=True)
    try:
        hf_model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        optimum_export_checkpoint(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    onnx_files = sorted(out_dir.glob("*.onnx"))
    if len(onnx_files) != 1:
        raise ValueError(
            f"{out_dir}: optimum wrote {len(onnx_files)} ONNX files; expected one merged decoder"
        )
    config = genai_config(onnx_files[0], hf_model.config, eos_id, pad_id, tokenizer.bos_token_id)
    (out_dir / GENAI_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    ort_model = ORTModelForCausalLM.from_pretrained(out_dir, use_cache=True, provider="CPUExecutionProvider")
    same = 0
    for ids in prompts:
        input_ids = torch.tensor([ids])
        kwargs = dict(max_new_tokens=12, do_sample=False, eos_token_id=eos_id, pad_token_id=pad_id)
        with torch.inference_mode():
            reference = hf_model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
            exported = ort_model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        same += int(torch.equal(reference, exported))
    log.info("optimum export: greedy tokens equal to torch on %d/%d prompts", same, len(prompts))
    return {
        "passed": same == len(prompts),
        "dir": out_dir.name,
        "files": sorted(p.name for p in out_dir.iterdir()),
        "greedy_tokens_equal": same,
        "n": len(prompts),
        "loads_in": "optimum.onnxruntime.ORTModelForCausalLM",
    }
