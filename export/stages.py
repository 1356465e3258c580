"""The stages every kind of export shares: a progress bar over them, the torch export graph, and the FP32 ONNX
file with its validation against that graph."""

from __future__ import annotations

import time

from shadow_edge.export.job import ModeJob
from shadow_edge.export.results import Check, Fp32Stage, GraphStage


class StageProgress:
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


def build_graph(job: ModeJob) -> GraphStage:
    from shadow_edge.export.decoder_graph import graph_for
    from shadow_edge.runtime.manifest import CacheSpec

    head_ids = None
    if job.options.action_head and job.task == "causal_lm":
        head_ids = job.task_checks.head_token_ids(job.rt_tokenizer, job.context.special_tokens.eos)
    graph = graph_for(job.model, job.mode, head_ids, job.options.shadow_logits)
    head_size = len(head_ids) if head_ids is not None else int(graph.vocab_size)
    return GraphStage(graph, job.task, head_ids, head_size, [CacheSpec(**c) for c in graph.caches])


def export_fp32(job: ModeJob, stage: GraphStage, stages: StageProgress) -> Fp32Stage:
    """FP32 ONNX (the final file when the precision is fp32) and its validation against the torch graph."""
    from shadow_edge.export.convert import export_decoder_onnx
    from shadow_edge.export.validate_decoder import validate_decoder

    options = job.options
    path = job.out / "decoder.onnx" if options.precision == "fp32" else job.work / "fp32" / "decoder.onnx"
    onnx = export_decoder_onnx(stage.graph, path)
    stages.start("validate")
    validation = validate_decoder(
        path, stage.graph, atol=options.atol, rtol=options.rtol, threads=options.threads or 0
    )
    check = Check(validation["passed"], {"max_abs_logit_diff": validation["max_abs_logit_diff"],
                  "atol": options.atol, "rtol": options.rtol, "tolerance": validation["tolerance"],
                  "greedy_tokens_match": validation["greedy_tokens_match"]})  # fmt: skip
    return Fp32Stage(path, onnx, validation, check)
