"""Transcript correction (shadow_edge.speech.correct): misheard words next to command words snapped to the command
vocabulary; numbers, negations and sentences that are not commands kept as they were heard."""

from __future__ import annotations

import pytest
from shadow_edge.speech.correct import Correction, VocabularyCorrector
from speech_wavs import needs_speech_tools, speak

pytest.importorskip("rapidfuzz")


@pytest.fixture(scope="module")
def corrector() -> VocabularyCorrector:
    return VocabularyCorrector()


@pytest.mark.parametrize(
    ("heard", "corrected"),
    [
        ("sit dawn", "sit down"),
        ("Turn lift.", "Turn left."),
        ("bark tree times", "bark three times"),
        ("go on, okay, so give a mark five times for me.", "go on, okay, so give a bark five times for me."),
        ("lie dawn", "lie down"),
        ("do a front flick", "do a front flip"),
        ("walk to metres", "walk two metres"),
        ("bark for times", "bark four times"),
        ("SIT DAWN", "SIT DOWN"),
    ],
)
def test_misheard_command_words_are_snapped(corrector, heard, corrected):
    result = corrector.correct(heard)
    assert result.text == corrected and result.heard == heard and result.changes


@pytest.mark.parametrize(
    "heard",
    [
        # not commands: they must stay what they were
        "what is six percent of four?",
        "who wrote pride and prejudice?",
        "send a message to grandma",
        "the park is closed today",
        "I lift weights at dawn",
        "set the table",
        "mark my words",
        "turn the light on",
        "tell me about the dawn of time",
        "walk the other dog",
        # phrasings the model was trained on stay, though a command pair is near ("go right")
        "go straight ahead three and a half meters please.",
        "walk five point five metres",
        "bark one time and no more",  # a singular is not a mishearing of the plural
        # numbers are never turned into other numbers, nor added next to one
        "bark ten times",
        "walk 3 metres",
        "go for two meters",
        "walk two to metres",
        "turn ninety degrees",
        # a unit is never respelled, nor split into a number ("cent to meters" is centimetres)
        "shift left fifty centimetre",
        "come here 20 cent to meters",
        # negations stay, and are never the word that changes
        "stop not",
        "don't",
        # already right
        "sit down, then bark twice",
        "",
    ],
)
def test_other_transcripts_are_kept(corrector, heard):
    assert corrector.correct(heard) == Correction(heard, heard)


@pytest.mark.parametrize(
    ("heard", "corrected"),
    [("don't sit dawn", "don't sit down"), ("never turn lift", "never turn left")],
)
def test_negations_are_kept_while_the_command_words_are_fixed(corrector, heard, corrected):
    result = corrector.correct(heard)
    assert result.text == corrected and result.text.split()[0] == heard.split()[0]


def test_changes_name_what_was_heard(corrector):
    result = corrector.correct("Sit dawn and turn lift")
    assert result.text == "Sit down and turn left"
    assert result.changes == (("dawn", "down"), ("lift", "left"))


def test_a_word_needs_a_command_word_next_to_it(corrector):
    # "dawn" is near "down", but only "sit dawn" / "lie dawn" make it a command pair
    assert corrector.correct("dawn").text == "dawn"
    assert corrector.correct("the dawn").text == "the dawn"


def test_threshold():
    strict = VocabularyCorrector(threshold=85)
    assert strict.correct("sit dawn").text == "sit dawn"  # "dawn" ~ "down" scores 75
    assert strict.correct("bark tree times").text == "bark three times"  # "tree" ~ "three" scores 89
    with pytest.raises(ValueError, match="threshold"):
        VocabularyCorrector(threshold=0)


class ScriptedEngine:
    """An engine that hears what it is told to (a mishearing on demand)."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def decode(self, audio):
        from shadow_edge.speech.engine import Hypothesis

        return Hypothesis(self.text)

    def describe(self) -> str:
        return "scripted"


@needs_speech_tools
@pytest.mark.parametrize("correct", [True, False])
def test_the_recognizer_keeps_what_was_heard(tmp_path, correct):
    from shadow_edge.speech import Recognizer, read_wav

    samples = read_wav(speak(tmp_path, "sit down"))
    transcript = Recognizer(ScriptedEngine("Sit dawn."), correct=correct).transcribe(samples)
    assert transcript.heard == "Sit dawn." and transcript.status == "ok"
    if correct:
        assert transcript.text == "Sit down." and transcript.corrections == (("dawn", "down"),)
    else:
        assert transcript.text == "Sit dawn." and transcript.corrections == ()
