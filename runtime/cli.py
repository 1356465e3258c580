"""`shadow-run`: text (or speech) in, robot-dog action program out, through an exported model on this device.

The command-line contract is `docs/spec/cli.md`. Sources: `--text`, `--jsonl` (one JSON object per line with at
least "text", or "wav" for a spoken command; a bad line gives an {"error": ...} object and the run goes on), `--wav`
(through the speech front end `shadow_edge.speech`, the `audio` extra; `--asr-engine` picks the recogniser), or,
with none of them, one command per line on standard input. Speech that holds no command the recogniser trusts is
reported with its reason and never reaches the model. Exit status: 0 ok; 1 when it ran but failed (the input file vanished mid-run); 2 for bad
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
ASR_MODULE = "shadow_edge.speech"


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
        help='one JSON object per line with at least "text", or "wav" (a WAV file, relative to FILE\'s folder); '
        'prints one JSON object per input line, in order ({"text", "program", "route", "accepted", "reason", '
        '"latency_ms"}, for speech also "heard" (the raw transcript), "corrected" (the text the model read), '
        '"corrections" and "timings_ms" {"vad", "asr", "model"}); a bad line gives an '
        'object with an "error" field and the run goes on ("-" reads standard input)',
    )
    source.add_argument(
        "--wav", metavar="FILE", help="a WAV file with a spoken command (speech recognition first)"
    )
    parser.add_argument(
        "--asr-engine",
        default=None,
        choices=("whisper", "pocketsphinx-grammar"),
        help="speech recogniser for --wav and wav lines: whisper (default; Whisper tiny.en on faster-whisper) or "
        "pocketsphinx-grammar (light, command grammar only)",
    )
    parser.add_argument(
        "--asr-model",
        default=None,
        metavar="DIR",
        help="whisper engine: a CTranslate2 Whisper model directory instead of the bundled tiny.en",
    )
    parser.add_argument(
        "--no-asr-correction",
        action="store_true",
        help="give the model the recogniser's transcript as heard, without snapping misheard words next to "
        "command words to the command vocabulary ('sit dawn' -> 'sit down')",
    )
    parser.add_argument(
        "--no-asr-alternatives",
        action="store_true",
        help="use only the recogniser's best transcript; by default, where the export's speech gate was calibrated "
        "with them (next_best in routing.json), the recogniser's next-best transcripts are read when the first one's "
        "program is held back, and the program most of them agree on may be executed (runtime/alternatives.py)",
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
        elif "text" not in item and isinstance(item.get("wav"), str):
            yield number, None, item  # spoken: recognised by the caller
        elif not isinstance(item.get("text"), str):
            problem = 'no "text" field' if "text" not in item else '"text" is not a string'
            yield number, None, {"line": number, "error": f"line {number}: {problem}", "input": item}
        else:
            yield number, item["text"], item


def _print_result(result: Any, as_json: bool, extra: dict[str, Any] | None = None, heard: Any = None) -> None:
    if heard is not None:  # a Transcript: what speech recognition heard, and where the time went
        timings = {"vad": heard.vad_ms, "asr": heard.asr_ms, "model": result.latency_ms}
        timings = {k: round(v, 3) for k, v in timings.items()}
    if as_json:
        out = result.to_json()
        if heard is not None:
            out.update(heard=heard.heard or heard.text, corrected=heard.text, asr_engine=heard.engine)
            out.update(corrections=[list(c) for c in heard.corrections], timings_ms=timings)
            out.update(alternatives=list(heard.alternatives))
        rest = {k: v for k, v in (extra or {}).items() if k != "text"}
        if rest:  # the input line's other fields (id, reference program, ...), kept apart from the result's
            out["input"] = rest
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return
    if heard is not None:
        fixed = f" -> corrected {heard.text!r}" if heard.corrections else ""
        raw = heard.heard or heard.text
        print(f"heard: {raw!r}{fixed} (vad {timings['vad']:.1f} ms, asr {timings['asr']:.1f} ms)", flush=True)
    verdict = "accepted" if result.accepted else "not executed"
    program = result.program or "-"
    print(f"{program}\t[{result.route}, {verdict}] {result.reason} ({result.latency_ms:.1f} ms)", flush=True)


def _alternatives(heard: Any, args: argparse.Namespace) -> tuple[str, ...]:
    """The recogniser's next-best transcripts of a spoken command (none for typed text or when turned off)."""
    return () if heard is None or args.no_asr_alternatives else heard.alternatives


def _open_jsonl(path: str) -> Any:
    if path == "-":
        return nullcontext(sys.stdin)
    return open(path, encoding="utf-8", errors="replace")


class _Speech:
    """The speech front end, loaded on first use: one recogniser for every WAV of the run."""

    def __init__(self, engine: str | None, model: str | None, correct: bool = True) -> None:
        self.engine, self.model, self._recognizer, self._speech = engine, model, None, None
        self.correct = correct

    def transcribe(self, path: str) -> Any:
        """The Transcript of `path` with text; ValueError (bad audio, nothing heard) or RuntimeError (no
        recogniser) with the reason in words."""
        if self._speech is None:
            try:
                self._speech = importlib.import_module(ASR_MODULE)
            except ImportError:
                raise RuntimeError(
                    f"speech input needs the speech front end ({ASR_MODULE}): pip install 'shadow-edge[audio]'; "
                    "give the command with --text instead"
                ) from None
        try:
            samples = self._speech.read_wav(path)  # a bad file is refused before the recogniser is loaded
        except self._speech.AudioError as exc:
            raise ValueError(f"speech front end: {exc}") from None
        if self._recognizer is None:
            options = {"model_path": self.model} if self.model else {}
            try:
                self._recognizer = self._speech.make_recognizer(
                    self.engine or self._speech.DEFAULT_ENGINE, correct=self.correct, **options
                )
            except (RuntimeError, ValueError) as exc:
                raise RuntimeError(f"speech front end: {exc}") from None
        try:
            heard = self._recognizer.transcribe(samples)
        except self._speech.AudioError as exc:
            raise ValueError(f"speech front end: {path}: {exc}") from None
        if not heard.text:
            raise ValueError(f"speech front end: {path}: {heard.status}; nothing was sent to the model")
        return heard


def _speech_line(speech: _Speech, item: dict[str, Any], number: int, base: str) -> tuple[Any, dict[str, Any]]:
    """(Transcript or None, the object to report) for a "wav" line; its path is relative to the JSONL's folder."""
    path = os.path.join(base, item["wav"])
    try:
        return speech.transcribe(path), item
    except (ValueError, RuntimeError) as exc:
        return None, {"line": number, "error": f"line {number}: {exc}", "input": item}


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

    text, heard = args.text, None
    speech = _Speech(args.asr_engine, args.asr_model, correct=not args.no_asr_correction)
    if args.wav is not None:
        try:
            heard = speech.transcribe(args.wav)
        except ValueError as exc:  # bad audio or nothing heard: the reason in words, no model, no motion
            _error(str(exc))
            return EXIT_USAGE
        except RuntimeError as exc:  # no recogniser in this install
            _error(str(exc))
            return EXIT_ERROR
        text = heard.text
    if args.jsonl not in (None, "-") and not os.access(args.jsonl, os.R_OK):
        _error(f"{args.jsonl}: cannot read it (missing or not readable)")  # before paying for the model
        return EXIT_USAGE

    from .commander import Commander, ModelLoadError
    from .generate import DEFAULT_MAX_NEW_TOKENS

    try:
        commander = Commander(
            args.model_dir,
            providers=args.provider,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            min_confidence=args.min_confidence,  # None: the export's calibrated gate (routing.json)
        )
    except ModelLoadError as exc:
        _error(f"cannot run the model: {exc}")
        return EXIT_USAGE
    logging.getLogger(__name__).info("running %s", commander.info())

    try:
        if args.jsonl is not None:
            base = "." if args.jsonl == "-" else os.path.dirname(args.jsonl)
            with _open_jsonl(args.jsonl) as handle:
                for number, line_text, item in _jsonl_items(handle):
                    line_heard = None
                    if line_text is None and "wav" in item and "error" not in item:
                        line_heard, item = _speech_line(speech, item, number, base)
                        line_text = line_heard.text if line_heard is not None else None
                    if line_text is None:
                        print(json.dumps(item, ensure_ascii=False), flush=True)
                        continue
                    result = commander.run(
                        line_text, spoken=line_heard is not None, alternatives=_alternatives(line_heard, args)
                    )
                    _print_result(result, args.json, item, line_heard)
        elif text is not None:
            result = commander.run(text, spoken=heard is not None, alternatives=_alternatives(heard, args))
            _print_result(result, args.json, heard=heard)
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
