"""`shadow-bench`'s options (the contract is `docs/spec/cli.md`) and the checks argparse cannot make itself."""

from __future__ import annotations

import argparse

from shadow_edge.bench.errors import PROG, BenchUsageError

DEFAULT_COMMANDS = 200
DEFAULT_WARMUP = 10
DEFAULT_ROUND_SIZE = 20


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
    _add_output_options(parser)
    _add_workload_options(parser)
    _add_reference_options(parser)
    _add_runtime_options(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return parser


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where the report goes."""
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


def _add_workload_options(parser: argparse.ArgumentParser) -> None:
    """What is measured, and in what order."""
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


def _add_reference_options(parser: argparse.ArgumentParser) -> None:
    """What the `--against` references are built from."""
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


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """How the model runs, and the bandwidth measurement."""
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


def validate_options(args: argparse.Namespace) -> None:
    """Refuse values argparse lets through (negative counts, a stream too short to show a trend)."""
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
