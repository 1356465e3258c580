"""One mode's export, stage by stage: the sequence every kind of export runs (the decoder modes of
`export.pipeline` and the base alone of `export.chat`), with the steps in which they differ passed in.

graph -> FP32 ONNX and its validation -> program-level checks -> quantization (the chosen file moved into OUT) ->
extra files -> report.json and manifest.json. The scratch directory `job.work` is removed whatever happens.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from shadow_edge.export.inputs import Inputs
from shadow_edge.export.job import ModeJob
from shadow_edge.export.options import ExportOptions
from shadow_edge.export.results import GraphStage, ModeReport, Quantization
from shadow_edge.export.stages import StageProgress, export_fp32
from shadow_edge.export.write_outputs import write_mode_manifest, write_report


class ModeSteps:
    """The steps that differ between kinds of export; the defaults do nothing."""

    #: the name in `ModeReport.checks` of the quantized file's accuracy check
    accuracy_check = "quantized_accuracy"

    def graph(self, job: ModeJob) -> GraphStage:
        raise NotImplementedError

    def programs(self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport) -> None:
        """Program-level checks of the FP32 file, recorded in `report`."""

    def quantize(
        self, job: ModeJob, stage: GraphStage, fp32_path: Path, report: ModeReport
    ) -> Quantization | None:
        """The quantized file (under `job.work`) and its attempts, or None when the precision is fp32."""
        return None

    def extra_files(self, job: ModeJob, report: ModeReport) -> list[str]:
        """Files written into `job.out` besides the decoder and the tokenizer, for the manifest."""
        return []


def source_fields(options: ExportOptions, inputs: Inputs) -> dict[str, str | None]:
    """Where the export came from, for the manifest: the base (None when bundled) and the adapter, if any."""
    adapter = inputs.adapter
    return {
        "base": None if inputs.default_base else str(Path(options.base).absolute()),
        "base_dir": str(inputs.base_dir.absolute()),
        "adapter": str(adapter.directory.absolute()) if adapter is not None else None,
        "dialect": adapter.dialect if adapter is not None else None,
    }


def run_mode(job: ModeJob, inputs: Inputs, steps: ModeSteps) -> ModeReport:
    """Export one mode into `job.out` (which exists and holds the tokenizer files); return its report."""
    from shadow_edge.export.quantize import model_files

    started = time.perf_counter()
    stages = StageProgress(job.mode)
    report = ModeReport(job.mode, job.task, job.precision)
    job.work.mkdir()
    try:
        stages.start("graph")
        stage = steps.graph(job)

        stages.start("onnx")
        fp32 = export_fp32(job, stage, stages)
        report.onnx, report.validation = fp32.onnx, fp32.validation
        report.checks["fp32_logits"] = fp32.check

        stages.start("programs")
        steps.programs(job, stage, fp32.path, report)

        stages.start("quantize")
        quantization = steps.quantize(job, stage, fp32.path, report)
        if quantization is not None:
            report.quantization = quantization
            report.checks["quantized_size"] = quantization.final.size_check
            if quantization.final.accuracy_check is not None:
                report.checks[steps.accuracy_check] = quantization.final.accuracy_check
            for file in model_files(quantization.path):
                shutil.move(str(file), job.out / file.name)
        shutil.rmtree(job.work)
        extra_files = steps.extra_files(job, report)

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
        write_mode_manifest(job, inputs, stage, report, [*decoder_files, *job.tokenizer_files, *extra_files])
        return report
    finally:
        stages.bar.close()
        shutil.rmtree(job.work, ignore_errors=True)
