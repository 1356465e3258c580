#!/usr/bin/env python3
"""Spoken versions of the robot-dog commands for the system evaluation: 16 kHz mono WAVs plus a manifest.

Each command of a split (default: test, English and Chinese) is rendered in voices and speeds cycled by its position
(`--per-text N` renders N different voice/speed pairs per command), converted by `sox` to 16 kHz, mono, 16-bit,
without dither, with `--pad` seconds of silence before and after (a voice-activity detector then sees a real start
and end of speech). Two synthesisers, so that no measure rests on one engine's voice: `espeak-ng` (formant voices,
four English accents; Chinese uses its `cmn` voice, which reads Hanzi) and `flite` (CMU's diphone and clustergen
voices, named `flite:VOICE`; English only). Whisper hears the two very differently: espeak-ng's voices are far
harder for it.

Real speech is added when a Debian package ships it: `pocketsphinx-testdata` (apt) has a human recording of
"go forward ten meters" (`/usr/share/pocketsphinx/test/data/goforward.raw`, 16 kHz 16-bit mono raw), whose
reference program is `move x=10` (out of range: the safety layer must refuse it).

Deterministic and cached: the same arguments give the same files (espeak-ng, flite and sox are deterministic with
dither off); a WAV that exists is kept unless `--force` (its name carries a hash of its text, so a changed split
renders anew). The manifest (`manifest.jsonl` in `--out`) has one JSON object per WAV: `wav` (path relative to the
manifest's folder), `id`, `text`, `program`, `lang`, `kind`, `voice`, `speed` (words per minute; null for a
recording), `source` (`espeak-ng`, `flite` or the Debian package), `duration_s`, `pad_s`.

    python3 scripts/make_speech_set.py                       # build/speech/test/manifest.jsonl
    python3 scripts/make_speech_set.py --langs en --per-text 3 --limit 50
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

try:  # the task's split reader (splits.py; older trees: generator.py)
    from shadow_edge.tasks.robot_dog.splits import load_split
except ImportError:
    from shadow_edge.tasks.robot_dog.generator import load_split

log = logging.getLogger("make_speech_set")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "build" / "speech"
SAMPLE_RATE = 16000
# Several accents and a female variant for English, in both synthesisers, interleaved so that any run of
# consecutive commands hears both; espeak-ng has one Mandarin voice and flite none.
DEFAULT_VOICES = {
    "en": (
        "en-us",
        "flite:slt",
        "en-gb",
        "flite:awb",
        "en-us+f3",
        "flite:rms",
        "en-gb-scotland",
        "flite:kal16",
    ),
    "zh": ("cmn", "cmn+f3"),
}
SYNTHESIZERS = ("espeak-ng", "flite")  # the `source` of synthesised rows; anything else is a recording
FLITE_PREFIX = "flite:"
FLITE_WPM = 170  # flite's own speaking rate, about: --speeds stretch its durations relative to it
DEFAULT_SPEEDS = (140, 175)  # words per minute: slow and espeak-ng's default
POCKETSPHINX_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
RECORDINGS = (
    # (file in pocketsphinx-testdata, id, text, reference program, lang, kind)
    ("goforward.raw", "psphinx-goforward", "go forward ten meters", "move x=10", "en", "command"),
)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _sox_to_16k(src_args: list[str], src: bytes | None, out: Path, pad_s: float) -> None:
    partial = out.with_suffix(".partial.wav")
    cmd = ["sox", "-D", "-R", *src_args, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(partial)]
    if pad_s > 0:
        cmd += ["pad", f"{pad_s}", f"{pad_s}"]
    subprocess.run(cmd, input=src, check=True, capture_output=True)
    partial.replace(out)


def synthesizer(voice: str) -> str:
    """Which synthesiser speaks `voice` (`flite:NAME` or an espeak-ng voice)."""
    return "flite" if voice.startswith(FLITE_PREFIX) else "espeak-ng"


def render(text: str, voice: str, speed: int, out: Path, pad_s: float) -> None:
    """`text` spoken by `voice` at `speed` words per minute, as a 16 kHz mono WAV at `out`."""
    if synthesizer(voice) == "flite":
        render_flite(text, voice.removeprefix(FLITE_PREFIX), speed, out, pad_s)
    else:
        render_espeak(text, voice, speed, out, pad_s)


def render_flite(text: str, voice: str, speed: int, out: Path, pad_s: float) -> None:
    """flite (text from a file: flite reads a text argument starting with '-' as an option) -> sox -> 16 kHz WAV."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text_file, raw = out.with_suffix(".flite.txt"), out.with_suffix(".flite.wav")
    text_file.write_text(text, encoding="utf-8")
    try:
        subprocess.run(
            ["flite", "-voice", voice, "--setf", f"duration_stretch={FLITE_WPM / speed:.3f}", "-f",
             str(text_file), "-o", str(raw)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        if not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"flite produced no audio for {text!r} with voice {voice}")
        _sox_to_16k(["-t", "wav", str(raw)], None, out, pad_s)
    finally:
        text_file.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)


def render_espeak(text: str, voice: str, speed: int, out: Path, pad_s: float) -> None:
    """espeak-ng (text on stdin: a text starting with '-' is not an option) -> sox -> 16 kHz mono WAV."""
    speech = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout"],
        input=text.encode("utf-8"),
        check=True,
        capture_output=True,
    ).stdout
    if len(speech) <= 44:
        raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice}")
    _sox_to_16k(["-t", "wav", "-"], speech, out, pad_s)


def with_white_noise(samples: np.ndarray, snr_db: float, seed: int, full_scale: float = 1.0) -> np.ndarray:
    """`samples` plus white noise at `snr_db` below the speech's RMS (the samples over 1% of `full_scale`; all of
    them when none is), from a fixed seed; float64, not clipped."""
    x = np.asarray(samples, dtype=np.float64)
    loud = x[np.abs(x) > 0.01 * full_scale]
    rms = np.sqrt(np.mean((loud if loud.size else x) ** 2)) / 10 ** (snr_db / 20)
    return x + np.random.default_rng(seed).normal(0, rms, len(x))


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise RuntimeError(f"{path} is not 16 kHz mono 16-bit")
        return wav.getnframes() / SAMPLE_RATE


def build(
    out_dir: Path,
    split: str,
    langs: list[str],
    per_text: int,
    speeds: tuple[int, ...],
    limit: int | None,
    pad_s: float,
    force: bool,
    recordings_dir: Path,
) -> list[dict]:
    entries: list[dict] = []
    rows = load_split(split)
    for lang in langs:
        voices = DEFAULT_VOICES[lang]
        combos = [(v, s) for s in speeds for v in voices]
        lang_rows = [r for r in rows if r["lang"] == lang][:limit]
        for index, row in enumerate(lang_rows):
            for k in range(min(per_text, len(combos))):
                voice, speed = combos[(index + k) % len(combos)]
                # the text's hash in the name: a regenerated split reuses ids for other texts, and a cached WAV
                # must never be the speech of an old text
                digest = hashlib.sha256(row["text"].encode("utf-8")).hexdigest()[:10]
                rel = Path(lang) / f"{_safe(row['id'])}__{_safe(voice)}__{speed}__{digest}.wav"
                path = out_dir / rel
                if force or not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    render(row["text"], voice, speed, path, pad_s)
                entries.append(
                    {
                        "wav": str(rel),
                        "id": row["id"],
                        "text": row["text"],
                        "program": row["program"],
                        "lang": lang,
                        "kind": row.get("kind", ""),
                        "voice": voice,
                        "speed": speed,
                        "source": synthesizer(voice),
                        "duration_s": round(wav_seconds(path), 4),
                        "pad_s": pad_s,
                    }
                )
            if (index + 1) % 200 == 0:
                log.info("%s: %d/%d commands rendered", lang, index + 1, len(lang_rows))
    for name, rec_id, text, program, lang, kind in RECORDINGS:
        src = recordings_dir / name
        if lang not in langs:
            continue
        if not src.is_file():
            log.warning(
                "%s not found: install the Debian package pocketsphinx-testdata for the human recording", src
            )
            continue
        rel = Path("recordings") / f"{rec_id}.wav"
        path = out_dir / rel
        if force or not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            raw_args = ["-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1", str(src)]
            _sox_to_16k(raw_args, None, path, 0.0)  # a recording has its own silence around the speech
        entries.append(
            {
                "wav": str(rel),
                "id": rec_id,
                "text": text,
                "program": program,
                "lang": lang,
                "kind": kind,
                "voice": "human",
                "speed": None,
                "source": "debian:pocketsphinx-testdata",
                "duration_s": round(wav_seconds(path), 4),
                "pad_s": 0.0,
            }
        )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--langs", nargs="+", default=["en", "zh"], choices=sorted(DEFAULT_VOICES))
    parser.add_argument(
        "--per-text", type=int, default=1, help="voice/speed renderings per command (default 1)"
    )
    parser.add_argument(
        "--speeds", type=int, nargs="+", default=list(DEFAULT_SPEEDS), help="words per minute"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many commands per language")
    parser.add_argument(
        "--pad", type=float, default=0.3, help="seconds of silence before and after (default 0.3)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: build/speech/<split>")
    parser.add_argument("--recordings-dir", type=Path, default=POCKETSPHINX_TESTDATA)
    parser.add_argument("--force", action="store_true", help="render again even where a WAV exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    needed = {"sox", *(synthesizer(v) for lang in args.langs for v in DEFAULT_VOICES[lang])}
    for tool in sorted(needed):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (Debian: apt-get install {tool})", file=sys.stderr)
            return 2
    if args.per_text < 1 or args.pad < 0 or any(s < 80 or s > 450 for s in args.speeds):
        print("error: --per-text >= 1, --pad >= 0, --speeds in 80..450 words per minute", file=sys.stderr)
        return 2
    out_dir = args.out or DEFAULT_OUT / args.split
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        entries = build(
            out_dir,
            args.split,
            args.langs,
            args.per_text,
            tuple(args.speeds),
            args.limit,
            args.pad,
            args.force,
            args.recordings_dir,
        )
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"error: {exc} {detail.decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    manifest = out_dir / "manifest.jsonl"
    partial = manifest.with_suffix(".jsonl.partial")
    with partial.open("w", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    partial.replace(manifest)
    print(f"{len(entries)} WAVs, manifest {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
