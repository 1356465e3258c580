"""Which of a speech recogniser's next-best transcripts to execute when the model is unsure of the first one.

Whisper's beam search ends with several finished transcripts. When the speech gate holds back the program read from
the best one, the others are read too, and the rule here decides: the program that most of the readings agree on
(at least `MAJORITY` of the first plus up to `MAX_ALTERNATIVES` next-best ones) is executed, from the first
next-best transcript that carries it and passes the gate on its own. The idea: a next-best transcript may be read
with more confidence than the best one, and agreement among the beams guards against taking a stray one.

Whether the rule pays depends on the model, so the data decides: `scripts/calibrate_routing.py --speech` chooses
the speech gate with the rule and without it, on recognised dev speech, and keeps the rule (`next_best` in
`routing.json`) only where it executes more commands right at the executed-wrong target; the Commander applies it
only under such a gate. On the bundled exports (500 recognised dev utterances, espeak-ng and flite voices in turn,
half of each with 20 dB noise; Whisper tiny.en, beam 5; target 0.5%): the detached shadow executed 28.4% right with
it against 21.8% without (used), the attached pair 17.2% either way (not used). Whisper's beams mostly share a
misrecognition, so agreement is weaker evidence than it looks.

Only a held-back program that the safety layer would execute is replaced. A refusal, a question, a program the
safety layer refuses, or an unfinished one stands as the first transcript gave it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_ALTERNATIVES = 4  # next-best transcripts read besides the first (Whisper's beam of 5)
MAJORITY = 3  # readings (the first included) that must agree on a program


@dataclass(frozen=True)
class Reading:
    """What the model made of one transcript."""

    program: str  # canonical ("" when the model did not finish one)
    executable: bool  # a robot program the safety layer accepts


def pick_alternative(
    first: Reading, alternatives: Sequence[Reading], passes: Callable[[int], bool]
) -> int | None:
    """The 1-based number of the next-best transcript to execute instead of the first, or None.

    `passes(i)`: whether reading i passes the confidence gate (0: the first, i >= 1: `alternatives[i - 1]`).
    """
    if not first.executable or passes(0) or not alternatives:
        return None
    readings = [first, *alternatives[:MAX_ALTERNATIVES]]
    program, votes = Counter(r.program for r in readings if r.program).most_common(1)[0]
    if votes < MAJORITY:
        return None
    for number, reading in enumerate(readings[1:], start=1):
        if reading.program == program and reading.executable and passes(number):
            return number
    return None


__all__ = ["MAJORITY", "MAX_ALTERNATIVES", "Reading", "pick_alternative"]
