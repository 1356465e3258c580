"""Constrained decoding: which rows of the model's logits may be chosen next, given the grammar state.

The model's head is either the full vocabulary (row i = token i) or the exporter's restricted action head (row i =
vocabulary token `head.token_ids[i]`). `TokenConstraint` knows the text of every row once (`grammar.token_texts`),
keeps only the rows whose text can occur in a program at all (a few hundred of SmolLM2's 49k tokens), and per grammar
state caches the allowed rows and the state each of them leads to. A decode step is then a dictionary lookup and a
gather of a few dozen logits -- cheap enough for every step on a robot CPU. End-of-sequence is allowed only where the
text so far is a whole program.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .grammar import ProgramGrammar, State, consumable, token_texts

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)


class TokenConstraint:
    """Allowed logits rows per grammar state, for a head whose rows have the texts `row_texts`.

    `row_texts[i]` is the text row i adds (None for rows that can never be part of a program: special tokens,
    padding rows, partial UTF-8 bytes); `eos_row` is the row of the end-of-sequence token.
    """

    def __init__(self, grammar: ProgramGrammar, row_texts: Sequence[str | None], eos_row: int) -> None:
        if not 0 <= eos_row < len(row_texts):
            raise ValueError(f"the end-of-sequence row {eos_row} is outside the head (size {len(row_texts)})")
        self.grammar = grammar
        self.size = len(row_texts)
        self.eos_row = int(eos_row)
        self.initial: State = grammar.initial
        usable = consumable(grammar, row_texts)
        usable[self.eos_row] = False
        self._rows = [i for i, ok in enumerate(usable) if ok]
        self._texts = [row_texts[i] for i in self._rows]
        self.row_texts: tuple[str | None, ...] = tuple(row_texts)
        self._table: dict[State, tuple[np.ndarray, dict[int, State]]] = {}
        self._masks: dict[State, np.ndarray] = {}

    @classmethod
    def for_head(
        cls,
        grammar: ProgramGrammar,
        tokenizer: Tokenizer,
        eos_id: int,
        head_token_ids: Sequence[int] | None,
        head_size: int,
    ) -> TokenConstraint:
        """The constraint for a model head: `head_token_ids` lists the vocabulary id of each row (None = full head)."""
        if head_token_ids is None:
            ids = list(range(head_size))
        else:
            ids = [int(i) for i in head_token_ids]
            if len(ids) != head_size:
                raise ValueError(f"head_token_ids lists {len(ids)} ids for a head of {head_size} rows")
        if eos_id not in ids:
            raise ValueError(f"the end-of-sequence token {eos_id} is not a row of the model's head")
        return cls(grammar, token_texts(tokenizer, ids), ids.index(eos_id))

    @property
    def candidate_rows(self) -> int:
        """How many rows can ever be chosen (the eos row not counted)."""
        return len(self._rows)

    @property
    def cached_states(self) -> int:
        return len(self._table)

    def _entry(self, state: State) -> tuple[np.ndarray, dict[int, State]]:
        entry = self._table.get(state)
        if entry is None:
            advance = self.grammar.advance
            nexts: dict[int, State] = {}
            for row, text in zip(self._rows, self._texts, strict=True):
                nxt = advance(state, text)
                if nxt is not None:
                    nexts[row] = nxt
            rows = list(nexts)
            if self.grammar.can_end(state):
                rows.append(self.eos_row)
            entry = self._table[state] = (np.asarray(rows, dtype=np.int64), nexts)
        return entry

    def allowed_rows(self, state: State) -> np.ndarray:
        """Indices of the rows that may come next (int64, eos last when allowed); empty at a dead end."""
        return self._entry(state)[0]

    def mask(self, state: State) -> np.ndarray:
        """Boolean mask over the head's rows: True where the row may come next."""
        mask = self._masks.get(state)
        if mask is None:
            mask = np.zeros(self.size, dtype=bool)
            mask[self.allowed_rows(state)] = True
            mask.setflags(write=False)
            self._masks[state] = mask
        return mask

    def advance(self, state: State, row: int) -> State | None:
        """The grammar state after choosing `row` (None if the row is not allowed; eos ends decoding, not a state)."""
        return self._entry(state)[1].get(int(row))

    def only_eos(self, state: State) -> bool:
        """The program is whole and nothing can extend it: decoding stops without asking the model."""
        rows = self.allowed_rows(state)
        return len(rows) == 1 and int(rows[0]) == self.eos_row

    def warmup(self) -> int:
        """Fill the per-state cache for every state decoding can reach with this head's tokens (so that no command
        pays for it); returns how many states that is."""
        seen = {self.initial}
        order = [self.initial]
        for state in order:
            for nxt in self._entry(state)[1].values():
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
        log.debug("constraint tables for %d states, %d candidate rows", len(order), len(self._rows))
        return len(order)
