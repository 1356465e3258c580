"""Whether a program's numbers are the numbers the user said (shadow_edge.runtime.arguments): a table of commands as
the model reads them, the program, and whether the two agree."""

from __future__ import annotations

import pytest
from shadow_edge.runtime.actions import parse_program
from shadow_edge.runtime.arguments import unsaid_arguments
from shadow_edge.runtime.text_input import model_input

AGREE = [
    ("walk 0.75 metres", "move x=0.75"),
    ("go back 2 m", "move x=-2"),
    ("step to the right 1.5 meters", "move y=-1.5"),
    ("walk forward fifty centimetres", "move x=0.5"),  # the normaliser gives 0.5 metres
    ("turn right 135 degrees", "turn deg=-135"),
    ("turn left ninety degrees", "turn"),  # the default is the number said
    ("turn around", "turn deg=180"),
    ("turn right two full turns", "turn deg=-720"),
    ("come here", "move x=1"),
    ("come here and sit", "move x=1; sit"),
    ("do your second dance", "dance n=2"),
    ("bark eight times", "bark n=8"),  # over range: copied, and the safety layer refuses it
    ("walk forward twenty metres", "move x=20"),
    ("往前走三米半", "move x=3.5"),
    ("向右转九十度", "turn deg=-90"),
    ("走 two 米", "move x=2"),  # English number words in Chinese text
    ("walk 2 metres then turn 45 degrees", "move x=2; turn deg=45"),
    ("sit", "sit"),
    ("jump forward three times", "front_jump; front_jump; front_jump"),  # the count is the repeat
    ("bark twice then come here", "bark n=2; move x=1"),
    ("walk 2 metres and turn around", "move x=2; turn deg=180"),
    ("what is 2 plus 2", "remote"),
    ("walk 3 metres", "reject"),  # routing words carry no numbers
]

DISAGREE = [
    ("walk 0.75 metres", "move x=0.7", "move x=0.7"),
    ("turn left 22.5 degrees", "turn deg=225", "turn deg=225"),
    ("turn right 275 degrees", "turn deg=-270", "275°"),  # 270 is a whole quarter, but 275 was said
    ("step left 0.05 meters", "move y=0.5", "move y=0.5"),
    ("walk 3 metres", "move x=0.3", "move x=0.3"),
    ("bark 80 times", "bark n=8", "bark n=8"),
    ("walk 2 metres then turn 45 degrees", "move x=2", "45°"),  # a step with a number was dropped
    ("往前走0.75米", "move x=0.7", "move x=0.7"),
    ("turn a bit left", "turn deg=45", "turn deg=45"),
    ("do dance number five", "dance n=2", "dance n=2"),  # clipped to a legal value: 5 was said
    ("walk 3 metres then turn around", "move x=1; turn deg=180", "move x=1"),
]


@pytest.mark.parametrize(("text", "program"), AGREE)
def test_numbers_that_agree(text, program):
    assert unsaid_arguments(model_input(text)[0], parse_program(program)) == []


@pytest.mark.parametrize(("text", "program", "named"), DISAGREE)
def test_numbers_that_disagree_are_named(text, program, named):
    problems = unsaid_arguments(model_input(text)[0], parse_program(program))
    assert problems and any(named in p for p in problems), problems
