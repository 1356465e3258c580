"""Write an export graph (`shadow_edge.export.decoder_graph`) to ONNX.

torch 2.13's default exporter (`dynamo=True`) needs `onnxscript`, which the export extra does not carry, and turns
the graph into an ExportedProgram first; the graphs here are plain tensor code with no data-dependent control flow,
so the TorchScript tracer (`dynamo=False`, still supported) exports them directly with `dynamic_axes`. The graph is
traced once at B=2, S=5, P=3 (every dimension > 1, so no axis is specialized to 1) and checked with `onnx.checker`.
Models over 2 GB (protobuf's limit) are written with their weights in one external-data file beside the graph.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

TRACE_SHAPES = {"batch": 2, "sequence": 5, "past": 3}
PROTOBUF_LIMIT = 2**31
# Graph structure and metadata add to the weights; leave room below protobuf's hard limit.
EXTERNAL_DATA_THRESHOLD = int(1.8 * 2**30)


def weight_bytes(module: nn.Module) -> int:
    """Bytes of the distinct parameters and buffers (a tied table counts once)."""
    seen: dict[int, int] = {}
    for tensor in (*module.parameters(), *module.buffers()):
        seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


def export_decoder_onnx(
    decoder: nn.Module,
    path: str | Path,
    opset: int = 17,
    external_data: bool | None = None,
) -> dict[str, Any]:
    """Export `decoder` (a DetachedDecoder / AttachedDecoder / classifier graph) to `path`; return what was written.

    `external_data=None` picks external data when the weights exceed ~1.8 GB; the data file is `<name>.data` next to
    the graph. Returns a dict for report.json: the files written (relative to the graph's folder), sizes, timing,
    exporter, opset, I/O names and the trace shapes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    decoder.eval()
    dtypes = {p.dtype for p in decoder.parameters() if p.is_floating_point()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"{path}: the graph's weights are {sorted(map(str, dtypes))}; the export contract is float32 "
            "(load the model with dtype=float32, or call .float() on it first)"
        )
    size = weight_bytes(decoder)
    use_external = size > EXTERNAL_DATA_THRESHOLD if external_data is None else bool(external_data)
    data_name = path.name + ".data"
    for stale in (path, path.with_name(data_name)):
        stale.unlink(missing_ok=True)

    inputs = decoder.example_inputs(**TRACE_SHAPES, left_padding=[0, 2])
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-export-") as tmp:
        # The tracer writes weights over 2 GB as one file per tensor; trace into a scratch folder, then repack.
        traced = Path(tmp) / path.name if use_external else path
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            torch.onnx.export(
                decoder,
                inputs,
                str(traced),
                dynamo=False,
                input_names=decoder.input_names(),
                output_names=decoder.output_names(),
                dynamic_axes=decoder.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
            )
        if use_external:
            _repack_external(traced, path, data_name)
    export_seconds = time.monotonic() - start

    import onnx

    onnx.checker.check_model(str(path))  # path-based: works past 2 GB with external data
    files = [path.name] + ([data_name] if use_external else [])
    sizes = {name: (path.parent / name).stat().st_size for name in files}
    logger.info("exported %s (%.1f MB) in %.1f s", path, sum(sizes.values()) / 1e6, export_seconds)
    return {
        "path": str(path),
        "files": files,
        "file_bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "weight_bytes": size,
        "external_data": use_external,
        "export_seconds": round(export_seconds, 3),
        "exporter": f"torch.onnx.export(dynamo=False), torch {torch.__version__}",
        "opset": opset,
        "input_names": decoder.input_names(),
        "output_names": decoder.output_names(),
        "caches": decoder.caches,
        "trace_shapes": dict(TRACE_SHAPES),
    }


def _repack_external(source: Path, target: Path, data_name: str) -> None:
    """Load a traced model with its per-tensor weight files and save it with one external-data file."""
    import onnx

    model = onnx.load(str(source), load_external_data=True)
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_name,
        size_threshold=1024,
    )
