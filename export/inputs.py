"""The export's inputs: checked before any model is loaded, then loaded (the base with its adapter attached)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadow_edge.export import checkpoint
from shadow_edge.export.base_model import resolve_base
from shadow_edge.export.options import CHAT_MODE, DEFAULT_ADAPTER, ExportOptions


@dataclass(frozen=True)
class Inputs:
    base_dir: Path
    adapter: checkpoint.AdapterInfo | None  # None: --mode chat, the base alone
    base: checkpoint.BaseInfo
    default_base: bool


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # a peft PeftModel or an official OfficialShadowModel, float32, eval mode
    tokenizer: Any  # the base's HF tokenizer
    task: str  # "causal_lm" | "seq_cls"


def check_inputs(options: ExportOptions) -> Inputs:
    """Every input problem, before any model is loaded (ValueError, or CheckpointError naming the file)."""
    options.check()
    if options.mode == CHAT_MODE:
        base_dir = resolve_base(options.base)
        return Inputs(base_dir, None, checkpoint.check_base(base_dir), options.base is None)
    adapter = checkpoint.check_adapter(options.adapter or DEFAULT_ADAPTER)
    base_dir = resolve_base(options.base)
    base = checkpoint.check_base(base_dir)
    if adapter.dialect == "peft":
        checkpoint.check_pair(base, adapter)
    else:
        from shadow_edge.export.official import check_official_pair, read_official_checkpoint

        check_official_pair(read_official_checkpoint(adapter.directory), base.config)
    if options.calibration:
        from shadow_edge.calibration.decode_steps import load_calibration_texts

        load_calibration_texts(options.calibration)  # a bad set fails now, not after the export
    return Inputs(base_dir, adapter, base, options.base is None)


def load_model(inputs: Inputs, shadow_model: str | None = None) -> LoadedModel:
    """The base (of the adapter's task) with the adapter attached, float32, eval mode, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs.base_dir)
    if inputs.adapter.dialect == "official":
        from shadow_edge.export.official import load_official_model

        # a path, not a loaded model: the loader picks the causal-LM or classifier class from the saved heads
        model = load_official_model(inputs.base_dir, inputs.adapter.directory, shadow_model=shadow_model,
                                    dtype=torch.float32)  # fmt: skip
    else:
        from peft import PeftModel

        auto = (
            AutoModelForSequenceClassification if inputs.adapter.task == "seq_cls" else AutoModelForCausalLM
        )
        base = auto.from_pretrained(inputs.base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(inputs.adapter.directory))
    model.requires_grad_(False)
    model.eval()
    return LoadedModel(model, tokenizer, model_task(model))


def model_task(model: Any) -> str:
    """ "causal_lm" or "seq_cls", read off the loaded model (either dialect)."""
    config = getattr(model, "peft_config", None)
    # peft: the adapter config's task type; the official dialect describes itself
    task = next(iter(config.values())).task_type if isinstance(config, dict) else model.shadow_parts().task
    return "seq_cls" if str(getattr(task, "value", task)).upper() == "SEQ_CLS" else "causal_lm"
