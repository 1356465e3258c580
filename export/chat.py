"""`shadow-export --mode chat`: the frozen base alone as a plain causal LM with the full vocabulary and a KV cache,
for answering questions in text on a server (the cloud side of the robot's routing).

No adapter is involved: the base checkpoint (`--base`, default the bundled SmolLM2) is exported with the same
graph code (`decoder_graph.DetachedDecoder`, one cache named "base"), converter and quantizer as the robot's
models, and validated against PyTorch:

1. FP32: the forward and cached-decode checks every export gets (`validate_decoder`), and the greedy answers of
   the ONNX file equal PyTorch's on real prompts (`validate_chat.greedy_agreement`);
2. INT8 (8-bit blockwise MatMulNBits, as `--int8 --int8-method auto` ends up with on SmolLM2; the head and the
   embedding table are 8-bit too, since at full vocabulary they are a fifth of the model): top-1 agreement with
   PyTorch along PyTorch's own answers at least `chat_min_top1`, and at most `max_size_ratio` of the FP32 size.

The directory is loaded like any export (`runtime.manifest.load_manifest`, `runtime.session.create_decoder_session`):
manifest mode "chat", a "full" head, the chat template's prompt around the user's text, no action language.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shadow_edge.export.inputs import Inputs, LoadedModel
from shadow_edge.export.job import ModeJob
from shadow_edge.export.mode_sequence import ModeSteps, run_mode, source_fields
from shadow_edge.export.options import ExportOptions
from shadow_edge.export.results import (
    Check,
    ExportContext,
    GraphStage,
    ModeReport,
    Quantization,
    QuantizeAttempt,
)
from shadow_edge.export.tokenizer_files import prompt_of, special_tokens_of
from shadow_edge.export.write_outputs import tool_versions

log = logging.getLogger(__name__)

CHAT_CACHE = "base"


def load_base_model(inputs: Inputs) -> LoadedModel:
    """The base checkpoint as a float32 causal LM in eval mode, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs.base_dir)
    model = AutoModelForCausalLM.from_pretrained(inputs.base_dir, dtype=torch.float32)
    model.requires_grad_(False)
    model.eval()
    return LoadedModel(model, tokenizer, "causal_lm")


def chat_context(options: ExportOptions, inputs: Inputs, loaded: LoadedModel) -> ExportContext:
    tokenizer = loaded.tokenizer
    return ExportContext(
        special_tokens=special_tokens_of(tokenizer),
        prompt=prompt_of(tokenizer, options.system_prompt),
        task_fields={},  # answers are free text: no action language
        tools=tool_versions(),
        source=source_fields(options, inputs),
    )


def chat_prompts(job: ModeJob) -> list[list[int]]:
    """Real prompts, encoded as the runtime encodes them: prefix + text + suffix, no special tokens added."""
    prompt = job.context.prompt
    texts = job.task_checks.prompts(job.options.chat_prompts)
    return [
        job.rt_tokenizer.encode(prompt.prefix + t + prompt.suffix, add_special_tokens=False).ids
        for t in texts
    ]


def build_chat_graph(job: ModeJob) -> GraphStage:
    from shadow_edge.export.decoder_graph import DetachedDecoder
    from shadow_edge.runtime.manifest import CacheSpec

    graph = DetachedDecoder(job.model, None, cache_name=CHAT_CACHE)
    return GraphStage(graph, "causal_lm", None, int(graph.head.size), [CacheSpec(**c) for c in graph.caches])


def quantize_chat(job: ModeJob, stage: GraphStage, fp32_path: Path, prompts: list[list[int]]) -> Quantization:
    """8-bit MatMulNBits everywhere (head included), held to the top-1 agreement and size bars."""
    from shadow_edge.export.quantize import QuantizeSettings, quantize_decoder
    from shadow_edge.export.validate_chat import teacher_forced_agreement
    from shadow_edge.export.validate_programs import TorchDecoderSession
    from shadow_edge.runtime.session import create_session

    options = job.options
    method = "nbits" if options.int8_method == "auto" else options.int8_method
    path = job.work / method / "decoder.onnx"
    report = quantize_decoder(
        fp32_path, path, "int8", settings=QuantizeSettings(int8_method=method, keep_fp32=())
    )
    size_check = Check(report["size_ratio"] <= options.max_size_ratio,
                       {"size_ratio": report["size_ratio"], "max": options.max_size_ratio})  # fmt: skip
    session = create_session(path, providers="cpu", threads=options.threads)
    agreement = teacher_forced_agreement(TorchDecoderSession(stage.graph), session, stage.caches, prompts,
                                         options.chat_new_tokens, job.context.special_tokens.eos)  # fmt: skip
    check = Check(agreement["top1_agreement"] >= options.chat_min_top1,
                  {**agreement, "min_top1_agreement": options.chat_min_top1})  # fmt: skip
    log.info("chat int8 (%s): top-1 agreement %.3f with PyTorch over %d positions, %.1f%% of FP32 size",
             report["method"], agreement["top1_agreement"], agreement["positions"], 100 * report["size_ratio"])  # fmt: skip
    attempt = QuantizeAttempt(method, report, size_check, accuracy_check=check, agreement_with_fp32=agreement)
    return Quantization("int8", [attempt], path)


class ChatSteps(ModeSteps):
    """The base alone: greedy answers against PyTorch on real prompts, then 8-bit weights held to agreement."""

    accuracy_check = "quantized_agreement"

    def __init__(self) -> None:
        self.prompts: list[list[int]] = []

    def graph(self, job: ModeJob) -> GraphStage:
        return build_chat_graph(job)

    def programs(self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport) -> None:
        from shadow_edge.export.validate_chat import greedy_agreement
        from shadow_edge.export.validate_programs import TorchDecoderSession
        from shadow_edge.runtime.session import create_session

        self.prompts = chat_prompts(job)
        onnx_session = create_session(fp32_path, providers="cpu", threads=job.options.threads)
        agreement = greedy_agreement(TorchDecoderSession(stage.graph), onnx_session, stage.caches, self.prompts,
                                     job.options.chat_new_tokens, job.context.special_tokens.eos)  # fmt: skip
        report.chat = {"prompts": len(self.prompts), "max_new_tokens": job.options.chat_new_tokens,
                       "greedy_vs_torch": agreement}  # fmt: skip
        report.checks["chat_greedy_vs_torch"] = Check(agreement["rate"] == 1.0, agreement)

    def quantize(
        self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport
    ) -> Quantization | None:
        return quantize_chat(job, stage, fp32_path, self.prompts) if job.precision == "int8" else None


def export_chat_mode(job: ModeJob, inputs: Inputs) -> ModeReport:
    """Export the base alone into `job.out` (which holds the tokenizer files already); return its report."""
    return run_mode(job, inputs, ChatSteps())
