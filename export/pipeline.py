"""`shadow-export` from top to bottom: check inputs, load, export, validate, quantize, validate again, write.

For each mode (detached / attached), one stage after the other (the sequence `mode_sequence.run_mode` shares with
`export.chat`; `DecoderSteps` are this export's steps), each returning a typed result (`export.results`):

1. the export graph (`decoder_graph.graph_for`), with the task's restricted head when asked (`build_graph`);
2. FP32 ONNX (`convert.export_decoder_onnx`), validated against the torch graph at untraced shapes and through a
   cached greedy decode (`validate_decoder.validate_decoder`) (`export_fp32`);
3. for causal LMs, program-level checks with the runtime's own constrained decoder (`program_checks`): ONNX vs
   PyTorch outputs on real prompts, restricted head vs full head, and the task's accuracy on its labelled split;
   the task (eval data, prompt, scoring) is a plug-in, `ExportOptions.task` (`export.task_checks`);
4. quantization, the same accuracy measurement on the quantized file, and the choice of kernel
   (`quantize_choice`): INT8 must not lose more than `max_accuracy_loss` points against FP32 and must be at most
   `max_size_ratio` of its size;
5. tokenizer.json (+ chat template), report.json and manifest.json (written last, listing every file's sha256)
   (`tokenizer_files`, `write_outputs`).

Everything is written into a staging directory that replaces OUT_DIR only when every check passed
(`output_dir.StagedDir`); a failed export raises `ExportFailed` carrying the result, and leaves OUT_DIR as it was.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from shadow_edge.export.chat import chat_context, export_chat_mode, load_base_model
from shadow_edge.export.inputs import Inputs, LoadedModel, check_inputs, load_model
from shadow_edge.export.job import ModeJob
from shadow_edge.export.mode_sequence import ModeSteps, run_mode, source_fields
from shadow_edge.export.options import CHAT_MODE, ExportOptions
from shadow_edge.export.output_dir import StagedDir
from shadow_edge.export.results import (
    Check,
    ExportContext,
    ExportResult,
    GraphStage,
    ModeReport,
    ProgramChecks,
    Quantization,
)
from shadow_edge.export.stages import build_graph
from shadow_edge.export.task_checks import TaskChecks, load_task_checks
from shadow_edge.export.tokenizer_files import prompt_of, special_tokens_of, write_tokenizer
from shadow_edge.export.write_outputs import tool_versions

log = logging.getLogger(__name__)

__all__ = ["ExportFailed", "ExportOptions", "ExportResult", "export", "export_mode"]


class ExportFailed(RuntimeError):
    """The export ran but did not pass its validation: `result` says what failed, `report` is its JSON (with every
    mode's whole report under "reports")."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result
        self.report = result.full_report()


def export_optimum(job: ModeJob, programs: ProgramChecks | None) -> tuple[dict[str, Any], Check, list[str]]:
    """The detached shadow as optimum / onnxruntime-genai expect it, in OUT_DIR/optimum: (report, check, files)."""
    from shadow_edge.export.optimum_detached import export_optimum_detached

    texts = (
        programs.texts[:: max(1, len(programs.texts) // 8)][:8] if programs else job.task_checks.prompts(8)
    )
    prompts = [job.task_checks.encode_prompt(job.hf_tokenizer, t) for t in texts]
    special = job.context.special_tokens
    result = export_optimum_detached(
        job.model, job.hf_tokenizer, job.out / "optimum", prompts, special.eos, special.pad
    )
    check = Check(result["passed"], {"greedy_tokens_equal": result["greedy_tokens_equal"], "n": result["n"]})
    return result, check, [f"optimum/{name}" for name in result["files"]]


class DecoderSteps(ModeSteps):
    """The detached / attached decoder (or classifier): the task's checks, the quantizer's choice, optimum."""

    def graph(self, job: ModeJob) -> GraphStage:
        return build_graph(job)

    def programs(self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport) -> None:
        from shadow_edge.export.program_checks import check_programs

        if job.task == "causal_lm":
            report.programs = check_programs(job, stage, fp32_path)
            report.checks.update(report.programs.checks)

    def quantize(
        self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport
    ) -> Quantization | None:
        from shadow_edge.export.quantize_choice import quantize_and_choose

        if job.options.precision == "fp32":
            return None
        return quantize_and_choose(job, stage, fp32_path, report.programs)

    def extra_files(self, job: ModeJob, report: ModeReport) -> list[str]:
        if not (job.options.optimum and job.mode == "detached" and job.task == "causal_lm"):
            return []
        report.optimum, report.checks["optimum_export"], files = export_optimum(job, report.programs)
        return files


def export_mode(job: ModeJob, inputs: Inputs) -> ModeReport:
    """Export one mode into `job.out` (which exists and holds the tokenizer files); return its report."""
    return run_mode(job, inputs, DecoderSteps())


# -- the whole export ------------------------------------------------------------------------------------------------


def export_context(
    options: ExportOptions, inputs: Inputs, loaded: LoadedModel, task_checks: TaskChecks
) -> ExportContext:
    tokenizer = loaded.tokenizer
    return ExportContext(
        special_tokens=special_tokens_of(tokenizer, task_checks.end_of_turn_id(tokenizer)),
        prompt=prompt_of(tokenizer, task_checks.system_prompt),
        task_fields=task_checks.manifest_fields(),
        tools=tool_versions(),
        source=source_fields(options, inputs),
    )


def export(options: ExportOptions) -> ExportResult:
    """Run the export described by `options`; return its result, or raise (OUT_DIR untouched on any failure).

    Raises CheckpointError / BaseModelError / ValueError for bad inputs (before any work), OutputDirError when
    OUT_DIR holds someone's files, ExportFailed when the export did not pass validation.
    """
    from tokenizers import Tokenizer

    started = time.perf_counter()
    inputs = check_inputs(options)
    task_checks = load_task_checks(options.task)
    staged = StagedDir(options.out_dir)
    with staged as stage:
        if options.mode == CHAT_MODE:
            loaded = load_base_model(inputs)
            context = chat_context(options, inputs, loaded)
        else:
            loaded = load_model(inputs, options.shadow_model)
            context = export_context(options, inputs, loaded, task_checks)
        reports: dict[str, ModeReport] = {}
        for mode in options.modes():
            out = stage / mode if options.mode == "both" else stage
            out.mkdir(exist_ok=True)
            files = tuple(write_tokenizer(loaded.tokenizer, out))
            job = ModeJob(mode, out, out / ".work", options, context, task_checks, loaded.model, loaded.tokenizer,
                          Tokenizer.from_file(str(out / "tokenizer.json")), loaded.task, files)  # fmt: skip
            reports[mode] = export_chat_mode(job, inputs) if mode == CHAT_MODE else export_mode(job, inputs)
        result = ExportResult(
            str(Path(options.out_dir).absolute()),
            options.to_dict(),
            round(time.perf_counter() - started, 2),
            reports,
        )
        if options.mode == "both":
            (stage / "report.json").write_text(
                json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8"
            )
        if not result.passed:
            raise ExportFailed(f"validation failed ({'; '.join(result.failed_checks)})", result)
        committed = staged.commit()
    result.out_dir = str(committed)
    return result
