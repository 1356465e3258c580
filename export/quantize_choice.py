"""Quantize one mode's FP32 decoder and choose the kernel: each attempt is measured (size against FP32, and for
causal LMs the task's accuracy with the runtime decoder); with `int8_method="auto"` dynamic INT8 is tried first
and 8-bit MatMulNBits when dynamic misses the bar (see `export.quantize` for why that happens on SmolLM2)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shadow_edge.export.job import ModeJob
from shadow_edge.export.results import Check, GraphStage, ProgramChecks, Quantization, QuantizeAttempt

log = logging.getLogger(__name__)


def int8_methods(job: ModeJob) -> list[str | None]:
    """The kernels to try, in order (None: the precision has one kernel)."""
    if job.precision != "int8":
        return [None]
    return ["dynamic", "nbits"] if job.options.int8_method == "auto" else [job.options.int8_method]


def calibration_reader(job: ModeJob, stage: GraphStage, fp32_path: Path) -> Any:
    """Static INT8's calibration data: real decode steps of the FP32 model on the named calibration texts."""
    from shadow_edge.calibration.decode_steps import (
        DecodeStepReader,
        calibration_prompts,
        load_calibration_texts,
    )

    texts = load_calibration_texts(job.options.calibration)
    prompt = job.context.prompt
    prompts = calibration_prompts(job.rt_tokenizer, prompt.prefix, prompt.suffix, texts)
    return DecodeStepReader(fp32_path, prompts, stage.caches, job.context.special_tokens.eos,
                            stage.head_token_ids, threads=job.options.threads)  # fmt: skip


def measure_attempt(
    job: ModeJob, stage: GraphStage, path: Path, programs: ProgramChecks | None, quantize: dict[str, Any],
    int8_method: str | None,
) -> QuantizeAttempt:  # fmt: skip
    """Hold one quantized file to the size bar and, with program checks, to the accuracy bar."""
    from shadow_edge.export.validate_programs import (
        accuracy_loss_points,
        generate_programs,
        program_agreement,
    )
    from shadow_edge.runtime.generate import rows_interact
    from shadow_edge.runtime.session import create_session

    options, precision = job.options, job.precision
    size_ok = precision == "int4" or quantize["size_ratio"] <= options.max_size_ratio
    size_check = Check(size_ok, {"size_ratio": quantize["size_ratio"], "max": options.max_size_ratio})
    if programs is None:
        return QuantizeAttempt(int8_method, quantize, size_check)
    session = create_session(path, providers="cpu", threads=options.threads)
    # measured as the device runs it: one command at a time where the quantized graph's batch rows interact
    rows_independent = not rows_interact(quantize)
    generator = programs.generator(session, stage.head_token_ids, stage.head_size, rows_independent)
    outputs = generate_programs(generator, programs.texts, f"{precision} onnx")
    accuracy = job.task_checks.score(outputs, programs.examples)
    fp32 = programs.accuracy["fp32"]
    loss = accuracy_loss_points(fp32, accuracy)
    accuracy_check = Check(loss <= options.max_accuracy_loss, {"loss_points": loss,
                           "max_loss_points": options.max_accuracy_loss, "fp32_accuracy": fp32["accuracy"],
                           "accuracy": accuracy["accuracy"]})  # fmt: skip
    log.info("%s (%s): accuracy %.4f (FP32 %.4f, loss %.2f points), %.1f%% of FP32 size", precision,
             quantize["method"], accuracy["accuracy"], fp32["accuracy"], loss, 100 * quantize["size_ratio"])  # fmt: skip
    agreement = program_agreement(programs.fp32_outputs, outputs, programs.texts)
    return QuantizeAttempt(int8_method, quantize, size_check, accuracy, accuracy_check, agreement)


def quantize_and_choose(
    job: ModeJob, stage: GraphStage, fp32_path: Path, programs: ProgramChecks | None
) -> Quantization:
    """Try the kernels in order until one passes; the last one tried is chosen (and fails the export if it failed).

    Records the chosen attempt's checks in the mode's checks and its accuracy in `programs.accuracy`.
    """
    from shadow_edge.export.quantize import QuantizeSettings, quantize_decoder

    precision = job.precision
    reader = calibration_reader(job, stage, fp32_path) if precision == "int8-qdq" else None
    methods = int8_methods(job)
    attempts: list[QuantizeAttempt] = []
    path = fp32_path
    for method in methods:
        path = job.work / (method or precision) / "decoder.onnx"
        settings = QuantizeSettings(int8_method=method) if method else QuantizeSettings()
        report = quantize_decoder(fp32_path, path, precision, reader, settings)
        attempt = measure_attempt(job, stage, path, programs, report, method)
        attempts.append(attempt)
        if attempt.passed:
            break
        if method != methods[-1]:
            log.warning("%s with %s missed the bar; trying the next INT8 kernel", precision, attempt.method)
    result = Quantization(precision, attempts, path)
    if programs is not None and result.final.accuracy is not None:
        programs.accuracy[precision] = result.final.accuracy
    return result
