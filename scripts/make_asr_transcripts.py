#!/usr/bin/env python3
"""Commands as the robot hears them: English commands of a split spoken by espeak-ng and flite voices in turn
(several voices and speeds, half of each synthesiser's with noise at 20 dB SNR), recognised by the shipped speech
path (Silero VAD, Whisper tiny.en, vocabulary correction), and written with their gold programs as JSONL.

- `--split train` (default) writes `tasks/robot_dog/data/train_asr.jsonl`: the model then learns the text a
  recogniser really produces ("do my little jump", "order did wrong line") rather than only the text people type. Only
  train-split texts are spoken, so no validation, dev or test command leaks in. A transcript too far from what was
  said (rapidfuzz ratio below `--min-similarity`) is dropped: its gold program could not be read from it, and
  training on it would teach the model to guess. So is one whose numbers (after the runtime's number
  normalisation) differ from the numbers said ("0.3 meters" heard as "1.3 meters"): the model must copy the
  numbers it reads, never learn to repair them.
- `--split dev` with `--min-similarity 0` keeps every utterance: the speech gate is calibrated on it
  (`calibrate_routing.py --speech`). The committed `tasks/robot_dog/data/speech/dev_asr.jsonl` was made so (seed 0,
  every English dev command once).

    python scripts/make_asr_transcripts.py --limit 5000 --min-similarity 65
    python scripts/make_asr_transcripts.py --split dev --limit 0 --min-similarity 0 \
        --out tasks/robot_dog/data/speech/dev_asr.jsonl

Each line: `id` (of the train command), `text` (what the model reads: the corrected transcript), `heard` (the
recogniser's own), `said` (the train text), `program`, `lang`, `kind`, `voice`, `source` (the synthesiser),
`speed`, `snr_db` (null: clean), `similarity`, `alternatives` (the recogniser's next-best transcripts, corrected
like `text`: the speech gate is
calibrated with them, as the runtime uses them), `avg_logprob` (the recogniser's mean token log-probability of
`heard`). Deterministic for the same arguments; WAVs are cached under `build/speech/asr-train`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz
from shadow_edge.runtime.normalize import normalize_numbers
from shadow_edge.speech import make_recognizer, read_wav
from shadow_edge.tasks.robot_dog.splits import DATA_DIR, load_split
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_speech_set import DEFAULT_VOICES, render, synthesizer, with_white_noise  # noqa: E402

log = logging.getLogger("make_asr_transcripts")
REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "speech" / "asr-train"
SPEEDS = (130, 155, 175, 200)
SNR_DB = 20.0
_recognizer = None
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _worker_init(threads: int) -> None:
    global _recognizer
    logging.getLogger("shadow_edge").setLevel(logging.WARNING)
    _recognizer = make_recognizer("whisper", threads=threads)


def _normalized(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())


def _hear(job: tuple[dict, str, int, float | None, int, str]) -> dict | None:
    row, voice, speed, snr_db, seed, cache = job
    digest = hashlib.sha256(f"{row['text']}|{voice}|{speed}".encode()).hexdigest()[:16]
    wav = Path(cache) / f"{digest}.wav"
    if not wav.is_file():
        wav.parent.mkdir(parents=True, exist_ok=True)
        render(row["text"], voice, speed, wav, pad_s=0.3)
    samples = read_wav(wav).astype(np.float64)  # float in [-1, 1]
    if snr_db is not None:
        samples = with_white_noise(samples, snr_db, seed)
    heard = _recognizer.transcribe(np.clip(samples, -1.0, 1.0).astype(np.float32))
    if heard.status != "ok":
        return None
    return {
        "id": row["id"],
        "text": heard.text,
        "heard": heard.heard,
        "said": row["text"],
        "program": row["program"],
        "lang": row["lang"],
        "kind": row["kind"],
        "voice": voice,
        "source": synthesizer(voice),
        "speed": speed,
        "snr_db": snr_db,
        "similarity": round(fuzz.ratio(_normalized(heard.text), _normalized(row["text"])), 1),
        "alternatives": list(heard.alternatives),
        "avg_logprob": None if heard.avg_logprob is None else round(heard.avg_logprob, 4),
    }


def numbers_kept(row: dict) -> bool:
    """The heard text carries the numbers that were said, as digits, in any order (in the unit said: a misheard
    unit is a word error like any other, not a lost number)."""
    return sorted(_NUMBER.findall(_said_numbers(row["text"]))) == sorted(
        _NUMBER.findall(_said_numbers(row["said"]))
    )


def _said_numbers(text: str) -> str:
    return normalize_numbers(text, centimetres=False).text


def jobs(
    split: str, limit: int | None, seed: int, cache: Path = CACHE
) -> list[tuple[dict, str, int, float | None, int, str]]:
    rng = random.Random(seed)
    rows = [r for r in load_split(split) if r["lang"] == "en"]
    rng.shuffle(rows)
    out = []
    for i, row in enumerate(rows[:limit]):
        voice = DEFAULT_VOICES["en"][i % len(DEFAULT_VOICES["en"])]
        speed = rng.choice(SPEEDS)
        noisy = (i // 2) % 2  # voices alternate between the synthesisers: both get clean and noisy copies
        out.append((row, voice, speed, SNR_DB if noisy else None, seed * 100_000 + i, str(cache)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="train", choices=("train", "validation", "dev", "test"))
    p.add_argument("--limit", type=int, default=5000, help="English commands to speak (0: all of the split)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-similarity", type=float, default=60.0)
    p.add_argument("--cache", type=Path, default=CACHE, help="where the rendered WAVs are kept")
    p.add_argument(
        "--out", type=Path, default=None, help="default: the data folder's train_asr.jsonl for train"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.out is None:
        if args.split != "train":
            p.error(
                "--out is required for a split other than train (only train transcripts go in the data folder)"
            )
        args.out = DATA_DIR / "train_asr.jsonl"
    todo = jobs(args.split, args.limit or None, args.seed, args.cache)
    with Pool(args.workers, initializer=_worker_init, initargs=(1,)) as pool:
        heard = list(tqdm(pool.imap(_hear, todo, chunksize=8), total=len(todo), desc="speak and hear"))
    kept = [h for h in heard if h is not None and h["similarity"] >= args.min_similarity]
    if args.split == "train":
        kept = [h for h in kept if numbers_kept(h)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(h, ensure_ascii=False) + "\n" for h in kept), encoding="utf-8")
    exact = sum(_normalized(h["text"]) == _normalized(h["said"]) for h in kept)
    log.info(
        "%d spoken, %d heard, %d kept (similarity >= %g%s; %d exact) -> %s",
        len(todo),
        sum(h is not None for h in heard),
        len(kept),
        args.min_similarity,
        ", numbers as said" if args.split == "train" else "",
        exact,
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
