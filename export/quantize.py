"""Quantize an exported FP32 decoder (the `runtime.manifest` I/O contract) for the device it will run on.

Precisions (the manifest's names):

- ``"int8"``: INT8 weights for ARM / x86 CPUs, no calibration data needed. Two kernels (`int8_method`):
  ``"dynamic"`` (default, the issue's choice): QInt8 weights, per output channel by default, and activations
  quantized per tensor on the fly (DynamicQuantizeLinear -> MatMulInteger). ``"nbits"``: 8-bit blockwise
  weight-only MatMulNBits (block 32 along K; with accuracy_level 4 the activations are quantized per block of
  32, not per tensor). Measured on SmolLM2-135M-Instruct (30 layers; 12-24 robot-dog prompts, teacher-forced
  logits vs FP32): dynamic per-tensor top-1 0.69 / mean cosine 0.963, dynamic per-channel 0.75 / 0.974,
  nbits 0.95 / 0.9994 -- SmolLM2's down_proj inputs carry outlier channels that a per-tensor activation scale
  cannot hold (11-24 dB quantization SNR on most layers), so per-channel weights help but "nbits" is what holds
  accuracy. Attention's activation-by-activation MatMuls stay float in every mode.
- ``"int8-qdq"``: static QDQ INT8 for TensorRT (Jetson). TensorRT only runs symmetric INT8 (zero point 0), so
  activations and weights are both QInt8 and symmetric, weights per channel (axis 1 of the MatMul weight), with
  Q/DQ pairs on the inputs of weight MatMuls only (NVIDIA's placement advice: quantize the inputs of weighted
  ops, not their outputs). Activation ranges come from a CalibrationDataReader, which should feed decode steps
  with real past K/V (see `shadow_edge.calibration.decode_steps.DecodeStepReader`). On SmolLM2-135M a static
  per-tensor activation scale is far worse than dynamic (top-1 0.35 with MinMax ranges from 16 prompts): W8A8
  on this model family needs outlier handling (SmoothQuant-style scale folding) that is not done here.
- ``"int4"``: blockwise weight-only MatMulNBits (symmetric INT4, block 32 by default), CPU and CUDA. Plain
  round-to-nearest INT4 is lossy on a 135M model (SmolLM2: top-1 0.70 vs FP32).

What stays float, and why (`keep_fp32`):

- ``"head"``: the MatMul(s) producing ``logits`` (and any other ``*logits`` output), found by tracing back from
  the graph output. The head decides every greedy token directly, and its error is not averaged away by later
  layers; with the restricted action-vocabulary head it is also tiny, so float costs almost nothing.
- ``"embeddings"``: the Gather(s) indexed by ``input_ids``. They are not MatMuls, so no precision above
  quantizes them; when ``"embeddings"`` is *not* kept, they are stored as INT8 with one scale per vocabulary
  row (standard ONNX: int8 Gather -> Cast -> Mul by the gathered row scale, runs on every execution provider).
  A row-wise scale keeps each token's vector to within 0.4% of its largest entry. For small decoders the
  embedding table is most of the file (SmolLM2's is 28M of a detached shadow's ~44M parameters), so the INT8
  size target (<= 30% of FP32) is only reachable with it quantized.
- any other entry is an fnmatch pattern of node names to leave float (e.g. ``"/model/layers.0/*"``).

The input is always pre-processed first (ONNX Runtime's symbolic + ONNX shape inference, `quant_pre_process`),
which the quantizers rely on to know which tensors are float; ORT's graph optimizer is skipped there because it
can fuse MatMul+Add into Gemm (which dynamic INT8 cannot quantize) and rename nodes. Models with external data
(> 2 GB) are read and written with external data. Reading the graph, the files and the embedding rewrite are
`export.quantize_graph`; the quantizers and the entry point `quantize_decoder` are here.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx.external_data_helper import uses_external_data
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

# the graph facts and file handling live in `quantize_graph`; these names are part of this module's API too
from shadow_edge.export.quantize_graph import (
    EMBEDDINGS,
    HEAD,
    QuantizeError,
    excluded_nodes,
    find_embedding_gathers,
    find_head_nodes,
    load_model,
    model_files,
    model_size,
    op_counts,
    preprocess,
    quantize_embeddings,
    save_model,
    weight_matmuls,
)

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "int8-qdq", "int4")
DEFAULT_KEEP_FP32 = (HEAD,)
# per-channel weights for both INT8 precisions: better than per-tensor on SmolLM2 (top-1 0.75 vs 0.69, see the
# module docstring) and on outlier-channel test weights (tests/export/test_quantize.py), at the same size
DEFAULT_PER_CHANNEL = True
BLOCK_SIZES = (16, 32, 64, 128, 256)
INT8_METHODS = ("dynamic", "nbits")
DEFAULT_INT8_METHOD = "dynamic"
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
# above this many bytes of weights a model is written with external data (protobuf's limit is 2 GiB)
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


# ----------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------


def _quantize_nbits(
    model: onnx.ModelProto, bits: int, block_size: int, accuracy_level: int | None, exclude: list[str]
) -> None:
    """Blockwise symmetric weight-only quantization of the weight MatMuls to MatMulNBits, in place."""
    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level, quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),), bits=bits,
    )  # fmt: skip
    quantizer = MatMulNBitsQuantizer(model, nodes_to_exclude=exclude, algo_config=config)
    nbits_log = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = nbits_log.level
    nbits_log.setLevel(max(level, logging.WARNING))  # it logs a line per node of the graph at INFO
    try:
        quantizer.process()
    finally:
        nbits_log.setLevel(level)
    if quantizer.model.model is not model:
        model.CopyFrom(quantizer.model.model)


class _CountingReader(CalibrationDataReader):
    """Passes a calibration reader through, counting its samples; refuses one that gives none at all."""

    def __init__(self, inner: CalibrationDataReader):
        self.inner, self.count = inner, 0
        self._first = inner.get_next()
        if self._first is None:
            raise QuantizeError("the calibration reader gave no samples")

    def get_next(self) -> dict[str, np.ndarray] | None:
        item, self._first = (self._first, None) if self._first is not None else (self.inner.get_next(), None)
        if item is not None:
            self.count += 1
        return item


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizeSettings:
    """How to quantize, beyond the precision. `per_channel` applies to both INT8 precisions. `reduce_range` (7-bit
    weights) only helps on x86 CPUs without VNNI. `block_size` and `accuracy_level` (4 = int8 activations inside
    MatMulNBits, the fast path on ARM) apply to the MatMulNBits kernels. `calibrate_method` ("minmax",
    "percentile", "entropy") applies to INT8-QDQ. `external_data` None: as the input, or when the weights are
    over 1.8 GB."""

    keep_fp32: tuple[str, ...] = DEFAULT_KEEP_FP32
    per_channel: bool = DEFAULT_PER_CHANNEL
    reduce_range: bool = False
    int8_method: str = DEFAULT_INT8_METHOD
    block_size: int = 32
    accuracy_level: int | None = 4
    calibrate_method: str = "minmax"
    external_data: bool | None = None

    def check(self) -> None:
        if self.int8_method not in INT8_METHODS:
            raise QuantizeError(f"unknown int8_method {self.int8_method!r}; expected one of {INT8_METHODS}")
        if self.block_size not in BLOCK_SIZES:
            raise QuantizeError(f"block_size must be one of {BLOCK_SIZES}, not {self.block_size}")
        if self.calibrate_method not in CALIBRATION_METHODS:
            raise QuantizeError(
                f"unknown calibrate_method {self.calibrate_method!r}; expected one of {list(CALIBRATION_METHODS)}"
            )


def _check_request(
    precision: str, calibration_reader: CalibrationDataReader | None, settings: QuantizeSettings
) -> None:
    if precision not in PRECISIONS:
        hint = " (fp32 needs no quantization: use the exported model as it is)" if precision == "fp32" else ""
        raise QuantizeError(f"unknown precision {precision!r}; expected one of {PRECISIONS}{hint}")
    if precision == "int8-qdq" and calibration_reader is None:
        raise QuantizeError("int8-qdq (static QDQ INT8) needs a calibration_reader")
    settings.check()


def _needs_external_data(fp32_path: Path, out_path: Path, settings: QuantizeSettings) -> bool:
    """Whether to write external data; refuses an unreadable input, or an output that would overwrite it."""
    source = load_model(fp32_path)
    if out_path.resolve() == fp32_path.resolve():
        raise QuantizeError(f"{out_path}: the output would overwrite the FP32 input")
    if settings.external_data is not None:
        return settings.external_data
    weights = sum(init.ByteSize() for init in source.graph.initializer)
    return weights > EXTERNAL_DATA_THRESHOLD or any(
        uses_external_data(init)
        for init in onnx.load(str(fp32_path), load_external_data=False).graph.initializer
    )


def _choose_nodes(
    model: onnx.ModelProto, keep_fp32: tuple[str, ...], path: Path
) -> tuple[list[str], list[str], list[str], list[str]]:
    """(head nodes, weight MatMuls, nodes kept float, weight MatMuls to quantize); refuses nothing to quantize."""
    heads = find_head_nodes(model)
    targets = weight_matmuls(model)
    excluded = excluded_nodes(model, keep_fp32, heads, path)
    to_quantize = [name for name in targets if name not in excluded]
    if not to_quantize:
        raise QuantizeError(f"{path}: no weight MatMul left to quantize (all excluded or none found)")
    return heads, targets, excluded, to_quantize


def _quantize_matmuls(
    pre: Path, quantized: Path, model: onnx.ModelProto, precision: str, reader: CalibrationDataReader | None,
    to_quantize: list[str], excluded: list[str], settings: QuantizeSettings, external: bool,
) -> dict[str, Any]:  # fmt: skip
    """Quantize the chosen weight MatMuls of `pre` (loaded as `model`) into `quantized`; what was done, for the report."""
    per_channel, reduce_range = settings.per_channel, settings.reduce_range
    if precision == "int8" and settings.int8_method == "dynamic":
        quantize_dynamic(
            str(pre), str(quantized), op_types_to_quantize=["MatMul"], per_channel=per_channel,
            reduce_range=reduce_range, weight_type=QuantType.QInt8, nodes_to_quantize=to_quantize,
            nodes_to_exclude=excluded, use_external_data_format=external,
            extra_options={"MatMulConstBOnly": True},
        )  # fmt: skip
        return dict(method="dynamic INT8 (DynamicQuantizeLinear + MatMulInteger)", per_channel=per_channel,
                    reduce_range=reduce_range, weight_type="QInt8")  # fmt: skip
    if precision == "int8-qdq":
        counting = _CountingReader(reader)
        quantize_static(
            str(pre), str(quantized), counting, quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
            per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8, nodes_to_quantize=to_quantize, nodes_to_exclude=excluded,
            use_external_data_format=external, calibrate_method=CALIBRATION_METHODS[settings.calibrate_method],
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "OpTypesToExcludeOutputQuantization": ["MatMul"],
                "CalibMaxIntermediateOutputs": 64,
            },
        )  # fmt: skip
        return dict(method="static QDQ INT8 (symmetric, for TensorRT)", per_channel=per_channel,
                    activation_type="QInt8", weight_type="QInt8", calibrate_method=settings.calibrate_method,
                    calibration_samples=counting.count)  # fmt: skip
    bits = 4 if precision == "int4" else 8
    not_targeted = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in to_quantize]
    _quantize_nbits(model, bits, settings.block_size, settings.accuracy_level, excluded + not_targeted)
    save_model(model, quantized, external)
    return dict(method=f"weight-only INT{bits} (MatMulNBits, symmetric, blockwise)", block_size=settings.block_size,
                accuracy_level=settings.accuracy_level)  # fmt: skip


def _check_loads(path: Path) -> None:
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        del session
    except Exception as exc:
        raise QuantizeError(f"{path}: the quantized model does not load in onnxruntime ({exc})") from None


def quantize_decoder(
    fp32_path: str | Path,
    out_path: str | Path,
    precision: str,
    calibration_reader: CalibrationDataReader | None = None,
    settings: QuantizeSettings | None = None,
) -> dict[str, Any]:
    """Quantize the FP32 decoder at `fp32_path` to `precision` and write it to `out_path`.

    INT8-QDQ requires `calibration_reader`; everything else is in `settings` (defaults: `QuantizeSettings()`).
    Returns a report: what was quantized and kept float, node counts by op type, sizes, time. Raises
    QuantizeError naming the file and the problem.
    """
    start = time.perf_counter()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    settings = settings or QuantizeSettings()
    keep_fp32 = tuple(settings.keep_fp32)
    _check_request(precision, calibration_reader, settings)
    external_data = _needs_external_data(fp32_path, out_path, settings)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=out_path.parent) as tmp:
        pre, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "quantized.onnx"
        preprocess(fp32_path, pre, external_data)
        model = onnx.load(str(pre))
        heads, targets, excluded, to_quantize = _choose_nodes(model, keep_fp32, fp32_path)
        report: dict[str, Any] = {"precision": precision, "keep_fp32": list(keep_fp32), "head_nodes": heads}
        report.update(_quantize_matmuls(pre, quantized, model, precision, calibration_reader, to_quantize, excluded,
                                        settings, external_data))  # fmt: skip
        del model

        result = onnx.load(str(quantized))
        tables = (
            [] if EMBEDDINGS in keep_fp32 else quantize_embeddings(result, find_embedding_gathers(result))
        )
        report["embeddings"] = "int8 per-row" if tables else "float"
        report["embedding_tables_quantized"] = tables
        save_model(result, out_path, external_data)

    _check_loads(out_path)
    counts = op_counts(result)
    fp32_size, size = model_size(fp32_path), model_size(out_path)
    report.update(
        path=str(out_path),
        files=[f.name for f in model_files(out_path)],
        weight_matmuls=len(targets),
        weight_matmuls_quantized=len(to_quantize),
        kept_float=excluded,
        op_counts=counts,
        size_bytes={"fp32": fp32_size, "quantized": size},
        size_ratio=round(size / fp32_size, 4),
        seconds=round(time.perf_counter() - start, 2),
    )
    log.info("%s: %s, %d/%d weight MatMuls quantized, %.1f%% of FP32 size", out_path, report["method"],
             len(to_quantize), len(targets), 100 * report["size_ratio"])  # fmt: skip
    return report
