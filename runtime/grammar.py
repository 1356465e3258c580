"""The action language as a character-level automaton, for constrained decoding.

`ProgramGrammar(spec)` accepts exactly the texts

```
program := command ( "; " command )*          # at most spec.max_commands commands
command := name ( " " key "=" number )*       # each key at most once, in the spec's order
number  := -?(0|[1-9][0-9]*)(\\.[0-9]+)?       # at most max_int_digits / max_frac_digits digits
```

where the routing words (`remote`, `reject`) only stand alone and integer arguments take no fraction. It is a
(strict) subset of what `actions.parse_program` accepts -- no leading zeros, single spaces, canonical key order -- so
every text it accepts parses, and every canonical program (`Program.canonical`) with numbers inside the digit bounds
is accepted. The digit bounds make the language finite, so constrained decoding always terminates. Ranges are *not*
part of the grammar: the model must be able to say "move x=12" so that the safety layer refuses it visibly.

States are small immutable tuples (hashable, usable as cache keys); `None` is the dead state. A state only keeps
what decides the future (how many commands are done, the name or key typed so far, digit counts), so the reachable
state space is small (about two thousand states for the robot-dog spec) and per-state caches stay small.

`action_vocabulary(tokenizer, eos_id)` lists the vocabulary ids whose text can appear inside a program: the rows of
the exporter's restricted "action head".
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .actions import ActionSpec, load_spec

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

# A state is (phase, commands_done, name, key_index, detail):
#   NAME: typing a command name; detail = the characters typed so far (name is None).
#   KEY:  after a space, typing "key="; key_index = the first key still allowed; detail = characters typed so far.
#   NUM:  typing the number of key `key_index`; detail = (negative, int_digits, leading_zero, dot, frac_digits).
#   SEP:  after ";", expecting the space of the separator.
State = tuple[Any, ...]

NAME, KEY, NUM, SEP = 0, 1, 2, 3
DIGITS = frozenset(string.digits)
SEPARATOR = "; "

DEFAULT_MAX_INT_DIGITS = 4
DEFAULT_MAX_FRAC_DIGITS = 3


class ProgramGrammar:
    """Character-level automaton of the action language (see the module docstring).

    `advance(state, text)` returns the state after `text`, or None when `text` cannot continue a program from
    `state`; `can_end(state)` says the text so far is a whole program; `is_complete(state)` says it is a whole
    program that nothing can extend (decoding stops there without asking the model).
    """

    def __init__(
        self,
        spec: ActionSpec | None = None,
        max_int_digits: int = DEFAULT_MAX_INT_DIGITS,
        max_frac_digits: int = DEFAULT_MAX_FRAC_DIGITS,
    ) -> None:
        if max_int_digits < 1 or max_frac_digits < 0:
            raise ValueError("max_int_digits must be >= 1 and max_frac_digits >= 0")
        self.spec = spec or load_spec()
        self.max_int_digits = max_int_digits
        self.max_frac_digits = max_frac_digits
        self.max_commands = self.spec.max_commands
        self.routing = frozenset(self.spec.routing)
        self._first_names = tuple(self.spec.names)  # routing words only as the first (and only) command
        self._later_names = tuple(self.spec.commands)
        self._keys = {name: tuple(c.args) for name, c in self.spec.commands.items()}
        self._integer = {
            (name, i): a.integer
            for name, c in self.spec.commands.items()
            for i, a in enumerate(c.args.values())
        }
        self.alphabet = frozenset(
            "".join(self.spec.names)
            + "".join(k for keys in self._keys.values() for k in keys)
            + "0123456789.-= ;"
        )
        self.initial: State = (NAME, 0, None, 0, "")
        self._step: dict[tuple[State, str], State | None] = {}
        self._max_chars: int | None = None
        self._reachable: tuple[State, ...] | None = None

    # -- transitions ---------------------------------------------------------------------------------------------

    def advance(self, state: State | None, text: str) -> State | None:
        """The state after reading `text` from `state`, or None if that is not a prefix of any program."""
        step = self._step
        for ch in text:
            if state is None:
                return None
            key = (state, ch)
            try:
                state = step[key]
            except KeyError:
                state = step[key] = self._advance_char(state, ch)
        return state

    def _names(self, done: int) -> tuple[str, ...]:
        return self._first_names if done == 0 else self._later_names

    def _after_item(self, state: State, ch: str, name: str, next_key: int) -> State | None:
        """After a whole name or number: a space and the next key, or a separator."""
        done = state[1]
        if ch == " " and next_key < len(self._keys.get(name, ())):
            return (KEY, done, name, next_key, "")
        if ch == ";" and name not in self.routing and done + 1 < self.max_commands:
            return (SEP, done + 1, None, 0, "")
        return None

    def _advance_char(self, state: State, ch: str) -> State | None:
        phase, done, name, key_index, detail = state
        if phase == NAME:
            typed = detail + ch
            if any(n.startswith(typed) for n in self._names(done)):
                return (NAME, done, None, 0, typed)
            if detail in self._names(done):
                return self._after_item(state, ch, detail, 0)
            return None
        if phase == SEP:
            return (NAME, done, None, 0, "") if ch == " " else None
        if phase == KEY:
            typed = detail + ch
            keys = self._keys[name]
            for index in range(key_index, len(keys)):
                target = keys[index] + "="
                if typed == target:
                    return (NUM, done, name, index, (False, 0, False, False, 0))
                if target.startswith(typed):
                    return (KEY, done, name, key_index, typed)
            return None
        # NUM
        negative, int_digits, leading_zero, dot, frac_digits = detail
        if ch == "-":
            if negative or int_digits:
                return None
            return (NUM, done, name, key_index, (True, 0, False, False, 0))
        if ch in DIGITS:
            if dot:
                if frac_digits >= self.max_frac_digits:
                    return None
                return (
                    NUM,
                    done,
                    name,
                    key_index,
                    (negative, int_digits, leading_zero, True, frac_digits + 1),
                )
            if leading_zero or int_digits >= self.max_int_digits:
                return None
            return (
                NUM,
                done,
                name,
                key_index,
                (negative, int_digits + 1, int_digits == 0 and ch == "0", False, 0),
            )
        if ch == ".":
            if dot or not int_digits or self.max_frac_digits == 0 or self._integer[(name, key_index)]:
                return None
            return (NUM, done, name, key_index, (negative, int_digits, leading_zero, True, 0))
        if not self._number_done(detail):
            return None
        return self._after_item(state, ch, name, key_index + 1)

    @staticmethod
    def _number_done(detail: tuple[bool, int, bool, bool, int]) -> bool:
        _, int_digits, _, dot, frac_digits = detail
        return int_digits > 0 and (not dot or frac_digits > 0)

    # -- queries -------------------------------------------------------------------------------------------------

    def can_end(self, state: State | None) -> bool:
        """The text read so far is a whole program (an end-of-sequence token may follow)."""
        if state is None:
            return False
        phase, done, _, _, detail = state
        if phase == NAME:
            return detail in self._names(done)
        if phase == NUM:
            return self._number_done(detail)
        return False

    def next_chars(self, state: State | None) -> frozenset[str]:
        """Every character that may follow `state`."""
        if state is None:
            return frozenset()
        return frozenset(ch for ch in self.alphabet if self.advance(state, ch) is not None)

    def is_complete(self, state: State | None) -> bool:
        """A whole program that no character can extend: nothing is left for the model to decide."""
        return self.can_end(state) and not self.next_chars(state)

    def accepts(self, text: str) -> bool:
        """True when `text` is a whole program of this grammar."""
        return self.can_end(self.advance(self.initial, text))

    def reachable_states(self) -> list[State]:
        """Every state reachable from the initial one (breadth first); finite thanks to the digit bounds."""
        if self._reachable is not None:
            return list(self._reachable)
        seen = {self.initial}
        order = [self.initial]
        for state in order:
            for ch in sorted(self.alphabet):
                nxt = self.advance(state, ch)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
        self._reachable = tuple(order)
        return order

    def max_program_chars(self) -> int:
        """The length of the longest program (the digit bounds make it finite); bounds a decode loop."""
        if self._max_chars is not None:
            return self._max_chars
        longest: dict[State, int] = {}

        # Every character moves forward (a name, key or number grows; a key index or command count rises), so the
        # automaton is acyclic and the longest path is a memoised depth-first search (depth <= program length).
        def visit(state: State) -> int:
            if state not in longest:
                nexts = [n for n in (self.advance(state, ch) for ch in self.alphabet) if n is not None]
                longest[state] = max((1 + visit(n) for n in nexts), default=0)
            return longest[state]

        self._max_chars = visit(self.initial)
        return self._max_chars


# -- tokens -> text ----------------------------------------------------------------------------------------------


def token_texts(tokenizer: Tokenizer, ids: Sequence[int] | None = None) -> list[str | None]:
    """The text each vocabulary id (all of them, or `ids`) adds when it follows other text, or None for special
    tokens, ids outside the vocabulary and ids that do not decode on their own (a partial UTF-8 sequence) -- such a
    token can never be part of a program.

    Decoding single ids is not enough for every decoder (SentencePiece-style decoders drop the leading space of the
    first token), so each id is decoded after an anchor token and the anchor's text removed; for byte-level BPE
    (GPT-2 style, "Ġ" = space) this is the same as decoding the id alone.
    """
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    ids = list(range(size)) if ids is None else [int(i) for i in ids]
    special = {int(i) for i, tok in tokenizer.get_added_tokens_decoder().items() if tok.special}
    anchor_ids = tokenizer.encode("a", add_special_tokens=False).ids
    if not anchor_ids:
        raise ValueError("the tokenizer cannot encode 'a'; cannot decode single tokens reliably")
    anchor = anchor_ids[0]
    anchor_text = tokenizer.decode([anchor], skip_special_tokens=False)
    known = [i for i in ids if 0 <= i < size and i not in special]
    decoded = tokenizer.decode_batch([[anchor, i] for i in known], skip_special_tokens=False)
    pairs = dict(zip(known, decoded, strict=True))
    texts: list[str | None] = []
    for i in ids:
        pair = pairs.get(i)
        if pair is None or not pair.startswith(anchor_text):
            texts.append(None)
            continue
        text = pair[len(anchor_text) :]
        texts.append(text if text and "\ufffd" not in text else None)
    return texts


def consumable(grammar: ProgramGrammar, texts: Sequence[str | None]) -> list[bool]:
    """For each text, whether it can be read from SOME reachable grammar state.

    Runs all states at once (a lazily built subset automaton), so the whole vocabulary takes well under a second.
    """
    start = frozenset(grammar.reachable_states())
    memo: dict[tuple[frozenset, str], frozenset] = {}
    result = []
    for text in texts:
        if not text or not set(text) <= grammar.alphabet:
            result.append(False)
            continue
        states = start
        for ch in text:
            key = (states, ch)
            nxt = memo.get(key)
            if nxt is None:
                nxt = memo[key] = frozenset(
                    s for s in (grammar.advance(state, ch) for state in states) if s is not None
                )
            states = nxt
            if not states:
                break
        result.append(bool(states))
    return result


def action_vocabulary(
    tokenizer: Tokenizer, eos_id: int, spec: ActionSpec | None = None, grammar: ProgramGrammar | None = None
) -> list[int]:
    """Sorted ids of every token whose text can be read from some grammar state, plus `eos_id`.

    The exporter builds the restricted action head from it (row i of the logits = token ids[i]); any program of the
    grammar can be written with these tokens in every tokenization the tokenizer produces.
    """
    grammar = grammar or ProgramGrammar(spec)
    texts = token_texts(tokenizer)
    ids = {i for i, ok in enumerate(consumable(grammar, texts)) if ok}
    ids.add(int(eos_id))
    return sorted(ids)
