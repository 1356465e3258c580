"""A scripted commander for the node's tests: the real grammar, constraint and generator over a tiny tokenizer and a
`ScriptedSession` that answers fixed programs for fixed texts (shared by the dog, speech and ROS tests)."""

from __future__ import annotations

from runtime_fakes import EOS_ID, PREFIX, SUFFIX, ScriptedSession, tiny_tokenizer
from shadow_edge.runtime.actions import load_spec
from shadow_edge.runtime.commander import Commander
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.generate import Generator
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary

GRAMMAR = ProgramGrammar()
TOKENIZER = tiny_tokenizer()
ACTION_IDS = action_vocabulary(TOKENIZER, EOS_ID, grammar=GRAMMAR)
CONSTRAINT = TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS))
SPEC = load_spec()
LIMITS = SPEC.speed_limits
PERIOD = 0.05
ANSWERS = {
    "walk two metres": "move x=2",
    "walk five metres": "move x=5",
    "walk twelve metres": "move x=12",
    "turn left": "turn",
    "turn right": "turn deg=-90",
    "what is two plus two": "remote",
    "jump off the roof": "reject",
    "sit then turn right": "sit; turn deg=-90",
    "dance twice": "dance n=2",
    "bark twice": "bark n=2",
    "cease all motion": "stop",
    "sit": "sit",
}


def _with_model_texts(answers: dict[str, str]) -> dict[str, str]:
    """The Commander hands the model its number-normalised text ("walk two metres" -> "walk 2 metres"): script
    both spellings."""
    try:
        from shadow_edge.runtime.normalize import normalize_numbers
    except ImportError:
        return dict(answers)
    return {**answers, **{normalize_numbers(text).text: program for text, program in answers.items()}}


def make_commander(answers=ANSWERS, cloud=None, **session_kwargs):
    session = ScriptedSession(
        TOKENIZER, _with_model_texts(answers), head_token_ids=ACTION_IDS, **session_kwargs
    )
    generator = Generator(session, TOKENIZER, session.caches, CONSTRAINT, ACTION_IDS, PREFIX, SUFFIX, EOS_ID)
    return Commander.from_generator(generator, cloud=cloud), session
