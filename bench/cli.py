"""`shadow-bench`: measure an exported model on this machine, optionally against reference implementations.

The command-line contract is `docs/spec/cli.md`; what is measured and how is `bench.measure`. One run:

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
import collections
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from shadow_edge.runtime.logs import setup_logging

PROG = "shadow-bench"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
REFERENCES = ("torch", "optimum", "optimum-int8")  # what --against knows (bench/references.py)
_OPTIMUM_PACKAGES = ("torch", "transformers", "peft", "optimum")
REFERENCE_PACKAGES = {"torch": ("torch", "transformers", "peft"), "optimum": _OPTIMUM_PACKAGES}
REFERENCE_PACKAGES["optimum-int8"] = _OPTIMUM_PACKAGES
REFERENCE_MODULE = "shadow_edge.bench.references"
PLOT_MODULE = "shadow_edge.bench.plot"
DEFAULT_COMMANDS = 200
DEFAULT_WARMUP = 10
DEFAULT_ROUND_SIZE = 20
DEFAULT_SPLIT = "test"

log = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Measure, in one run on this machine, an exported model's latency per command (median, p90), "
            "per-token decode time, time to first token and peak memory, and its speed-up over reference "
            "implementations; writes a JSON report and a plot."
        ),
    )
    parser.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="directory written by shadow-export (manifest.json, tokenizer.json, ONNX files)",
    )
    parser.add_argument(
        "--against",
        metavar="REF",
        action="append",
        default=None,
        help="reference implementation to compare with: torch (peft's detached shadow, HF generate, fp32), "
        "optimum (the detached shadow exported by optimum-onnx, ORTModelForCausalLM.generate, fp32) or "
        "optimum-int8 (that export quantized by optimum's ORTQuantizer, dynamic INT8); repeat the "
        "option (or separate names with commas) for several. Needs the export extra (torch, peft, optimum)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report on stdout (progress goes to stderr)"
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        default=None,
        help="where to write the JSON report (default: bench-<MODEL_DIR name>.json next to MODEL_DIR); the plot "
        "is written beside it as .png",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    parser.add_argument(
        "--commands",
        type=int,
        default=DEFAULT_COMMANDS,
        metavar="N",
        help=f"commands to measure, spread evenly over the split (default: {DEFAULT_COMMANDS}; 0 = all)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        metavar="N",
        help=f"unmeasured commands first, for every implementation (default: {DEFAULT_WARMUP})",
    )
    parser.add_argument(
        "--round-size",
        type=int,
        default=DEFAULT_ROUND_SIZE,
        metavar="N",
        help="with --against, implementations take turns every N commands so that changes in the machine's load "
        f"hit them alike (default: {DEFAULT_ROUND_SIZE})",
    )
    parser.add_argument(
        "--commands-file",
        metavar="FILE",
        default=None,
        help='JSONL with one {"text": ...} per line to measure instead of the robot-dog test split',
    )
    parser.add_argument(
        "--stream",
        type=int,
        default=0,
        metavar="N",
        help="also run a steady stream of N commands (e.g. 1000) and report resident-memory growth along it",
    )
    parser.add_argument(
        "--base",
        metavar="PATH",
        default=None,
        help="base checkpoint for the references (default: the manifest's source.base, else bundled SmolLM2)",
    )
    parser.add_argument(
        "--adapter",
        metavar="PATH",
        default=None,
        help="ShadowPEFT adapter for the references (default: the manifest's source.adapter)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="where the optimum reference export is cached (default: bench-cache next to MODEL_DIR)",
    )
    parser.add_argument(
        "--provider",
        default="auto",
        metavar="NAME",
        help="onnxruntime execution provider(s) for the model: auto, cpu, cuda, tensorrt (default: auto)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="intra-op threads for the model and every reference (default: physical cores)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="longest program in tokens, the same for every implementation (default: 64)",
    )
    parser.add_argument(
        "--bandwidth-mb",
        type=int,
        default=256,
        metavar="MB",
        help="buffer size for the memory-bandwidth measurement (default: 256; much larger than any cache)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return parser


class BenchUsageError(ValueError):
    """Bad options (exit status 2)."""


class BenchRunError(RuntimeError):
    """The run failed: a reference, a measurement, writing the report (exit status 1)."""


class BenchInputError(ValueError):
    """An input cannot be used: the model directory, the commands file, a reference's adapter (exit status 2)."""


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _references(values: Sequence[str] | None) -> list[str]:
    names: list[str] = []
    for value in values or []:
        for name in (n.strip().lower() for n in value.split(",")):
            if not name:
                continue
            if name not in REFERENCES:
                raise BenchUsageError(
                    f"--against: unknown reference {name!r} (known: {', '.join(REFERENCES)})"
                )
            if name not in names:
                names.append(name)
    return names


def read_commands(path: str | None, split: str = DEFAULT_SPLIT) -> list[str]:
    """Command texts: from a JSONL file (`{"text": ...}` per line), or the packaged robot-dog split."""
    if path is None:
        from shadow_edge.tasks.robot_dog.splits import DATA_DIR

        try:
            lines = (DATA_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BenchRunError(
                f"the robot-dog {split} split is not installed ({exc}); pass --commands-file"
            ) from None
        where = f"robot-dog {split} split"
    else:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchInputError(
                f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        where = path
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise BenchInputError(f"{where}: line {number} is not JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise BenchInputError(f'{where}: line {number} has no "text" string')
        texts.append(item["text"])
    if not texts:
        raise BenchInputError(f"{where}: no commands in it")
    return texts


def reference_source(
    manifest_raw: dict[str, Any], base: str | None, adapter: str | None, model_dir: Path
) -> dict:
    """Base and adapter the references are built from: the options, else the manifest's `source`."""
    source = manifest_raw.get("source") if isinstance(manifest_raw.get("source"), dict) else {}
    base = base if base is not None else source.get("base")
    adapter = adapter if adapter is not None else source.get("adapter")
    if not adapter:
        raise BenchInputError(
            f"{model_dir / 'manifest.json'} does not say which adapter the model was exported from "
            "(source.adapter); pass --adapter PATH for the references"
        )

    def located(path: str) -> str:
        p = Path(path).expanduser()
        if not p.is_absolute() and not p.exists() and (model_dir / p).exists():
            p = model_dir / p  # recorded relative to the export directory
        return str(p)

    adapter = located(adapter)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise BenchInputError(
            f"adapter {adapter}: no adapter_config.json there (not a peft adapter directory)"
        )
    if base is not None:
        base = located(base)
        if not Path(base).is_dir():
            raise BenchInputError(f"base {base}: not a directory")
    return {"base": base, "adapter": adapter}


def _check_reference_packages(names: Sequence[str]) -> None:
    """Refuse early (before minutes of measuring) when a reference's packages are not installed (no import)."""
    for name in names:
        missing = [m for m in REFERENCE_PACKAGES[name] if find_spec(m) is None]
        if missing:
            raise BenchRunError(
                f"--against {name} needs {', '.join(missing)}, which is not installed here "
                "(pip install 'shadow-edge[export]'); the runtime itself does not need it"
            )


class ReferenceProcess:
    """One reference implementation in its own process (`bench_references.serve`): rounds of commands go in on its
    stdin, measurements come back on its stdout, its log is relayed as it comes."""

    def __init__(self, name: str, command: Sequence[str]) -> None:
        self.name = name
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._relay = threading.Thread(target=self._relay_log, daemon=True)
        self._relay.start()

    def _relay_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self.tail.append(line.rstrip())
                log.info("%s", line.rstrip())

    def _failed(self, why: str) -> BenchRunError:
        return BenchRunError(f"the {self.name} reference failed: {why}")

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:  # it exited: its last words say why
            code = self.process.wait()
            self._relay.join(timeout=5)
            last = self.tail[-1] if self.tail else f"exit status {code}"
            raise self._failed(last.removeprefix(f"{PROG} [{self.name}]: "))
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise self._failed(f"unreadable reply {line[:80]!r}") from None
        if "error" in reply:
            raise self._failed(str(reply["error"]))
        return reply

    def ready(self) -> dict[str, Any]:
        """Wait until the model is built; its details (implementation, versions, load time, ...)."""
        return dict(self._reply().get("details", {}))

    def measure(self, texts: Sequence[str], warmup: int = 0) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"texts": list(texts), "warmup": warmup}) + "\n")
            self.process.stdin.flush()
        except OSError:  # it died
            pass
        return self._reply()

    def close(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


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


def _validate(args: argparse.Namespace) -> None:
    for name, value, low in (
        ("--commands", args.commands, 0),
        ("--warmup", args.warmup, 0),
        ("--round-size", args.round_size, 1),
        ("--stream", args.stream, 0),
        ("--threads", args.threads, 1),
        ("--max-new-tokens", args.max_new_tokens, 1),
        ("--bandwidth-mb", args.bandwidth_mb, 1),
    ):
        if value is not None and value < low:
            raise BenchUsageError(f"{name} must be >= {low}, got {value}")
    if 0 < args.stream < 10:
        raise BenchUsageError(f"--stream needs at least 10 commands (got {args.stream})")


def bench(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Measure as the options say; returns the report (with per-command samples) and the references that failed."""
    from shadow_edge.runtime.commander import Commander, ModelLoadError
    from shadow_edge.runtime.generate import DEFAULT_MAX_NEW_TOKENS
    from shadow_edge.runtime.manifest import ManifestError, load_manifest
    from shadow_edge.runtime.session import physical_cores
    from shadow_edge.runtime.stats import strided

    from . import measure as core

    model_dir = Path(args.model_dir)
    references = _references(args.against)
    if not model_dir.is_dir():
        raise BenchInputError(
            f"MODEL_DIR {model_dir}: not a directory (expected a shadow-export output directory)"
        )
    try:
        manifest = load_manifest(model_dir, verify_files=False)  # Commander verifies every file below
    except ManifestError as exc:
        raise BenchInputError(f"cannot run the model in MODEL_DIR: {exc}") from None
    source = None
    if references and manifest.mode != "detached":
        raise BenchInputError(
            f"MODEL_DIR {model_dir} was exported with mode={manifest.mode}, but the references ({', '.join(references)}) run the "
            "detached shadow: compare a detached export, or measure this one without --against"
        )
    if references:
        source = reference_source(manifest.raw, args.base, args.adapter, model_dir)
        _check_reference_packages(references)
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
                    _error(str(exc))
                    errors[name] = str(exc)
                    processes.pop(name).close()
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
    ours = [s.program for s in samples]
    for name in references:
        if name in errors:
            report["against"][name] = {"error": errors[name]}
            continue
        try:
            entry = core.add_reference(report, name, {**details[name], **measured[name]}, our_programs=ours)
        except core.BenchError as exc:
            _error(str(exc))
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
    return report, list(errors)


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
                _error(str(exc))
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
        _validate(args)
        report, failed = bench(args)
    except BenchUsageError as exc:
        parser.error(str(exc))  # usage on stderr, exit status 2, like argparse's own checks
    except BenchInputError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except BenchRunError as exc:
        _error(str(exc))
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
        _error(f"{report_path}: cannot write the report ({exc.strerror or exc})")
        return EXIT_ERROR
    log.info("report: %s%s", report_path, f", plot: {plot_path}" if report["plot"] else "")
    if args.json:
        shown = {k: v for k, v in report.items() if k != "samples"}
        print(json.dumps(shown, indent=2, ensure_ascii=False), flush=True)
    return EXIT_ERROR if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
