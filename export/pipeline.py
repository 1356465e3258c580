"""`shadow-export` from top to bottom: check inputs, load, export, validate, quantize, validate again, write.

For each mode (detached / attached), one stage after the other, each returning a typed result (`export.results`):

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
import shutil
import time
from pathlib import Path
from typing import Any

from shadow_edge.export.inputs import Inputs, LoadedModel, check_inputs, load_model
from shadow_edge.export.job import ModeJob
from shadow_edge.export.options import ExportOptions
from shadow_edge.export.output_dir import StagedDir
from shadow_edge.export.results import (
    Check,
    ExportContext,
    ExportResult,
    Fp32Stage,
    GraphStage,
    ModeReport,
    ProgramChecks,
)
from shadow_edge.export.task_checks import TaskChecks, load_task_checks
from shadow_edge.export.tokenizer_files import prompt_of, special_tokens_of, write_tokenizer
from shadow_edge.export.write_outputs import tool_versions, write_mode_manifest, write_report

log = logging.getLogger(__name__)

__all__ = ["ExportFailed", "ExportOptions", "ExportResult", "export", "export_mode"]


class ExportFailed(RuntimeError):
    """The export ran but did not pass its validation: `result` says what failed, `report` is its JSON (with every
    mode's whole report under "reports")."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result
        self.report = result.full_report()


class _Stages:
    """A progress bar over the stages of one mode's export, plus the time each took."""

    NAMES = ("graph", "onnx", "validate", "programs", "quantize", "write")

    def __init__(self, mode: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(self.NAMES), desc=f"export {mode}", unit="stage")
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._start = time.perf_counter()

    def start(self, name: str) -> None:
        self._finish()
        self._name, self._start = name, time.perf_counter()
        self.bar.set_postfix_str(name)

    def _finish(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = round(time.perf_counter() - self._start, 2)
            self.bar.update(1)

    def close(self) -> None:
        self._finish()
        self._name = None
        self.bar.close()


# -- the stages of one mode ------------------------------------------------------------------------------------------


def build_graph(job: ModeJob) -> GraphStage:
    from shadow_edge.export.decoder_graph import graph_for
    from shadow_edge.runtime.manifest import CacheSpec

    head_ids = None
    if job.options.action_head and job.task == "causal_lm":
        head_ids = job.task_checks.head_token_ids(job.rt_tokenizer, job.context.special_tokens.eos)
    graph = graph_for(job.model, job.mode, head_ids, job.options.shadow_logits)
    head_size = len(head_ids) if head_ids is not None else int(graph.vocab_size)
    return GraphStage(graph, job.task, head_ids, head_size, [CacheSpec(**c) for c in graph.caches])


def export_fp32(job: ModeJob, stage: GraphStage, stages: _Stages) -> Fp32Stage:
    """FP32 ONNX (the final file when the precision is fp32) and its validation against the torch graph."""
    from shadow_edge.export.convert import export_decoder_onnx
    from shadow_edge.export.validate_decoder import validate_decoder

    options = job.options
    path = job.out / "decoder.onnx" if options.precision == "fp32" else job.work / "fp32" / "decoder.onnx"
    onnx = export_decoder_onnx(stage.graph, path)
    stages.start("validate")
    validation = validate_decoder(path, stage.graph, atol=options.atol, threads=options.threads or 0)
    check = Check(validation["passed"], {"max_abs_logit_diff": validation["max_abs_logit_diff"],
                  "atol": options.atol, "greedy_tokens_match": validation["greedy_tokens_match"]})  # fmt: skip
    return Fp32Stage(path, onnx, validation, check)


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


def export_mode(job: ModeJob, inputs: Inputs) -> ModeReport:
    """Export one mode into `job.out` (which exists and holds the tokenizer files); return its report."""
    from shadow_edge.export.program_checks import check_programs
    from shadow_edge.export.quantize import model_files
    from shadow_edge.export.quantize_choice import quantize_and_choose

    started = time.perf_counter()
    stages = _Stages(job.mode)
    report = ModeReport(job.mode, job.task, job.precision)
    job.work.mkdir()
    try:
        stages.start("graph")
        stage = build_graph(job)

        stages.start("onnx")
        fp32 = export_fp32(job, stage, stages)
        report.onnx, report.validation = fp32.onnx, fp32.validation
        report.checks["fp32_logits"] = fp32.check

        stages.start("programs")
        if job.task == "causal_lm":
            report.programs = check_programs(job, stage, fp32.path)
            report.checks.update(report.programs.checks)

        stages.start("quantize")
        if job.options.precision != "fp32":
            report.quantization = quantize_and_choose(job, stage, fp32.path, report.programs)
            final = report.quantization.final
            report.checks["quantized_size"] = final.size_check
            if final.accuracy_check is not None:
                report.checks["quantized_accuracy"] = final.accuracy_check
            for file in model_files(report.quantization.path):
                shutil.move(str(file), job.out / file.name)
        shutil.rmtree(job.work)
        optimum_files: list[str] = []
        if job.options.optimum and job.mode == "detached" and job.task == "causal_lm":
            report.optimum, report.checks["optimum_export"], optimum_files = export_optimum(
                job, report.programs
            )

        stages.start("write")
        decoder_files = [f.name for f in model_files(job.out / "decoder.onnx")]
        report.files = {
            name: (job.out / name).stat().st_size for name in [*decoder_files, *job.tokenizer_files]
        }
        report.decoder_size_bytes = sum((job.out / name).stat().st_size for name in decoder_files)
        stages.close()
        report.stage_seconds = stages.seconds
        report.export_seconds = round(time.perf_counter() - started, 2)
        write_report(job.out, report)
        write_mode_manifest(
            job, inputs, stage, report, [*decoder_files, *job.tokenizer_files, *optimum_files]
        )
        return report
    finally:
        stages.bar.close()
        shutil.rmtree(job.work, ignore_errors=True)


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
        source={
            "base": None if inputs.default_base else str(Path(options.base).absolute()),
            "base_dir": str(inputs.base_dir.absolute()),
            "adapter": str(inputs.adapter.directory.absolute()),
            "dialect": inputs.adapter.dialect,
        },
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
        loaded = load_model(inputs, options.shadow_model)
        context = export_context(options, inputs, loaded, task_checks)
        reports: dict[str, ModeReport] = {}
        for mode in options.modes():
            out = stage / mode if options.mode == "both" else stage
            out.mkdir(exist_ok=True)
            files = tuple(write_tokenizer(loaded.tokenizer, out))
            job = ModeJob(mode, out, out / ".work", options, context, task_checks, loaded.model, loaded.tokenizer,
                          Tokenizer.from_file(str(out / "tokenizer.json")), loaded.task, files)  # fmt: skip
            reports[mode] = export_mode(job, inputs)
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
