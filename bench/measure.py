"""Measurements behind `shadow-bench`, with nothing but the runtime's own dependencies (numpy, onnxruntime).

What is measured, on one `Commander` (the robot's code path: sanitation, constrained decoding, safety layer):

- command latency: text in -> validated program out (`CommandResult.latency_ms`), per command, after warm-up;
- per-token decode time: every one-token decoder step of every command (`GenerationResult.step_ms`);
- time to first token: text in -> the first program token chosen (a separate `max_new_tokens=1` generation of the
  same text, so it includes sanitation, tokenization and the prefill);
- peak resident memory: the kernel's high-water mark of this process (`VmHWM` in /proc/self/status), read right
  after the measured commands, before anything else (bandwidth buffers, ONNX parsing, plotting) can raise it;
- memory bandwidth: numpy copies of a buffer much larger than any cache, best of several, counted as STREAM's
  "copy" counts it (bytes read + bytes written, per second);
- bandwidth bound: the weight bytes one decode step reads (`weight_traffic`) / that bandwidth; the reported ratio is
  the measured median step time over that bound (1.0 = as fast as memory allows);
- optionally a steady stream of commands with resident memory sampled along it, to show it does not grow.

References (PyTorch, optimum, `references.py`) run in their own processes; `speedup` here and
`shadow_edge.runtime.stats.summary` summarise both sides alike.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shadow_edge.runtime.commander import Commander
from shadow_edge.runtime.session import physical_cores
from shadow_edge.runtime.stats import summary
from shadow_edge.runtime.text_input import model_input

from .weight_traffic import WeightReadError, weight_traffic

log = logging.getLogger(__name__)

DEFAULT_BANDWIDTH_MB = 256
STREAM_SAMPLES = 10  # resident-memory samples along a stream check
STREAM_TOLERANCE_MB = 4.0  # growth below this over a stream is allocator noise, not a leak


# What each number means, copied into every report so that a table made from it can say so.
DEFINITIONS = {
    "command_latency_ms": "text in -> validated program out: sanitation, tokenization, prefill, greedy decoding "
    "(ours: grammar-constrained, stops when the program is complete), safety layer",
    "decode_ms_per_token": "one decoder call for one new token (ours: the onnxruntime call with its cache handover; "
    "references: the time between consecutive logits inside HF generate)",
    "ttft_ms": "text in -> the first token's logits (ours: a separate one-token generation of the same text)",
    "peak_rss_mb": "the process's resident-memory high-water mark (VmHWM) after the measured commands",
    "bandwidth_bound_ratio": "median decode time per token / (weight bytes one decode step reads / measured copy "
    "bandwidth); 1.0 = as fast as memory allows",
    "speedup": "reference median command latency / our median command latency, same commands, same machine, "
    "measured in alternating rounds",
    "program_agreement": "share of commands where the reference wrote the same canonical program as ours",
}


class BenchError(RuntimeError):
    """A measurement cannot be made as asked (no commands, every command failed, ...)."""


# -- ratios --------------------------------------------------------------------------------------------------------


def speedup(reference_ms: float | None, ours_ms: float | None) -> float | None:
    """How many times faster we are: reference median / our median (None when either is missing)."""
    if not reference_ms or not ours_ms:
        return None
    return round(float(reference_ms) / float(ours_ms), 3)


# -- memory --------------------------------------------------------------------------------------------------------


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (Linux VmHWM; elsewhere getrusage's ru_maxrss)."""
    kb = _proc_status_kb("VmHWM")
    if kb is None:
        try:
            import resource
        except ImportError:  # not Unix
            return None
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = maxrss // 1024 if sys.platform == "darwin" else maxrss  # bytes on macOS, KiB elsewhere
    return round(kb / 1024.0, 2)


def rss_mb() -> float | None:
    """This process's current resident memory in MiB (Linux VmRSS), or None where /proc is not there."""
    kb = _proc_status_kb("VmRSS")
    return None if kb is None else round(kb / 1024.0, 2)


def copy_bandwidth(megabytes: int = DEFAULT_BANDWIDTH_MB, repeats: int = 7) -> dict[str, Any]:
    """Memory copy bandwidth of this machine, measured with numpy (one thread): best of `repeats` copies of a
    `megabytes` buffer, as STREAM's "copy" counts it (2 x buffer bytes per copy: one read, one write)."""
    if megabytes < 1 or repeats < 1:
        raise ValueError("megabytes and repeats must be >= 1")
    n = megabytes * (1 << 20) // 8
    src = np.arange(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page before timing
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    moved = 2 * src.nbytes
    del src, dst
    return {
        "copy_gb_per_s": round(moved / best / 1e9, 3),
        "buffer_mb": megabytes,
        "repeats": repeats,
        "method": "numpy copyto, 1 thread, best of repeats; bytes read + bytes written (STREAM copy)",
    }


# -- commands ------------------------------------------------------------------------------------------------------


@dataclass
class CommandSample:
    """One measured command."""

    text: str
    program: str
    route: str
    accepted: bool
    latency_ms: float
    ttft_ms: float | None = None
    prefill_ms: float | None = None
    step_ms: list[float] = field(default_factory=list)
    new_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None


def time_to_first_token_ms(commander: Commander, text: str) -> float | None:
    """Text in -> first program token chosen: sanitation, tokenization, prefill and the first constrained choice
    (a generation stopped after one token). None for text the commander refuses before the model."""
    start = time.perf_counter()
    try:
        model_text, _ = model_input(text, commander.max_chars)
    except ValueError:
        return None
    commander.generator.generate(model_text, max_new_tokens=1)
    return (time.perf_counter() - start) * 1000.0


def _sample(commander: Commander, text: str, measure_ttft: bool) -> CommandSample:
    result = commander.run(text)
    generation = result.generation
    sample = CommandSample(
        text=text,
        program=result.program,
        route=result.route,
        accepted=result.accepted,
        latency_ms=result.latency_ms,
        error=result.error,
    )
    if generation is not None:
        sample.prefill_ms = generation.prefill_ms
        sample.step_ms = list(generation.step_ms)
        sample.new_tokens = generation.new_tokens
        sample.prompt_tokens = generation.prompt_tokens
    if measure_ttft and result.error is None:
        sample.ttft_ms = time_to_first_token_ms(commander, text)
    return sample


def measure_commands(
    commander: Commander,
    texts: Sequence[str],
    warmup: int = 10,
    measure_ttft: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CommandSample]:
    """Run `warmup` commands (cycling through `texts`, not measured), then every text once, measured."""
    if not texts:
        raise BenchError("no commands to measure")
    for i in range(max(0, warmup)):
        commander.run(texts[i % len(texts)])
        if measure_ttft:
            time_to_first_token_ms(commander, texts[i % len(texts)])
    samples = []
    for i, text in enumerate(texts):
        samples.append(_sample(commander, text, measure_ttft))
        if progress is not None:
            progress(i + 1, len(texts))
    failed = [s for s in samples if s.error is not None]
    if len(failed) == len(samples):
        raise BenchError(f"every command failed in the model (first error: {failed[0].error})")
    if failed:
        log.warning(
            "%d of %d commands failed in the model (first: %s)", len(failed), len(samples), failed[0].error
        )
    return samples


def stream_check(
    commander: Commander,
    texts: Sequence[str],
    commands: int = 1000,
    samples: int = STREAM_SAMPLES,
    tolerance_mb: float = STREAM_TOLERANCE_MB,
) -> dict[str, Any]:
    """Run `commands` commands back to back (cycling `texts`) and sample resident memory `samples` times along the
    way. Growth is measured from the first sample (taken after the first stretch, so one-time allocations of a
    first run are not counted) to the last; `grows` is whether it exceeds `tolerance_mb`."""
    if commands < samples or samples < 2:
        raise ValueError(f"a stream check needs at least {max(samples, 2)} commands and 2 samples")
    if not texts:
        raise BenchError("no commands for the stream check")
    every = commands // samples
    rss: list[float | None] = []
    latencies = []
    start = time.perf_counter()
    for i in range(commands):
        latencies.append(commander.run(texts[i % len(texts)]).latency_ms)
        if (i + 1) % every == 0 and len(rss) < samples:
            rss.append(rss_mb())
    seconds = time.perf_counter() - start
    if any(r is None for r in rss):
        return {"commands": commands, "rss_mb": None, "growth_mb": None, "grows": None, "seconds": seconds}
    growth = round(rss[-1] - rss[0], 2)
    return {
        "commands": commands,
        "rss_mb": rss,
        "growth_mb": growth,
        "tolerance_mb": tolerance_mb,
        "grows": growth > tolerance_mb,
        "command_latency_ms": summary(latencies),
        "seconds": round(seconds, 2),
    }


# -- the report ----------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - the runtime needs it
        ort_version = None
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "system": platform.system(),
        "python": platform.python_version(),
        "onnxruntime": ort_version,
    }


def runtime_report(
    commander: Commander,
    samples: Sequence[CommandSample],
    *,
    peak_rss: float | None,
    bandwidth: dict[str, Any] | None,
    warmup: int,
) -> dict[str, Any]:
    """The report's own part (keys of docs/spec/cli.md first) from measured samples."""
    manifest = commander.manifest
    info = commander.info()
    ok = [s for s in samples if s.error is None]
    steps = [ms for s in ok for ms in s.step_ms]
    decode = summary(steps)
    report: dict[str, Any] = {
        "model_dir": None if manifest is None else str(manifest.directory),
        "precision": None if manifest is None else manifest.precision,
        "mode": None if manifest is None else manifest.mode,
        "command_latency_ms": summary([s.latency_ms for s in ok]),
        "decode_ms_per_token": decode,
        "ttft_ms": summary([s.ttft_ms for s in ok if s.ttft_ms is not None]),
        "peak_rss_mb": peak_rss,
        "bandwidth_bound_ratio": None,
        "against": {},
        "prefill_ms": summary([s.prefill_ms for s in ok if s.prefill_ms is not None]),
        "new_tokens": summary([s.new_tokens for s in ok]),
        "prompt_tokens": summary([s.prompt_tokens for s in ok]),
        "commands": len(samples),
        "failed_commands": len(samples) - len(ok),
        "warmup": warmup,
        "routes": {r: sum(s.route == r for s in samples) for r in sorted({s.route for s in samples})},
        "accepted": sum(s.accepted for s in samples),
        "max_new_tokens": commander.generator.max_new_tokens,
        "providers": info["providers"],
        "threads": _session_threads(commander),
        "head": None
        if manifest is None
        else {"kind": manifest.raw["head"].get("kind"), "size": info["head_size"]},
        "machine": machine_info(),
        "definitions": DEFINITIONS,
    }
    if manifest is not None:
        try:
            traffic = weight_traffic(manifest.decoder_path)
        except WeightReadError as exc:  # the ratio is then unknown; the latencies still stand
            log.warning("cannot count the decoder's weight bytes: %s", exc)
            report["weights"] = {"error": str(exc)}
            return report
        report["weights"] = traffic.to_json()
        if bandwidth is not None:
            report["memory_bandwidth"] = bandwidth
            bound_ms = traffic.per_token_bytes / (bandwidth["copy_gb_per_s"] * 1e9) * 1000.0
            report["bandwidth_bound_ms_per_token"] = float(f"{bound_ms:.4g}")
            if decode["median"] is not None and bound_ms > 0:
                report["bandwidth_bound_ratio"] = round(decode["median"] / bound_ms, 3)
    return report


def _session_threads(commander: Commander) -> int | None:
    session = commander.generator.session
    try:
        return int(session.get_session_options().intra_op_num_threads)
    except Exception:  # a scripted session in tests, or an onnxruntime without the getter
        return None


def add_reference(
    report: dict[str, Any],
    name: str,
    reference: dict[str, Any],
    our_programs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Put a reference's measurement under `report["against"][name]` with its speed-up and program agreement.

    `reference` holds per-command lists (`latencies_ms`, `ttft_ms`, `new_tokens`, `programs`), every one-token
    decode step (`decode_step_ms`) and free-form details (implementation, threads, versions, peak memory); the lists are summarised, not copied. With
    `our_programs` (same commands, same order), `program_agreement` is the share of commands where the reference
    wrote the same canonical program as we did.
    """
    latencies = reference.get("latencies_ms") or []
    if not latencies:
        raise BenchError(f"reference {name!r} measured no commands")
    ttft = reference.get("ttft_ms") or []
    new = reference.get("new_tokens") or []
    steps = reference.get("decode_step_ms")
    lists = ("latencies_ms", "ttft_ms", "new_tokens", "programs", "decode_step_ms")
    entry = {k: v for k, v in reference.items() if k not in lists}
    entry["command_latency_ms"] = summary(latencies)
    entry["speedup"] = speedup(entry["command_latency_ms"]["median"], report["command_latency_ms"]["median"])
    entry["ttft_ms"] = summary([t for t in ttft if t is not None])
    entry["decode_ms_per_token"] = summary(steps or [])
    entry["new_tokens"] = summary(new)
    programs = reference.get("programs")
    if our_programs is not None and programs and len(our_programs) == len(programs):
        same = sum(a == b for a, b in zip(our_programs, programs, strict=True))
        entry["program_agreement"] = round(same / len(programs), 4)
    report.setdefault("against", {})[name] = entry
    return entry
