"""The robot-dog task as a causal-LM problem: prompt encoding, training batches, greedy program generation.

Training, evaluation and export validation all encode commands here, so the prompt a model was trained on is the
prompt it is measured and exported with: the base's chat template around `runtime.prompt.SYSTEM_PROMPT`, and the
target is the canonical program followed by the template's end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from shadow_edge.runtime.normalize import normalize_numbers
from shadow_edge.runtime.prompt import SYSTEM_PROMPT, chat_messages

IGNORE_INDEX = -100


def model_text(text: str) -> str:
    """What the model reads for a command: spoken numbers as digits, exactly as the runtime's Commander gives it."""
    return normalize_numbers(text).text


def encode_prompt(tokenizer, text: str, system_prompt: str = SYSTEM_PROMPT) -> list[int]:
    """Token ids of the chat prompt for one command, ending where the assistant's answer starts."""
    messages = chat_messages(text, system_prompt)
    return tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)


def end_of_turn_id(tokenizer) -> int:
    """The token that ends the assistant's turn (generation stops there)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-sequence token; generation could not stop")
    return int(tokenizer.eos_token_id)


@dataclass(frozen=True)
class EncodedExample:
    input_ids: tuple[int, ...]  # prompt + target
    n_target: int  # the last n_target ids are the answer the loss is taken on


def encode_example(tokenizer, text: str, program: str) -> EncodedExample:
    prompt = encode_prompt(tokenizer, text)
    target = tokenizer(program, add_special_tokens=False)["input_ids"] + [end_of_turn_id(tokenizer)]
    return EncodedExample(tuple(prompt + target), len(target))


@dataclass
class TrainingBatch:
    """Left-padded so every answer ends at the last position: the loss needs logits for the last `n_tail`
    positions only, which spares the (large) LM head most of its work."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, n_tail - 1]: targets of logits[:, -n_tail:-1]
    n_tail: int


def collate(examples: Sequence[EncodedExample], pad_id: int) -> TrainingBatch:
    length = max(len(e.input_ids) for e in examples)
    n_tail = max(e.n_target for e in examples) + 1
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), n_tail - 1), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, length - n :] = torch.tensor(e.input_ids)
        mask[row, length - n :] = 1
        labels[row, n_tail - 1 - e.n_target :] = torch.tensor(e.input_ids[n - e.n_target :])
    return TrainingBatch(ids, mask, labels, n_tail)


def tail_loss(logits: torch.Tensor, batch: TrainingBatch) -> torch.Tensor:
    """Cross-entropy of the answer tokens, from logits of the last `n_tail` positions."""
    logits = logits[:, -batch.n_tail : -1, :]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), batch.labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _only(allowed: Sequence[int], model):
    """A logits processor that keeps `allowed` token ids only (the action head the robot decodes with)."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class Only(LogitsProcessor):
        def __init__(self) -> None:
            self.mask = None

        def __call__(self, input_ids, scores):
            if self.mask is None or self.mask.shape[-1] != scores.shape[-1]:
                self.mask = torch.full((scores.shape[-1],), float("-inf"), device=scores.device)
                self.mask[torch.tensor(list(allowed), device=scores.device)] = 0.0
            return scores + self.mask

    return LogitsProcessorList([Only()])


@torch.no_grad()
def generate_programs(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 32,
    max_new_tokens: int = 40,
    progress: bool = False,
    system_prompt: str = SYSTEM_PROMPT,
    allowed_token_ids: Sequence[int] | None = None,
) -> list[str]:
    """Greedy answers of `model` (any HF/peft causal LM with `generate`) for `texts`, decoded to strings."""
    from tqdm.auto import tqdm

    eos = end_of_turn_id(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    # Longest first so padding stays small, results put back in input order.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    prompts = {i: encode_prompt(tokenizer, texts[i], system_prompt) for i in order}
    answers: dict[int, str] = {}
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(batches, desc="generate", disable=not progress):
        length = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), length), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(chunk):
            p = prompts[i]
            ids[row, length - len(p) :] = torch.tensor(p)
            mask[row, length - len(p) :] = 1
        out = model.generate(
            logits_processor=_only(allowed_token_ids, model) if allowed_token_ids is not None else None,
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        for row, i in enumerate(chunk):
            new = out[row, length:].tolist()
            if eos in new:
                new = new[: new.index(eos)]
            answers[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return [answers[i] for i in range(len(texts))]
