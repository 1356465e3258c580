#!/usr/bin/env python3
"""Speech benchmark: every recogniser side by side, in one run, on the same audio; a JSON report and a table.

Audio: the English test commands rendered by espeak-ng (scripts/make_speech_set.py: four voices, two speeds), the
same WAVs with white noise at `--snr` dB (numpy, fixed seed; SNR over the speech samples), and the human recording
of pocketsphinx-testdata ("go forward ten meters"). Variants: the `whisper` engine as shipped (beam 5, fitted
window), beam 1, the 30 s window, faster-whisper's own `WhisperModel.transcribe` with and without timestamps, and
`pocketsphinx-grammar`.

Early decision (`--early`): the clean WAVs streamed through the VAD segmenter (hangover `--hangover`); at the first
pause of `EARLY_S` the speech so far is recognised, and a transcript that is already a whole sentence of the command
grammar is decided there instead of after the hangover. Reported: how often it fires, how often the early
transcript differs from the full one, and the speech end -> transcript median either way.

Per variant: exact transcript rate and WER (comparison form of `speech.grammar.normalize_words`; rapidfuzz edit
distance over words), median ASR and VAD latency. With an exported model (`--model-dir`, default build/robot-dog,
from `bash scripts/demo.sh`), also the exact-program rate, the executed-wrong rate (accepted by the safety layer but
not the reference program) and the speech end -> program median (VAD hangover + ASR + model; the node's own time
is measured by scripts/eval_system.py).

    python3 scripts/bench_speech.py --limit 30 --json build/speech/bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from shadow_edge.speech import AudioError, make_recognizer, read_wav
from shadow_edge.speech.grammar import grammar_matcher, is_complete_command, normalize_words
from shadow_edge.speech.vad import DEFAULT_HANGOVER_S, FRAME, Segmenter
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
EARLY_S = 0.1
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "whisper beam 5 fitted window (shipped)": ("whisper", {}),
    "whisper beam 1": ("whisper", {"beam_size": 1}),
    "whisper 30 s window": ("whisper", {"window_s": 30}),
    "faster-whisper transcribe(), timestamps": ("whisper", {"stock": True, "timestamps": True}),
    "faster-whisper transcribe(), without_timestamps": ("whisper", {"stock": True}),
    "pocketsphinx-grammar": ("pocketsphinx-grammar", {}),
}


def add_noise(src: Path, out: Path, snr_db: float, seed: int) -> None:
    with wave.open(str(src), "rb") as w:
        params, samples = w.getparams(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    x = samples.astype(np.float64)
    speech = x[np.abs(x) > 0.01 * 32768] if np.any(np.abs(x) > 0.01 * 32768) else x
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (snr_db / 20)
    noisy = x + np.random.default_rng(seed).normal(0, noise_rms, len(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(np.clip(np.round(noisy), -32768, 32767).astype(np.int16).tobytes())


def build_set(args) -> list[dict[str, Any]]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_speech_set.py"), "--langs", "en", "--limit",
                    str(args.limit), "--per-text", "2", "--out", str(args.speech_dir)], check=True)  # fmt: skip
    rows = [json.loads(line) for line in (args.speech_dir / "manifest.jsonl").read_text().splitlines()]
    items = [{**r, "condition": "clean" if r["source"] == "espeak-ng" else "human"} for r in rows]
    for i, row in enumerate(r for r in rows if r["source"] == "espeak-ng"):
        noisy = Path("noisy") / row["wav"]
        if not (args.speech_dir / noisy).is_file():
            add_noise(args.speech_dir / row["wav"], args.speech_dir / noisy, args.snr, seed=i)
        items.append({**row, "wav": str(noisy), "condition": f"noisy {args.snr:g} dB"})
    return items


def run_variant(name: str, engine: str, options: dict, items: list[dict], args, commander) -> list[dict]:
    recognizer = make_recognizer(engine, **options)
    out = []
    for item in tqdm(items, desc=name, leave=False):
        try:
            t = recognizer.transcribe(read_wav(args.speech_dir / item["wav"]))
        except AudioError as exc:
            out.append({**item, "heard": "", "error": str(exc)})
            continue
        ref, hyp = normalize_words(item["text"]), normalize_words(t.text)
        row = {**item, "heard": t.text, "status": t.status, "vad_ms": t.vad_ms, "asr_ms": t.asr_ms,
               "exact": hyp == ref, "word_errors": Levenshtein.distance(ref, hyp), "words": len(ref)}  # fmt: skip
        if commander is not None:
            if t.text:
                result = commander.run(t.text)
                row.update(program=result.program, accepted=result.accepted, model_ms=result.latency_ms)
            else:  # nothing heard: refused before the model, nothing moves
                row.update(program=None, accepted=False, model_ms=0.0)
            row["program_exact"] = row["program"] == item["program"]
            row["executed_wrong"] = bool(row["accepted"]) and not row["program_exact"]
        out.append(row)
    return out


def early_decision(items: list[dict], args) -> dict[str, Any]:
    """Streamed clean WAVs: decide at the first pause when the transcript is a whole grammar sentence (docstring)."""
    recognizer = make_recognizer("whisper")
    matcher = grammar_matcher()
    fired = changed = 0
    waits_early, waits_hangover = [], []
    clean = [i for i in items if i["condition"] == "clean"]
    for item in tqdm(clean, desc="early decision", leave=False):
        audio = np.concatenate([read_wav(args.speech_dir / item["wav"]), np.zeros(16000, dtype=np.float32)])
        segmenter = Segmenter(recognizer.vad, hangover_s=args.hangover, early_s=EARLY_S)
        early = full = None
        for i in range(0, len(audio), FRAME):
            for seg in segmenter.feed(audio[i : i + FRAME]):
                t = recognizer.transcribe(seg.samples, trim=False)
                wait = 1000 * (seg.emitted_s - seg.speech_end_s) + t.asr_ms
                if seg.kind == "pause" and early is None and is_complete_command(t.text, matcher):
                    early = (t.text, wait)
                elif seg.kind == "end":
                    full = (t.text, wait)  # the last utterance of the file is the command's end
        if full is None:
            continue
        waits_hangover.append(full[1])
        if early is not None:
            fired += 1
            changed += normalize_words(early[0]) != normalize_words(full[0])
            waits_early.append(early[1])
        else:
            waits_early.append(full[1])
    med = lambda v: round(statistics.median(v), 1) if v else None  # noqa: E731
    return {
        "n": len(waits_hangover),
        "early_s": EARLY_S,
        "fired": fired,
        "early_transcript_differs": changed,
        "speech_end_to_transcript_ms_median_hangover": med(waits_hangover),
        "speech_end_to_transcript_ms_median_early": med(waits_early),
    }


def summarize(rows: list[dict], hangover_s: float) -> dict[str, Any]:
    def med(key):
        values = [r[key] for r in rows if key in r]
        return round(statistics.median(values), 1) if values else None

    summary = {
        "n": len(rows),
        "exact_transcript": round(sum(r.get("exact", False) for r in rows) / len(rows), 3),
        "wer": round(
            sum(r.get("word_errors", r.get("words", 0)) for r in rows)
            / max(1, sum(r.get("words", 0) for r in rows)),
            3,
        ),  # fmt: skip
        "asr_ms_median": med("asr_ms"),
        "vad_ms_median": med("vad_ms"),
    }
    if rows and "program_exact" in rows[0]:
        summary["exact_program"] = round(sum(r["program_exact"] for r in rows) / len(rows), 3)
        summary["executed_wrong"] = round(sum(r["executed_wrong"] for r in rows) / len(rows), 3)
        ends = [1000 * hangover_s + r["asr_ms"] + r["model_ms"] for r in rows if "asr_ms" in r]
        summary["speech_end_to_program_ms_median"] = round(statistics.median(ends), 1)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=30, help="English test commands (each in two voices/speeds)")
    p.add_argument("--snr", type=float, default=20.0, help="SNR of the noisy copies in dB")
    p.add_argument("--speech-dir", type=Path, default=ROOT / "build" / "speech" / "bench")
    p.add_argument("--model-dir", type=Path, default=ROOT / "build" / "robot-dog")
    p.add_argument(
        "--variants", default=";".join(VARIANTS), help="separated by ;, from: " + "; ".join(VARIANTS)
    )
    p.add_argument("--hangover", type=float, default=DEFAULT_HANGOVER_S, help="VAD hangover in the latency")
    p.add_argument("--early", action="store_true", help="also measure the grammar-complete early decision")
    p.add_argument("--json", type=Path, default=ROOT / "build" / "speech" / "bench.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = [n.strip() for n in args.variants.split(";") if n.strip()]
    if args.limit < 1 or not names or any(n not in VARIANTS for n in names):
        print(f"error: --limit >= 1 and --variants from: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    items = build_set(args)
    commander = None
    report: dict[str, Any] = {"items": len(items), "model_dir": None, "hangover_s": args.hangover,
                              "load_avg_start": os.getloadavg(), "variants": {}}  # fmt: skip
    if (args.model_dir / "manifest.json").is_file():
        from shadow_edge.runtime.commander import Commander

        commander = Commander(str(args.model_dir), providers="cpu")
        typed = [commander.run(i["text"]).program == i["program"] for i in items]
        report.update(
            model_dir=str(args.model_dir), typed_text_exact_program=round(sum(typed) / len(typed), 3)
        )
    for name in names:
        engine, options = VARIANTS[name]
        rows = run_variant(name, engine, options, items, args, commander)
        conditions = sorted({r["condition"] for r in rows})
        report["variants"][name] = {
            "engine": engine,
            "options": options,
            "all": summarize(rows, args.hangover),
            "by_condition": {
                c: summarize([r for r in rows if r["condition"] == c], args.hangover) for c in conditions
            },
            "rows": rows,
        }
    if args.early:
        report["early_decision"] = early_decision(items, args)
    report["load_avg_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    cols = ["exact_transcript", "wer", "asr_ms_median", "vad_ms_median", "exact_program", "executed_wrong",
            "speech_end_to_program_ms_median"]  # fmt: skip
    print("| variant | condition | n | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 3))
    for name, v in report["variants"].items():
        for cond, s in [("all", v["all"]), *v["by_condition"].items()]:
            print(f"| {name} | {cond} | {s['n']} | " + " | ".join(str(s.get(c, "-")) for c in cols) + " |")
    if "typed_text_exact_program" in report:
        print(f"typed text of the same commands -> exact program: {report['typed_text_exact_program']}")
    if "early_decision" in report:
        print(f"early decision: {json.dumps(report['early_decision'])}")
    print(f"load average start {report['load_avg_start']}, end {report['load_avg_end']}; report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
