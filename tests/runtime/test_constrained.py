"""Per-state masks of allowed logits rows: eos only at the end of a program, every allowed walk parses, full and
restricted heads agree, and a step costs a dictionary lookup."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_fakes import EOS_ID, split_rows, tiny_tokenizer
from shadow_edge.runtime.actions import parse_program
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary

GRAMMAR = ProgramGrammar()
TOKENIZER = tiny_tokenizer()
VOCAB = TOKENIZER.get_vocab_size(with_added_tokens=True)
ACTION_IDS = action_vocabulary(TOKENIZER, EOS_ID, grammar=GRAMMAR)
HEADS = {
    "full": TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, None, VOCAB),
    "action": TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS)),
    # a full head padded past the tokenizer's vocabulary (as exported models often are)
    "padded": TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, None, VOCAB + 64),
}
ROW_IDS = {"full": list(range(VOCAB)), "action": ACTION_IDS, "padded": list(range(VOCAB + 64))}


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("prefix", ["", "sit", "move x=", "move x=1", "remote", "bark n=3; turn deg=-9"])
def test_allowed_rows_follow_the_grammar(head, prefix):
    constraint = HEADS[head]
    state = GRAMMAR.advance(GRAMMAR.initial, prefix)
    rows = constraint.allowed_rows(state)
    mask = constraint.mask(state)
    assert mask.shape == (constraint.size,) and mask.sum() == len(rows) and mask[rows].all()
    assert (constraint.eos_row in rows) is GRAMMAR.can_end(state)
    for row in rows:
        if row == constraint.eos_row:
            continue
        text = constraint.row_texts[row]
        assert GRAMMAR.advance(state, text) == constraint.advance(state, row) is not None
    # and nothing else could be read from here
    others = [r for r in range(constraint.size) if not mask[r] and constraint.row_texts[r]]
    assert all(GRAMMAR.advance(state, constraint.row_texts[r]) is None for r in others)


def test_heads_allow_the_same_tokens():
    for row in split_rows(200):
        state, text = GRAMMAR.initial, row["program"]
        ids = TOKENIZER.encode(text, add_special_tokens=False).ids
        for token in ids:
            allowed = {name: {ROW_IDS[name][r] for r in HEADS[name].allowed_rows(state)} for name in HEADS}
            assert allowed["full"] == allowed["action"] == allowed["padded"]
            assert token in allowed["full"]
            state = GRAMMAR.advance(state, TOKENIZER.decode([token]))
        assert EOS_ID in {ROW_IDS["action"][r] for r in HEADS["action"].allowed_rows(state)}


def test_only_eos_after_a_routing_word():
    constraint = HEADS["action"]
    state = GRAMMAR.advance(GRAMMAR.initial, "remote")
    assert constraint.only_eos(state)
    assert list(constraint.allowed_rows(state)) == [constraint.eos_row]
    assert not constraint.only_eos(GRAMMAR.advance(GRAMMAR.initial, "sit"))


def test_eos_missing_from_the_head_is_an_error():
    with pytest.raises(ValueError, match="end-of-sequence"):
        TokenConstraint.for_head(
            GRAMMAR, TOKENIZER, EOS_ID, [i for i in ACTION_IDS if i != EOS_ID], len(ACTION_IDS) - 1
        )
    with pytest.raises(ValueError, match="rows"):
        TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS) + 1)


def test_a_head_without_digits_dead_ends():
    texts = [t if t is None or not any(c.isdigit() for c in t) else None for t in HEADS["full"].row_texts]
    constraint = TokenConstraint(GRAMMAR, texts, EOS_ID)
    state = GRAMMAR.advance(GRAMMAR.initial, "move x=-")
    assert len(constraint.allowed_rows(state)) == 0


@st.composite
def constrained_walks(draw, head: str):
    """Random row choices among the allowed ones until eos (or nothing but eos is left)."""
    constraint = HEADS[head]
    state, text, steps = constraint.initial, "", 0
    while not constraint.only_eos(state):
        rows = constraint.allowed_rows(state)
        assert len(rows) > 0, f"dead end after {text!r}"
        row = int(draw(st.sampled_from(list(rows))))
        if row == constraint.eos_row:
            break
        state, text, steps = constraint.advance(state, row), text + constraint.row_texts[row], steps + 1
        assert steps <= GRAMMAR.max_program_chars()
    return text


@pytest.mark.parametrize("head", ["full", "action"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_allowed_token_sequence_parses(head, data):
    text = data.draw(constrained_walks(head))
    assert GRAMMAR.accepts(text)
    parse_program(text)


def test_real_tokenizer_walks_parse(smollm2_tokenizer_dir):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(smollm2_tokenizer_dir / "tokenizer.json"))
    ids = action_vocabulary(tokenizer, 2, grammar=GRAMMAR)
    constraint = TokenConstraint.for_head(GRAMMAR, tokenizer, 2, ids, len(ids))
    rng = np.random.default_rng(0)
    for _ in range(300):
        state, text = constraint.initial, ""
        while not constraint.only_eos(state):
            row = int(rng.choice(constraint.allowed_rows(state)))
            if row == constraint.eos_row:
                break
            state, text = constraint.advance(state, row), text + constraint.row_texts[row]
        parse_program(text)


def test_cached_lookups_are_fast():
    constraint = TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS))
    warmed = constraint.warmup()
    assert 0 < warmed == constraint.cached_states <= len(GRAMMAR.reachable_states())
    for row in split_rows(300):  # every state that decoding reaches is already in the table
        state = constraint.initial
        for token in TOKENIZER.encode(row["program"], add_special_tokens=False).ids:
            state = constraint.advance(state, ACTION_IDS.index(token))
        constraint.allowed_rows(state)
    assert constraint.cached_states == warmed
    states = GRAMMAR.reachable_states()
    assert constraint.allowed_rows(states[5]) is constraint.allowed_rows(states[5])  # cached, not recomputed
    start = time.perf_counter()
    for state in states:
        constraint.allowed_rows(state)
    per_lookup = (time.perf_counter() - start) / len(states)
    assert per_lookup < 1e-4  # a dictionary lookup, even on a loaded machine
