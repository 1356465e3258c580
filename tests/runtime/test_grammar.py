"""The character-level grammar of the action language, and the action vocabulary on real tokenizers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_fakes import EOS_ID, split_rows, tiny_tokenizer
from shadow_edge.runtime.actions import (
    Command,
    Program,
    canonicalize,
    format_number,
    load_spec,
    parse_program,
)
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary, consumable, token_texts

SPEC = load_spec()
GRAMMAR = ProgramGrammar(SPEC)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("sit", True),
        ("stand_up; hello", True),
        ("move x=2", True),
        ("move y=-0.5", True),
        ("move x=2 y=-0.5; turn deg=-90", True),
        ("dance n=2", True),
        ("bark n=1", True),  # a default written out is still a program
        ("remote", True),
        ("reject", True),
        ("sit; sit; sit; sit", True),
        ("turn deg=1234", True),  # out of range, but the safety layer (not the grammar) refuses it
        ("move x=1.125", True),
        ("", False),
        ("si", False),
        ("sit;", False),
        ("sit; ", False),
        ("sit;sit", False),
        ("sit  ", False),
        (" sit", False),
        ("sit; sit; sit; sit; sit", False),  # more than max_commands
        ("remote; sit", False),
        ("sit; remote", False),
        ("remote x=1", False),
        ("move y=1 x=2", False),  # keys out of spec order
        ("move x=1 x=2", False),
        ("move z=1", False),
        ("move x=", False),
        ("move x=-", False),
        ("move x=1.", False),
        ("move x=.5", False),
        ("move x=02", False),  # leading zero
        ("move x=1e3", False),
        ("move x=+1", False),
        ("dance n=1.5", False),  # integer argument
        ("dance n=1.0", False),
        ("turn deg=12345", False),  # more integer digits than the bound
        ("move x=1.1234", False),  # more fraction digits than the bound
        ("Sit", False),
        ("sit\n", False),
    ],
)
def test_accepts(text, ok):
    assert GRAMMAR.accepts(text) is ok
    if ok:
        parse_program(text)  # everything accepted parses


def test_every_test_split_program_is_accepted():
    for row in split_rows():
        assert GRAMMAR.accepts(row["program"]), row


@pytest.mark.parametrize(
    ("prefix", "can_end", "complete"),
    [
        ("", False, False),
        ("sit", True, False),  # "; ..." may follow
        ("remote", True, True),  # nothing may follow a routing word
        ("reject", True, True),
        ("move", True, False),
        ("move x=1", True, False),
        ("move x=1.125", True, False),  # " y=..." may still follow
        ("move x=1 y=1.125", True, False),  # "; ..." may follow
        ("sit; sit; sit; move x=1 y=1.125", True, True),  # 4 commands, last key, all digits used
        ("sit; sit; sit; sit", True, True),
        ("sit; sit; sit; turn deg=-3601", True, False),  # "." and decimals may follow
        ("move x=", False, False),
        ("move x=1.", False, False),
    ],
)
def test_can_end_and_complete(prefix, can_end, complete):
    state = GRAMMAR.advance(GRAMMAR.initial, prefix)
    assert state is not None
    assert GRAMMAR.can_end(state) is can_end
    assert GRAMMAR.is_complete(state) is complete


def test_states_are_small_hashable_and_finite():
    states = GRAMMAR.reachable_states()
    assert len(set(states)) == len(states)
    assert 100 < len(states) < 10_000
    assert all(isinstance(s, tuple) and hash(s) is not None for s in states)
    assert GRAMMAR.advance(None, "x") is None
    longest = GRAMMAR.max_program_chars()
    # 4 x "move x=-1234.567 y=-1234.567" joined by "; "
    assert longest == 4 * len("move x=-1234.567 y=-1234.567") + 3 * 2


def test_digit_bounds_are_parameters():
    grammar = ProgramGrammar(SPEC, max_int_digits=2, max_frac_digits=0)
    assert grammar.accepts("move x=12") and not grammar.accepts("move x=123")
    assert not grammar.accepts("move x=1.5")
    with pytest.raises(ValueError):
        ProgramGrammar(SPEC, max_int_digits=0)


@st.composite
def grammar_walks(draw, grammar=GRAMMAR):
    """A random text the grammar allows, built character by character, stopping where it may end."""
    state, text = grammar.initial, ""
    while True:
        options = sorted(grammar.next_chars(state))
        if grammar.can_end(state) and (not options or draw(st.booleans())):
            return text
        ch = draw(st.sampled_from(options))
        state, text = grammar.advance(state, ch), text + ch


@settings(max_examples=300, deadline=None)
@given(grammar_walks())
def test_every_walk_parses_and_its_canonical_form_is_accepted(text):
    program = parse_program(text)
    assert GRAMMAR.accepts(program.canonical())
    assert canonicalize(program.canonical()) == program.canonical()


def _number(integer: bool, lo: float, hi: float):
    if integer:
        return st.integers(int(lo), int(hi)).map(float)
    return st.integers(-9999999, 9999999).map(lambda n: n / 1000)


@st.composite
def canonical_programs(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(SPEC.routing))
    commands = []
    for _ in range(draw(st.integers(1, SPEC.max_commands))):
        name = draw(st.sampled_from(list(SPEC.commands)))
        args = tuple(
            (key, draw(_number(a.integer, a.min, a.max))) for key, a in SPEC.commands[name].args.items()
        )
        commands.append(Command(name, args))
    return Program(tuple(commands)).canonical()


@settings(max_examples=300, deadline=None)
@given(canonical_programs())
def test_every_canonical_program_within_the_digit_bounds_is_accepted(text):
    assert GRAMMAR.accepts(text), text
    assert format_number(0.5) == "0.5"


# -- tokens --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(smollm2_tokenizer_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(smollm2_tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def smollm2_vocab(smollm2):
    eos = smollm2.token_to_id("<|im_end|>")
    assert eos == 2
    return action_vocabulary(smollm2, eos, SPEC)


def test_token_texts_decode_byte_level_bpe(smollm2):
    texts = token_texts(smollm2)
    assert texts[smollm2.token_to_id("Ġx")] == " x"
    assert texts[smollm2.token_to_id("Ġturn")] == " turn"
    assert texts[smollm2.token_to_id("Ċ")] == "\n"
    assert texts[smollm2.token_to_id("<|im_end|>")] is None  # special tokens are never program text
    # the texts of a tokenization add up to the text, for every program of the test split
    for row in split_rows():
        ids = smollm2.encode(row["program"], add_special_tokens=False).ids
        assert "".join(texts[i] for i in ids) == row["program"]


def test_action_vocabulary_covers_every_test_program(smollm2, smollm2_vocab):
    assert smollm2_vocab == sorted(set(smollm2_vocab)) and 2 in smollm2_vocab
    assert 50 < len(smollm2_vocab) < 2000
    allowed = set(smollm2_vocab)
    texts = token_texts(smollm2)
    for row in split_rows():
        ids = smollm2.encode(row["program"], add_special_tokens=False).ids
        assert set(ids) <= allowed, row["program"]
        state = GRAMMAR.initial
        for i in ids:
            state = GRAMMAR.advance(state, texts[i])
            assert state is not None, (row["program"], texts[i])
        assert GRAMMAR.can_end(state)


def test_action_vocabulary_is_exactly_the_consumable_tokens(smollm2, smollm2_vocab):
    texts = token_texts(smollm2)
    chosen = set(smollm2_vocab)
    for name in ("Ċ", "<|im_start|>", "Hello", "ĠThe", "!", "Ġ("):
        assert smollm2.token_to_id(name) not in chosen, name
    for text in (" stand", "=-", ";", " deg", "0", "_"):
        ids = [i for i, t in enumerate(texts) if t == text]
        assert ids and set(ids) <= chosen, text
    # every chosen token (but eos) can be read from some state, every other one from none
    ok = consumable(GRAMMAR, texts)
    assert {i for i, good in enumerate(ok) if good} | {2} == chosen


def test_token_texts_keep_the_leading_space_of_sentencepiece_tokens():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "</s>": 1, "▁": 2, "▁x": 3, "x": 4, "=": 5, "1": 6, "move": 7, "▁move": 8}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.add_special_tokens(["</s>"])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    assert tokenizer.decode([3]) == "x"  # decoding the id alone drops the space: the trap
    texts = token_texts(tokenizer)
    assert texts[3] == " x" and texts[4] == "x" and texts[1] is None


def test_tiny_tokenizer_vocabulary_writes_every_program():
    tokenizer = tiny_tokenizer()
    vocab = set(action_vocabulary(tokenizer, EOS_ID))
    for row in split_rows(400):
        assert set(tokenizer.encode(row["program"], add_special_tokens=False).ids) <= vocab
