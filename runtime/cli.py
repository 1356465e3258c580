"""`shadow-run`: text (or speech) in, robot-dog action program out, through an exported model on this device.

The command-line contract is `docs/spec/cli.md`. Sources: `--text`, `--jsonl` (one JSON object per line with at
least "text"; a bad line gives an {"error": ...} object and the run goes on), `--wav` (through the speech front end
`shadow_edge.runtime.asr.transcribe_wav(path) -> str`, when it is installed), or, with none of them, one command per
line on standard input. Exit status: 0 ok; 1 when it ran but failed (the input file vanished mid-run); 2 for bad
arguments or inputs (argparse's usage errors, a MODEL_DIR that cannot run, an unreadable --jsonl file), each one line
on stderr. Nothing heavy is imported before the arguments are parsed, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any, TextIO

from .logs import setup_logging

PROG = "shadow-run"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
ASR_MODULE = "shadow_edge.runtime.asr"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Turn commands into robot-dog action programs with a model exported by shadow-export, on this "
            "machine (onnxruntime, no torch). Each result carries the program (canonical action language), its "
            "route (robot, remote or reject), the safety layer's verdict and the text-to-program latency. With no "
            "--text/--jsonl/--wav, reads one command per line from standard input."
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
        'an "error" field and the run goes on ("-" reads standard input)',
    )
    source.add_argument(
        "--wav", metavar="FILE", help="a WAV file with a spoken command (speech recognition first)"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON objects instead of text")
    parser.add_argument(
        "--provider",
        default="auto",
        metavar="NAME",
        help="onnxruntime execution provider(s): auto (CUDA if available, else CPU), cpu, cuda, tensorrt, or a "
        "comma-separated list (default: auto)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N", help="intra-op threads (default: physical cores)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="longest program in tokens (default: 64)",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="P",
        help="programs whose weakest token probability is below P go to the remote route (default: 0.5)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and chosen")
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _jsonl_items(handle: TextIO) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
    """(line number, text or None, the object to report on a bad line) per non-blank line."""
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, {"line": number, "error": f"line {number}: not JSON ({exc.msg})"}
            continue
        if not isinstance(item, dict):
            yield number, None, {"line": number, "error": f"line {number}: expected a JSON object"}
        elif not isinstance(item.get("text"), str):
            problem = 'no "text" field' if "text" not in item else '"text" is not a string'
            yield number, None, {"line": number, "error": f"line {number}: {problem}", "input": item}
        else:
            yield number, item["text"], item


def _print_result(result: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        out = result.to_json()
        rest = {k: v for k, v in (extra or {}).items() if k != "text"}
        if rest:  # the input line's other fields (id, reference program, ...), kept apart from the result's
            out["input"] = rest
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return
    verdict = "accepted" if result.accepted else "not executed"
    program = result.program or "-"
    print(f"{program}\t[{result.route}, {verdict}] {result.reason} ({result.latency_ms:.1f} ms)", flush=True)


def _open_jsonl(path: str) -> Any:
    if path == "-":
        return nullcontext(sys.stdin)
    return open(path, encoding="utf-8", errors="replace")


def _transcribe(path: str) -> str:
    try:
        asr = importlib.import_module(ASR_MODULE)
    except ImportError:
        raise RuntimeError(
            "--wav needs the speech front end (shadow_edge.runtime.asr), which is not available in this install; "
            "give the command with --text instead"
        ) from None
    transcribe = getattr(asr, "transcribe_wav", None)
    if transcribe is None:
        raise RuntimeError(f"{ASR_MODULE} has no transcribe_wav(path); cannot read {path}")
    return transcribe(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, prog=PROG, quiet=True)
    for name, value, low in (("--threads", args.threads, 1), ("--max-new-tokens", args.max_new_tokens, 1)):
        if value is not None and value < low:
            _error(f"{name} must be >= {low}, got {value}")
            return EXIT_USAGE
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        _error(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
        return EXIT_USAGE

    text = args.text
    if args.wav is not None:
        try:
            text = _transcribe(args.wav)
        except Exception as exc:  # the front end reports its own problems (missing file, bad WAV) in words
            _error(str(exc))
            return EXIT_ERROR
    if args.jsonl not in (None, "-") and not os.access(args.jsonl, os.R_OK):
        _error(f"{args.jsonl}: cannot read it (missing or not readable)")  # before paying for the model
        return EXIT_USAGE

    from .commander import DEFAULT_MIN_CONFIDENCE, Commander, ModelLoadError
    from .generate import DEFAULT_MAX_NEW_TOKENS

    try:
        commander = Commander(
            args.model_dir,
            providers=args.provider,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            min_confidence=DEFAULT_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence,
        )
    except ModelLoadError as exc:
        _error(f"cannot run the model: {exc}")
        return EXIT_USAGE
    logging.getLogger(__name__).info("running %s", commander.info())

    try:
        if args.jsonl is not None:
            with _open_jsonl(args.jsonl) as handle:
                for _, line_text, item in _jsonl_items(handle):
                    if line_text is None:
                        print(json.dumps(item, ensure_ascii=False), flush=True)
                        continue
                    _print_result(commander.run(line_text), args.json, item)
        elif text is not None:
            _print_result(commander.run(text), args.json)
        else:
            for line in sys.stdin:
                if line.strip():
                    _print_result(commander.run(line.rstrip("\n")), args.json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    except OSError as exc:  # the JSONL file vanished or became unreadable mid-run
        _error(f"{args.jsonl}: {exc.strerror or exc}")
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
