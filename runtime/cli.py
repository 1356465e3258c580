"""`shadow-run`: text (or speech) in, robot-dog action program out, through an exported model on this device.

The command-line contract is `shared/spec/cli.md`. Running a model is not implemented yet (issue 4): `main` parses
its arguments, says so on stderr and exits with status 2, printing no results. Standard library only here, so the
command loads on a device without torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "shadow-run"
NOT_IMPLEMENTED = f"{PROG}: not implemented yet (see issue 4)"
EXIT_NOT_IMPLEMENTED = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Turn commands into robot-dog action programs with a model exported by shadow-export, on this "
            "machine (onnxruntime, no torch). Each result carries the program (canonical action language), its "
            "route (robot, remote or reject), the safety layer's verdict and the text-to-program latency."
        ),
    )
    parser.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="directory written by shadow-export (manifest.json, tokenizer.json, ONNX files)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="TEXT", help="one command as text, e.g. 'walk forward two metres'")
    source.add_argument(
        "--jsonl",
        metavar="FILE",
        help='one JSON object per line with at least "text"; prints one JSON object per input line, in order '
        '({"text", "program", "route", "accepted", "reason", "latency_ms"}); a bad line gives an object with '
        'an "error" field and the run goes on',
    )
    source.add_argument(
        "--wav", metavar="FILE", help="a WAV file with a spoken command (speech recognition first)"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON objects instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(NOT_IMPLEMENTED, file=sys.stderr)
    return EXIT_NOT_IMPLEMENTED


if __name__ == "__main__":
    sys.exit(main())
