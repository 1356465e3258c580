"""`shadow-bench`: measure an exported model on this machine, optionally against reference implementations.

The command-line contract is `docs/spec/cli.md` (the options: `bench.options`); what is measured and how is
`bench.measure`; the references' processes are `bench.reference_process`. One run:

1. load the export directory with `Commander` (the robot's code path); start each `--against` reference in its own
   process (`python -m shadow_edge.bench.references NAME`: torch is never imported here) and let them load;
2. measure `--commands` commands of the robot-dog test split (spread evenly over it; or `--commands-file`), each
   implementation after `--warmup` unmeasured commands, in rounds of `--round-size` commands where the
   implementations take turns (rotating order), so that the machine's changing load hits them alike;
3. read our peak resident memory right then; optionally run a `--stream` of commands watching resident memory;
4. measure the memory copy bandwidth and count the weight bytes a decode step reads (bandwidth-bound ratio);
5. write the JSON report (`--out`, default `bench-<model dir name>.json` next to MODEL_DIR), with each reference's
   numbers, our speed-up over it (its median / ours) and how often it wrote the same program, and a PNG plot
   beside it (made by `shadow_edge.bench.plot` in its own process, when matplotlib is installed).

`--json` prints the report on stdout (without the per-command samples the file keeps); progress goes to stderr.
Exit status: 0 when everything asked for was measured; 1 when it ran but failed: a reference failed (the report is
still written, the reference's entry says why), nothing could be measured, the report cannot be written; 2 for bad
arguments or inputs: usage errors, a MODEL_DIR that is not a runnable export, an unreadable commands file, a
reference adapter that is not there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from shadow_edge.bench.commands import DEFAULT_SPLIT, read_commands
from shadow_edge.bench.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    BenchInputError,
    BenchRunError,
    BenchUsageError,
    report_error,
)
from shadow_edge.bench.options import build_parser, validate_options
from shadow_edge.bench.reference_process import (
    REFERENCE_PACKAGES,
    REFERENCES,
    ReferenceProcess,
    check_reference_packages,
    parse_references,
    reference_source,
)
from shadow_edge.runtime.logs import setup_logging

# the names other code imports from here; the options, errors, commands and references have modules of their own
__all__ = [
    "PROG", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "REFERENCES", "REFERENCE_PACKAGES", "REFERENCE_MODULE",
    "PLOT_MODULE", "BenchInputError", "BenchRunError", "BenchUsageError", "ReferenceProcess", "bench",
    "build_parser", "draw_plot", "main", "read_commands", "reference_command", "reference_source",
]  # fmt: skip

REFERENCE_MODULE = "shadow_edge.bench.references"
PLOT_MODULE = "shadow_edge.bench.plot"

log = logging.getLogger(PROG)


def reference_command(
    name: str, source: dict[str, str | None], *, max_new_tokens: int, threads: int, cache_dir: Path
) -> list[str]:
    command = [sys.executable, "-m", REFERENCE_MODULE, name, "--adapter", str(source["adapter"])]
    command += [
        "--max-new-tokens",
        str(max_new_tokens),
        "--threads",
        str(threads),
        "--cache-dir",
        str(cache_dir),
    ]
    if source.get("base"):
        command += ["--base", str(source["base"])]
    return command


def draw_plot(report_path: Path, plot_path: Path) -> str | None:
    """Draw the plot in its own process (matplotlib is not a runtime dependency); the reason when it cannot."""
    if find_spec("matplotlib") is None:
        return "matplotlib is not installed"
    completed = subprocess.run(
        [sys.executable, "-m", PLOT_MODULE, str(report_path), str(plot_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if completed.returncode != 0 or not plot_path.is_file():
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"the plotter exited with status {completed.returncode}"
    return None


def _output_paths(model_dir: Path, out: str | None) -> tuple[Path, Path]:
    report = Path(out) if out else model_dir.resolve().parent / f"bench-{model_dir.resolve().name}.json"
    return report, report.with_suffix(".png")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_model_dir(model_dir: Path, references: list[str], args: argparse.Namespace) -> dict | None:
    """Refuse a MODEL_DIR that is not an export the references can be compared with; the references' source."""
    from shadow_edge.runtime.manifest import ManifestError, load_manifest

    if not model_dir.is_dir():
        raise BenchInputError(
            f"MODEL_DIR {model_dir}: not a directory (expected a shadow-export output directory)"
        )
    try:
        manifest = load_manifest(model_dir, verify_files=False)  # Commander verifies every file below
    except ManifestError as exc:
        raise BenchInputError(f"cannot run the model in MODEL_DIR: {exc}") from None
    if not references:
        return None
    if manifest.mode != "detached":
        raise BenchInputError(
            f"MODEL_DIR {model_dir} was exported with mode={manifest.mode}, but the references ({', '.join(references)}) run the "
            "detached shadow: compare a detached export, or measure this one without --against"
        )
    source = reference_source(manifest.raw, args.base, args.adapter, model_dir)
    check_reference_packages(references)
    return source


def _start_references(
    references: Sequence[str], source: dict, cache_dir: Path, max_new_tokens: int, threads: int,
    processes: dict[str, ReferenceProcess], details: dict[str, dict[str, Any]],
    measured: dict[str, dict[str, list]], errors: dict[str, str],
) -> None:  # fmt: skip
    """Start every reference in its own process and wait until each has loaded; one that fails drops out."""
    for name in references:  # they load side by side, before anything is measured
        log.info("starting the %s reference in its own process", name)
        processes[name] = ReferenceProcess(
            name,
            reference_command(
                name, source, max_new_tokens=max_new_tokens, threads=threads, cache_dir=cache_dir
            ),
        )
    for name in references:
        try:
            details[name] = processes[name].ready()
            measured[name] = {}
        except BenchRunError as exc:
            report_error(str(exc))
            errors[name] = str(exc)
            processes.pop(name).close()


def bench(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Measure as the options say; returns the report (with per-command samples) and the references that failed."""
    from shadow_edge.runtime.commander import Commander, ModelLoadError
    from shadow_edge.runtime.generate import DEFAULT_MAX_NEW_TOKENS
    from shadow_edge.runtime.session import physical_cores
    from shadow_edge.runtime.stats import strided

    from . import measure as core

    model_dir = Path(args.model_dir)
    references = parse_references(args.against)
    source = _check_model_dir(model_dir, references, args)
    texts = strided(read_commands(args.commands_file), args.commands)
    max_new_tokens = args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    threads = args.threads or physical_cores()

    log.info("loading %s", model_dir)
    try:
        commander = Commander(
            model_dir, providers=args.provider, threads=threads, max_new_tokens=max_new_tokens, warmup=True
        )
    except ModelLoadError as exc:
        raise BenchInputError(f"cannot run the model in MODEL_DIR: {exc}") from None

    errors: dict[str, str] = {}
    processes: dict[str, ReferenceProcess] = {}
    details: dict[str, dict[str, Any]] = {}
    measured: dict[str, dict[str, list]] = {}
    try:
        if references:
            cache_dir = Path(args.cache_dir) if args.cache_dir else model_dir.resolve().parent / "bench-cache"
            _start_references(references, source, cache_dir, max_new_tokens, threads, processes, details,
                              measured, errors)  # fmt: skip
        samples = _measure_rounds(args, commander, texts, processes, measured, errors)
    finally:
        for process in processes.values():
            process.close()

    peak = core.peak_rss_mb()  # before anything else in this process can raise the high-water mark
    stream = None
    if args.stream:
        log.info("stream check: %d commands", args.stream)
        stream = core.stream_check(commander, texts, args.stream)
    log.info("measuring memory bandwidth (%d MB buffer)", args.bandwidth_mb)
    bandwidth = core.copy_bandwidth(args.bandwidth_mb)
    report = core.runtime_report(commander, samples, peak_rss=peak, bandwidth=bandwidth, warmup=args.warmup)
    report["stream"] = stream
    report["commands_source"] = args.commands_file or f"robot-dog {DEFAULT_SPLIT} split"
    report["round_size"] = args.round_size
    report["samples"] = {
        "command_latency_ms": [round(s.latency_ms, 4) for s in samples],
        "decode_ms_per_token": [round(ms, 4) for s in samples for ms in s.step_ms],
    }
    if references:
        report["reference_source"] = source
    _add_references(report, references, samples, details, measured, errors)
    return report, list(errors)


def _add_references(
    report: dict[str, Any], references: Sequence[str], samples: Sequence[Any],
    details: dict[str, dict[str, Any]], measured: dict[str, dict[str, list]], errors: dict[str, str],
) -> None:  # fmt: skip
    """Each reference's entry in the report (its numbers and our speed-up over it, or why it failed)."""
    from . import measure as core

    ours = [s.program for s in samples]
    for name in references:
        if name in errors:
            report["against"][name] = {"error": errors[name]}
            continue
        try:
            entry = core.add_reference(report, name, {**details[name], **measured[name]}, our_programs=ours)
        except core.BenchError as exc:
            report_error(str(exc))
            report["against"][name] = {"error": str(exc)}
            errors[name] = str(exc)
            continue
        report["samples"][f"{name}_command_latency_ms"] = [
            round(v, 4) for v in measured[name]["latencies_ms"]
        ]
        log.info(
            "%s: median %.1f ms per command, ours %.1f ms: %.2fx",
            name,
            entry["command_latency_ms"]["median"],
            report["command_latency_ms"]["median"],
            entry["speedup"] or 0.0,
        )


def _measure_rounds(
    args: argparse.Namespace,
    commander: Any,
    texts: Sequence[str],
    processes: dict[str, ReferenceProcess],
    measured: dict[str, dict[str, list]],
    errors: dict[str, str],
) -> list[Any]:
    """Measure every implementation on the same commands, `--round-size` commands at a time, taking turns (the
    order rotates every round), so that a change in the machine's load affects every implementation alike. The
    first round of each starts with its `--warmup` unmeasured commands. Failed references drop out (`errors`)."""
    from . import measure as core

    rounds = [texts[i : i + args.round_size] for i in range(0, len(texts), args.round_size)]
    names = ["ours", *processes]
    samples: list[Any] = []
    log.info(
        "measuring %d commands in %d round(s) (%s), after %d warm-up commands each",
        len(texts),
        len(rounds),
        ", ".join(names),
        args.warmup,
    )
    for index, chunk in enumerate(rounds):
        warmup = args.warmup if index == 0 else 0
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            if name == "ours":
                try:
                    samples += core.measure_commands(commander, chunk, warmup=warmup)
                except core.BenchError as exc:
                    raise BenchRunError(str(exc)) from None
                continue
            if name in errors:
                continue
            try:
                reply = processes[name].measure(chunk, warmup)
            except BenchRunError as exc:
                report_error(str(exc))
                errors[name] = str(exc)
                continue
            into = measured[name]
            for key, value in reply.items():
                if isinstance(value, list):
                    into.setdefault(key, []).extend(value)
                else:
                    into[key] = value  # peak_rss_mb so far
        log.info("round %d/%d: %d/%d commands", index + 1, len(rounds), len(samples), len(texts))
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, prog=PROG)
    try:
        validate_options(args)
        report, failed = bench(args)
    except BenchUsageError as exc:
        parser.error(str(exc))  # usage on stderr, exit status 2, like argparse's own checks
    except BenchInputError as exc:
        report_error(str(exc))
        return EXIT_USAGE
    except BenchRunError as exc:
        report_error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130

    report_path, plot_path = _output_paths(Path(args.model_dir), args.out)
    report["report_path"] = str(report_path)
    report["plot"] = None
    try:
        _write_json(report_path, report)
        if not args.no_plot:
            problem = draw_plot(report_path, plot_path)
            if problem is None:
                report["plot"] = str(plot_path)
            else:
                log.warning("no plot: %s", problem)
                report["plot_error"] = problem
            _write_json(report_path, report)
    except OSError as exc:
        report_error(f"{report_path}: cannot write the report ({exc.strerror or exc})")
        return EXIT_ERROR
    log.info("report: %s%s", report_path, f", plot: {plot_path}" if report["plot"] else "")
    if args.json:
        shown = {k: v for k, v in report.items() if k != "samples"}
        print(json.dumps(shown, indent=2, ensure_ascii=False), flush=True)
    return EXIT_ERROR if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
