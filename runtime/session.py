"""onnxruntime sessions for an exported model: execution providers, threads, and a clear error when loading fails.

Providers: by default the first available of CUDA and CPU. TensorRT is used only when asked for (`providers=
"tensorrt"`): the decoder's sequence and cache lengths change every step, and TensorRT builds an engine per new
shape range unless it is given optimisation profiles, which makes the first commands take seconds; CUDA has no such
cost. Threads: intra-op = the number of physical cores (hyper-threads slow matrix-vector products down), inter-op 1
(the decoder graph is one sequential chain); both can be overridden.

onnxruntime is imported when a session is created, not when this module is, so `import shadow_edge.runtime` stays
light on a robot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .manifest import Manifest

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
AUTO_ORDER = (CUDA, CPU)
ALIASES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}


class SessionError(RuntimeError):
    """An ONNX file that onnxruntime cannot load, or providers/threads that cannot be used here."""


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Execution providers to use, best first; CPU is always last as the fallback.

    `requested`: None or "auto" (CUDA if available, else CPU), a name or alias ("cpu", "cuda", "tensorrt"), a
    comma-separated list, or a sequence of names. Asking for a provider this onnxruntime does not offer raises
    `SessionError` naming what is available (rather than silently running somewhere slower).
    """
    available = available_providers()
    if requested is None or requested == "auto":
        chosen = [p for p in AUTO_ORDER if p in available]
    else:
        names = requested.split(",") if isinstance(requested, str) else list(requested)
        chosen = []
        for name in (n.strip() for n in names if n.strip()):
            full = ALIASES.get(name.lower(), name)
            if full not in available:
                raise SessionError(
                    f"execution provider {name!r} is not available in this onnxruntime "
                    f"(available: {', '.join(available)})"
                )
            chosen.append(full)
    if CPU not in chosen:
        chosen.append(CPU)
    return list(dict.fromkeys(chosen))


def physical_cores() -> int:
    """Physical CPU cores this process may use (Linux /proc/cpuinfo; else the logical count)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return max(1, logical)
    cores: set[tuple[str, str]] = set()
    physical = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not key:  # end of a processor block
            if core is not None:
                cores.add((physical or "0", core))
            physical = core = None
    # ARM boards often list no core ids: every logical CPU is a core there.
    return max(1, min(logical, len(cores)) if cores else logical)


def session_options(threads: int | None = None) -> Any:
    """SessionOptions: full graph optimisation, sequential execution, `threads` intra-op threads (default: physical
    cores), one inter-op thread."""
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise SessionError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    return options


def _provider_options(provider: str, cache_dir: Path) -> dict[str, Any]:
    if provider == TENSORRT:
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir / "trt-cache")}
    return {}


def create_session(
    path: str | Path,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
) -> Any:
    """An `onnxruntime.InferenceSession` for the ONNX file at `path`; `SessionError` naming the file if it fails."""
    import onnxruntime as ort

    path = Path(path)
    chosen = choose_providers(providers)
    options = session_options(threads)
    provider_list = [(p, _provider_options(p, path.parent)) for p in chosen]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=provider_list)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SessionError(f"{path}: onnxruntime could not load it ({message})") from None
    log.info(
        "loaded %s with %s, %d intra-op threads",
        path.name,
        ", ".join(session.get_providers()),
        options.intra_op_num_threads,
    )
    return session


def check_decoder_io(session: Any, manifest: Manifest) -> None:
    """Check the session has the decoder I/O of the manifest contract; `SessionError` naming what is missing."""
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    want_in = {"input_ids", "attention_mask", "position_ids"}
    want_out = {"logits"}
    for cache in manifest.caches:
        want_in.update(cache.input_names())
        want_out.update(cache.output_names())
    missing = sorted(want_in - inputs) + sorted(want_out - outputs)
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise SessionError(
            f"{manifest.decoder_path}: the graph does not follow the export contract (missing {shown}); "
            "was it written by a matching shadow-export?"
        )


def create_decoder_session(
    manifest: Manifest, providers: str | Sequence[str] | None = None, threads: int | None = None
) -> Any:
    """The decoder session of a verified export directory, checked against the manifest's I/O contract."""
    session = create_session(manifest.decoder_path, providers=providers, threads=threads)
    check_decoder_io(session, manifest)
    return session
