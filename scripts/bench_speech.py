#!/usr/bin/env python3
"""Speech benchmark: engines side by side, in one run, on the same audio, through the model and the node's logic.

    python3 scripts/bench_speech.py build/robot-dog                 # the full comparison, a JSON report + tables
    python3 scripts/bench_speech.py build/robot-dog --limit 10      # quicker

Audio (scripts/make_speech_set.py): `--limit` English test commands, each rendered in two voices at 140 or 175 wpm,
one of espeak-ng's and one of flite's (the voices alternate); the same WAVs with white noise at `--snr` dB (numpy,
fixed seed; SNR over the speech samples); the human "go forward ten meters" of pocketsphinx-testdata.

Per variant (engine and options, `VARIANTS`), per condition (clean, noisy, human) and per source (the synthesiser,
or the recording):
- transcripts: exact rate and WER (comparison form `speech.grammar.normalize_words`; rapidfuzz word edit distance);
- programs, through the same code as `shadow-run MODEL_DIR --jsonl` (`Commander.run`), from the raw transcript and
  from the transcript after command-vocabulary correction (`speech.correct`), side by side: exact program (the
  reference program of the command) and executed-wrong (accepted by the safety layer but not the reference); and
  from the corrected transcript alone against the shipped path, which also gives the Commander the recogniser's
  next-best transcripts (`runtime.alternatives`), with how often one of those was executed;
- the split of speech end -> first motion message: VAD (the hangover the segmenter waits, plus the VAD's compute
  for those frames), ASR, model, node (the node's logic, `shadow_dog.logic.DogNodeLogic` with in-memory outputs,
  from the model's answer to its first motion message), and the total.

Latency options (`--stream-variant`, default the shipped whisper): the WAVs streamed frame by frame through the
VAD segmenter, as the microphone path does:
- hangover: for each of `--hangovers`, how often an utterance is cut in two (a command decided on its first part)
  and what that saves;
- decoding during speech: the utterance so far is recognised, and the model run, at each pause of `EARLY_S`; when
  the hangover then passes with no more speech, the same audio is what was decoded, so the program is ready and only
  max(hangover, pause + ASR + model) is waited. Accuracy is that of the full decode by construction (the same
  samples); what it costs is the extra decodes, reported;
- grammar-complete early decision: a transcript that is one whole sentence of the command grammar at the first
  pause is decided there, without the rest of the hangover: how often it fires and how often it differs from the
  full utterance's transcript (a command cut short).

Accuracy does not depend on the machine's load; latency does: compare the medians of one run, and see the load
averages the report records.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from shadow_edge.speech import AudioError, make_recognizer, read_wav
from shadow_edge.speech.grammar import grammar_matcher, is_complete_command, normalize_words
from shadow_edge.speech.vad import DEFAULT_HANGOVER_S, DEFAULT_PAD_S, FRAME, FRAME_S, Segmenter, same_speech
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_speech_set import SYNTHESIZERS, with_white_noise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EARLY_S = DEFAULT_PAD_S  # a pause as long as the VAD's pad: the utterance so far is then the same samples
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "whisper beam 5 (shipped)": ("whisper", {}),
    "whisper beam 1": ("whisper", {"beam_size": 1}),
    "pocketsphinx-grammar": ("pocketsphinx-grammar", {}),
    # slower references, by --variants
    "whisper 30 s window": ("whisper", {"window_s": 30}),
    "faster-whisper transcribe()": ("whisper", {"stock": True}),
}
DEFAULT_VARIANTS = ("whisper beam 5 (shipped)", "whisper beam 1", "pocketsphinx-grammar")
DEFAULT_HANGOVERS = (0.15, 0.2, 0.3)


def add_noise(src: Path, out: Path, snr_db: float, seed: int) -> None:
    with wave.open(str(src), "rb") as w:
        params, samples = w.getparams(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    noisy = with_white_noise(samples, snr_db, seed, full_scale=32768)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(np.clip(np.round(noisy), -32768, 32767).astype(np.int16).tobytes())


def build_set(args) -> list[dict[str, Any]]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_speech_set.py"), "--langs", "en", "--limit",
                    str(args.limit), "--per-text", "2", "--out", str(args.speech_dir)], check=True)  # fmt: skip
    rows = [json.loads(line) for line in (args.speech_dir / "manifest.jsonl").read_text().splitlines()]
    items = [{**r, "condition": "clean" if r["source"] in SYNTHESIZERS else "human"} for r in rows]
    for i, row in enumerate(r for r in rows if r["source"] in SYNTHESIZERS):
        noisy = Path("noisy") / row["wav"]
        if not (args.speech_dir / noisy).is_file():
            add_noise(args.speech_dir / row["wav"], args.speech_dir / noisy, args.snr, seed=i)
        items.append({**row, "wav": str(noisy), "condition": f"noisy {args.snr:g} dB"})
    return items


class NodeTimer:
    """The node's logic with in-memory outputs: text -> model -> safety -> executor -> the first motion message."""

    def __init__(self, commander) -> None:
        sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))
        from shadow_dog.config import NodeConfig
        from shadow_dog.logic import DogNodeLogic
        from shadow_dog.outputs import MemoryOutputs

        self.outputs = MemoryOutputs(time.monotonic)
        self.node = DogNodeLogic(self.outputs, commander, NodeConfig(go2_sport_output=True))

    def node_ms(self, text: str, asr_ms: float, alternatives: tuple[str, ...] = ()) -> float | None:
        """The node's own time (model answer -> first motion message) for `text`; None when nothing moved."""
        before = len(self.outputs.of("program"))
        self.node.submit_speech(
            text, speech_end_at=time.monotonic() - asr_ms / 1000.0, asr_ms=asr_ms, alternatives=alternatives
        )
        while self.node.process_next():
            pass
        self.node.stop("benchmark: next command")  # each command starts from rest
        for record in self.outputs.of("program")[before:]:
            node = (record.get("latencies_ms") or {}).get("node")
            if node is not None:
                return float(node)
        return None


def run_program(commander, text: str, reference: str, alternatives: tuple[str, ...] = ()) -> dict[str, Any]:
    if not text:  # nothing heard: refused before the model, nothing moves
        return {
            "predicted": None,
            "accepted": False,
            "model_ms": 0.0,
            "exact": False,
            "executed_wrong": False,
            "alternative": None,
        }
    result = commander.run(text, spoken=True, alternatives=alternatives)  # a transcript: the speech gate
    exact = result.program == reference
    return {"predicted": result.program, "accepted": bool(result.accepted), "model_ms": result.latency_ms,
            "exact": exact, "executed_wrong": bool(result.accepted) and not exact,
            "alternative": result.alternative}  # fmt: skip


def run_variant(
    name: str, engine: str, options: dict, items: list[dict], args, commander, node
) -> list[dict]:
    recognizer = make_recognizer(engine, **options)  # correction on: `heard` raw, `text` corrected
    out = []
    for item in tqdm(items, desc=name, leave=False):
        try:
            samples = read_wav(args.speech_dir / item["wav"])
            t = recognizer.transcribe(samples)
        except AudioError as exc:
            out.append({**item, "heard": "", "error": str(exc)})
            continue
        ref = normalize_words(item["text"])
        row = {**item, "heard": t.heard, "corrected": t.text, "corrections": t.corrections, "status": t.status,
               "asr_ms": t.asr_ms, "vad_frame_ms": t.vad_ms / max(1, len(samples) // FRAME),
               "exact": normalize_words(t.heard) == ref,
               "word_errors": Levenshtein.distance(ref, normalize_words(t.heard)), "words": len(ref)}  # fmt: skip
        if commander is not None:
            row["raw"] = run_program(commander, t.heard, item["program"])
            same = t.text == t.heard
            row["first"] = row["raw"] if same else run_program(commander, t.text, item["program"])
            row["fixed"] = run_program(commander, t.text, item["program"], t.alternatives)  # as shipped
            row["alternatives"] = list(t.alternatives)
            moved = node is not None and t.text
            row["node_ms"] = node.node_ms(t.text, t.asr_ms, t.alternatives) if moved else None
        out.append(row)
    return out


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def _rate(rows: list[dict], test) -> float:
    return round(sum(bool(test(r)) for r in rows) / len(rows), 3) if rows else 0.0


def summarize(rows: list[dict], hangover_s: float) -> dict[str, Any]:
    words = max(1, sum(r.get("words", 0) for r in rows))
    summary: dict[str, Any] = {
        "n": len(rows),
        "exact_transcript": _rate(rows, lambda r: r.get("exact")),
        "wer": round(sum(r.get("word_errors", r.get("words", 0)) for r in rows) / words, 3),
        "corrected_transcripts": sum(bool(r.get("corrections")) for r in rows),
        "asr_ms_median": _median([r.get("asr_ms") for r in rows]),
    }
    if not any("raw" in r for r in rows):
        return summary
    for key, label in (("raw", "_without_correction"), ("first", "_best_transcript_only"), ("fixed", "")):
        summary["exact_program" + label] = _rate(rows, lambda r, k=key: r.get(k, {}).get("exact"))
        summary["executed_wrong" + label] = _rate(rows, lambda r, k=key: r.get(k, {}).get("executed_wrong"))
        summary["executed" + label] = _rate(rows, lambda r, k=key: r.get(k, {}).get("accepted"))
    summary["executed_next_best"] = _rate(rows, lambda r: r.get("fixed", {}).get("alternative"))
    hangover_frames = round(hangover_s / FRAME_S)
    vad = [1000 * hangover_s + hangover_frames * r["vad_frame_ms"] for r in rows if "vad_frame_ms" in r]
    model = [r["fixed"]["model_ms"] for r in rows if "fixed" in r and r["fixed"]["predicted"] is not None]
    node = [r.get("node_ms") for r in rows]
    total = [
        v + r["asr_ms"] + r["fixed"]["model_ms"] + r["node_ms"]
        for v, r in zip(vad, [r for r in rows if "vad_frame_ms" in r], strict=True)
        if r.get("node_ms") is not None
    ]
    summary["speech_end_to_first_motion_ms"] = {
        "vad": _median(vad),
        "asr": summary["asr_ms_median"],
        "model": _median(model),
        "node": _median(node),
        "total": _median(total),
        "n_moved": len(total),
    }
    return summary


def stream_options(items: list[dict], args, engine: str, options: dict, commander) -> dict[str, Any]:
    """The latency options on streamed audio (module docstring): hangovers, decoding during speech, early decision."""
    recognizer = make_recognizer(engine, **options)
    matcher = grammar_matcher()
    streamed = [i for i in items if i["condition"] != "human"]
    cut = {h: 0 for h in args.hangovers}
    rows = []
    for item in tqdm(streamed, desc="streamed", leave=False):
        audio = np.concatenate([read_wav(args.speech_dir / item["wav"]), np.zeros(16000, dtype=np.float32)])
        for h in args.hangovers:  # VAD only: is the utterance cut in two?
            segmenter = Segmenter(recognizer.vad, hangover_s=h)
            ends = sum(
                s.kind == "end"
                for i in range(0, len(audio), FRAME)
                for s in segmenter.feed(audio[i : i + FRAME])
            )
            cut[h] += ends > 1
        segmenter = Segmenter(recognizer.vad, hangover_s=args.hangover, early_s=EARLY_S)
        speculative = early = final = None
        decodes = 0
        for i in range(0, len(audio), FRAME):
            for seg in segmenter.feed(audio[i : i + FRAME]):
                wait_ms = 1000 * (seg.emitted_s - seg.speech_end_s)  # the VAD's wait after the speech end
                if seg.kind == "end" and speculative is not None and same_speech(speculative[0], seg):
                    t, model_ms, pause_ms = speculative[1:]  # decoded during speech: ready
                    final = (t, model_ms, wait_ms, max(wait_ms, pause_ms + t.asr_ms + model_ms))
                    speculative = None
                    continue
                t = recognizer.transcribe(seg.samples, trim=False)
                decodes += 1
                model_ms = (
                    commander.run(t.text, spoken=True, alternatives=t.alternatives).latency_ms
                    if t.text
                    else 0.0
                )
                if seg.kind == "pause":
                    speculative = (seg, t, model_ms, wait_ms)
                    if early is None and is_complete_command(t.text, matcher):
                        early = (t, wait_ms + t.asr_ms + model_ms)
                else:
                    final = (t, model_ms, wait_ms, wait_ms + t.asr_ms + model_ms)
                    speculative = None
        if final is None:
            continue
        t, model_ms, wait_ms, during_ms = final
        after_ms = wait_ms + t.asr_ms + model_ms
        rows.append({
            "wav": item["wav"], "heard": t.text, "after_hangover_ms": after_ms, "during_speech_ms": during_ms,
            "ready_at_end": during_ms < after_ms, "decodes": decodes, "early_fired": early is not None,
            "early_differs": early is not None and normalize_words(early[0].text) != normalize_words(t.text),
            "early_ms": early[1] if early is not None else after_ms,
        })  # fmt: skip
    n = max(1, len(streamed))
    return {
        "n": len(rows),
        "stream_variant": args.stream_variant,
        "early_s": EARLY_S,
        "hangover_s": args.hangover,
        "hangover_cuts_utterance": {f"{h:g}": round(cut[h] / n, 3) for h in args.hangovers},
        "speech_end_to_program_ms_median": {
            "after_hangover": _median([r["after_hangover_ms"] for r in rows]),
            "decoding_during_speech": _median([r["during_speech_ms"] for r in rows]),
            "grammar_complete_early_decision": _median([r["early_ms"] for r in rows]),
        },
        "decoded_during_speech_ready_at_end": _rate(rows, lambda r: r["ready_at_end"]),
        "decodes_per_utterance_mean": round(statistics.mean([r["decodes"] for r in rows]), 2)
        if rows
        else None,
        "early_decision_fired": _rate(rows, lambda r: r["early_fired"]),
        "early_decision_differs": _rate(rows, lambda r: r["early_differs"]),
        "rows": rows,
    }


def print_tables(report: dict[str, Any]) -> None:
    cols = ["exact_transcript", "wer", "exact_program_without_correction", "exact_program",
            "executed_wrong_without_correction", "executed_wrong", "corrected_transcripts",
            "executed_best_transcript_only", "executed_wrong_best_transcript_only", "executed",
            "executed_next_best"]  # fmt: skip
    print("| variant | condition | n | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 3))
    for name, v in report["variants"].items():
        for cond, s in [("all", v["all"]), *v["by_condition"].items(), *v.get("by_source", {}).items()]:
            print(f"| {name} | {cond} | {s['n']} | " + " | ".join(str(s.get(c, "-")) for c in cols) + " |")
    print("\nspeech end -> first motion message, medians in ms (VAD = hangover + its frames' compute)")
    print("| variant | condition | vad | asr | model | node | total |")
    print("|---|---|---|---|---|---|---|")
    for name, v in report["variants"].items():
        for cond, s in [("all", v["all"]), *v["by_condition"].items(), *v.get("by_source", {}).items()]:
            lat = s.get("speech_end_to_first_motion_ms", {})
            print(f"| {name} | {cond} | " + " | ".join(str(lat.get(k, "-")) for k in ("vad", "asr", "model", "node", "total")) + " |")  # fmt: skip
    if "typed_text_exact_program" in report:
        print(f"\ntyped text of the same commands -> exact program: {report['typed_text_exact_program']}")
    if "streaming" in report:
        s = {k: v for k, v in report["streaming"].items() if k != "rows"}
        print(f"streamed ({s['stream_variant']}): {json.dumps(s)}")
    print(f"load average start {report['load_avg_start']}, end {report['load_avg_end']}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", nargs="?", type=Path, default=ROOT / "build" / "robot-dog",
                   help="an export of shadow-export (default build/robot-dog); programs are not measured without one")  # fmt: skip
    p.add_argument("--limit", type=int, default=25, help="English test commands (each in two voices/speeds)")
    p.add_argument("--snr", type=float, default=20.0, help="SNR of the noisy copies in dB")
    p.add_argument("--speech-dir", type=Path, default=ROOT / "build" / "speech" / "bench")
    p.add_argument(
        "--variants", default=";".join(DEFAULT_VARIANTS), help="separated by ;, from: " + "; ".join(VARIANTS)
    )
    p.add_argument(
        "--hangover", type=float, default=DEFAULT_HANGOVER_S, help="VAD hangover in the latency (s)"
    )
    p.add_argument(
        "--hangovers", type=float, nargs="+", default=list(DEFAULT_HANGOVERS), help="hangovers compared"
    )
    p.add_argument(
        "--stream-variant",
        default=DEFAULT_VARIANTS[0],
        help="variant of the streamed latency options; 'none' skips them",
    )
    p.add_argument("--json", type=Path, default=ROOT / "build" / "speech" / "bench.json")  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = [n.strip() for n in args.variants.split(";") if n.strip()]
    bad = [n for n in [*names, args.stream_variant] if n not in VARIANTS and n != "none"]
    if args.limit < 1 or not names or bad or any(h <= 0 for h in [args.hangover, *args.hangovers]):
        print(f"error: --limit >= 1, hangovers > 0, variants from: {'; '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if not (args.model_dir / "manifest.json").is_file():
        print(f"error: {args.model_dir} is not an export (no manifest.json)", file=sys.stderr)
        return 2
    from shadow_edge.runtime.commander import Commander, ModelLoadError

    try:
        commander = Commander(str(args.model_dir), providers="cpu")
    except ModelLoadError as exc:
        print(f"error: cannot run {args.model_dir}: {exc}", file=sys.stderr)
        return 2
    items = build_set(args)
    node = NodeTimer(commander)
    typed = [commander.run(i["text"]).program == i["program"] for i in items]
    report: dict[str, Any] = {"items": len(items), "model_dir": str(args.model_dir.resolve()),
                              "typed_text_exact_program": round(sum(typed) / len(typed), 3),
                              "hangover_s": args.hangover, "load_avg_start": os.getloadavg(),
                              "cpu_count": os.cpu_count(), "variants": {}}  # fmt: skip
    started = time.monotonic()

    def save() -> None:  # after every variant: a long run that is stopped still leaves its figures
        report["load_avg_end"] = os.getloadavg()
        report["wall_s"] = round(time.monotonic() - started, 1)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))

    for name in names:
        engine, options = VARIANTS[name]
        rows = run_variant(name, engine, options, items, args, commander, node)
        conditions = sorted({r["condition"] for r in rows})
        sources = sorted({r["source"] for r in rows})
        report["variants"][name] = {
            "engine": engine,
            "options": options,
            "all": summarize(rows, args.hangover),
            "by_condition": {
                c: summarize([r for r in rows if r["condition"] == c], args.hangover) for c in conditions
            },
            "by_source": {
                src: summarize([r for r in rows if r["source"] == src], args.hangover) for src in sources
            },
            "rows": rows,
        }
        save()
        if name == args.stream_variant:  # the latency options right after their variant's own figures
            report["streaming"] = stream_options(items, args, engine, options, commander)
            save()
    if args.stream_variant != "none" and "streaming" not in report:
        engine, options = VARIANTS[args.stream_variant]
        report["streaming"] = stream_options(items, args, engine, options, commander)
        save()
    print_tables(report)
    print(f"report: {args.json} ({report['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
