"""The `pocketsphinx-grammar` engine: the light fallback. pocketsphinx (its wheel ships an English acoustic model)
decodes against the JSGF command grammar (`grammar.build_grammar`) only; there is no free-text language model.

A hypothesis is passed on only when it is one whole sentence of the grammar: pocketsphinx returns its best partial
path when no complete sentence fits the audio ("do a", "turn eleven"), and such paths come back "not understood".
Known limit (scripts/bench_speech.py): pocketsphinx's scores do not separate out-of-grammar speech from commands,
so "what is the capital of France" may come back as the closest command sentence; the model and the safety layer
still decide what runs, and the `whisper` engine is the one to use where open speech is expected.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from shadow_edge.runtime.actions import ActionSpec

from .audio import SAMPLE_RATE
from .engine import EngineError, Hypothesis, import_optional
from .grammar import build_grammar, grammar_matcher, is_complete_command

DITHER = 4.0 / 32768.0


class GrammarEngine:
    name = "pocketsphinx-grammar"

    def __init__(self, extra_phrases: Sequence[str] = (), spec: ActionSpec | None = None) -> None:
        ps = import_optional("pocketsphinx")
        try:
            self._decoder = ps.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
            lookup = self._decoder.lookup_word
            jsgf = build_grammar(spec, extra_phrases, known_word=lambda w: lookup(w) is not None)
            self._decoder.add_jsgf_string("robot_dog", jsgf)
            self._decoder.activate_search("robot_dog")
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"pocketsphinx could not load the command grammar: {exc}") from None
        self._complete = grammar_matcher(spec, extra_phrases)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "pocketsphinx with the command grammar (whole sentences only)"

    def decode(self, audio: np.ndarray) -> Hypothesis:
        # Digital silence (exact zeros: synthetic or gated audio) derails pocketsphinx's feature normalisation;
        # a few LSB of fixed-seed dither measurably fix it ("sit down" heard as nothing, "stop" as "go").
        dither = np.random.default_rng(0).normal(0.0, DITHER, len(audio)).astype(np.float32)
        raw = np.clip(np.round((audio + dither) * 32767.0), -32768, 32767).astype(np.int16).tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(raw, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
        if not is_complete_command(text, self._complete):
            return Hypothesis("", "not understood")
        return Hypothesis(text)


__all__ = ["GrammarEngine", "EngineError"]
