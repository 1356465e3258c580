"""The program-level checks of a causal-LM export, run with the runtime's own constrained decoder: ONNX vs PyTorch
programs on real prompts, restricted head vs full head, prompt tokenization as in training, and the FP32 accuracy
on the task's labelled split (`export.task_checks`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shadow_edge.export.job import ModeJob
from shadow_edge.export.results import Check, GraphStage, ProgramChecks
from shadow_edge.runtime.stats import strided

log = logging.getLogger(__name__)


def generator_factory(job: ModeJob, stage: GraphStage):
    """`(session, head_ids, head_size) -> Generator`: the runtime's decoder over any session, built as on the device."""
    from shadow_edge.export.validate_programs import make_generator

    special, prompt = job.context.special_tokens, job.context.prompt
    grammar = job.task_checks.grammar()

    def generator(session: Any, head_ids: list[int] | None, head_size: int, rows_independent: bool = True):
        return make_generator(session, job.rt_tokenizer, stage.caches, head_ids, head_size, special.eos,
                              special.pad, prompt.prefix, prompt.suffix, grammar, rows_independent)  # fmt: skip

    return generator


def check_programs(job: ModeJob, stage: GraphStage, fp32_path: Path) -> ProgramChecks:
    """Run every program-level check of the FP32 export; the accuracy is measured on the task's eval examples."""
    from shadow_edge.export.decoder_graph import graph_for
    from shadow_edge.export.validate_programs import TorchDecoderSession, generate_programs, program_agreement
    from shadow_edge.runtime.session import create_session

    options, mode, checks_of_task = job.options, job.mode, job.task_checks
    generator = generator_factory(job, stage)
    examples = checks_of_task.eval_examples(options.eval_split, options.eval_limit)
    texts = [e["text"] for e in examples]
    agree_idx = strided(list(range(len(texts))), options.agreement_prompts)
    agree_texts = [texts[i] for i in agree_idx]
    head_ids, head_size = stage.head_token_ids, stage.head_size
    checks: dict[str, Check] = {}

    onnx_gen = generator(
        create_session(fp32_path, providers="cpu", threads=options.threads), head_ids, head_size
    )
    mismatched = [
        t
        for t in agree_texts
        if onnx_gen.encode_prompt(t) != checks_of_task.encode_prompt(job.hf_tokenizer, t)
    ]
    checks["prompt_tokenization"] = Check(
        not mismatched, {"n": len(agree_texts), "mismatched": mismatched[:5]}
    )
    fp32_outputs = generate_programs(onnx_gen, texts, f"{mode} fp32 onnx")
    torch_outputs = generate_programs(
        generator(TorchDecoderSession(stage.graph), head_ids, head_size), agree_texts, f"{mode} torch"
    )
    agreement = program_agreement(torch_outputs, [fp32_outputs[i] for i in agree_idx], agree_texts)
    checks["onnx_vs_torch_programs"] = Check(agreement["rate"] == 1.0, agreement)
    if head_ids is not None:
        full = graph_for(job.model, mode, None, options.shadow_logits)
        full_outputs = generate_programs(
            generator(TorchDecoderSession(full), None, int(full.vocab_size)), agree_texts, f"{mode} full head"
        )
        agreement = program_agreement(full_outputs, torch_outputs, agree_texts)
        checks["action_head_vs_full_head"] = Check(agreement["rate"] == 1.0, agreement)
    accuracy = {"fp32": checks_of_task.score(fp32_outputs, examples)}
    log.info("%s fp32: command accuracy %.4f on %d examples", mode, accuracy["fp32"]["accuracy"], len(texts))
    return ProgramChecks(options.eval_split, examples, fp32_outputs, checks, accuracy, generator)
