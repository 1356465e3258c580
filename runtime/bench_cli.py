"""`shadow-bench`: measure an exported model on this machine, optionally against a reference implementation.

The command-line contract is `shared/spec/cli.md`. Benchmarking is not implemented yet (issue 4): `main` parses
its arguments, says so on stderr and exits with status 2, reporting no numbers. Standard library only here, so the
command loads on a device without torch (a torch reference, when implemented, is imported only when asked for).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "shadow-bench"
NOT_IMPLEMENTED = f"{PROG}: not implemented yet (see issue 4)"
EXIT_NOT_IMPLEMENTED = 2


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
        help="reference implementation to compare with, e.g. torch or optimum; repeat the option "
        "(or separate names with commas) for several",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(NOT_IMPLEMENTED, file=sys.stderr)
    return EXIT_NOT_IMPLEMENTED


if __name__ == "__main__":
    sys.exit(main())
