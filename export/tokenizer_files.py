"""The tokenizer side of an export: tokenizer.json and the chat template, the prompt split around the input text,
and the special token ids the runtime needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shadow_edge.export.results import PromptTemplate, SpecialTokens
from shadow_edge.runtime.prompt import SYSTEM_PROMPT, chat_messages

PROMPT_SENTINEL = "\u2063SHADOW_EDGE_COMMAND\u2063"  # split the chat template around the command text


def prompt_template(tokenizer: Any, system_prompt: str | None = SYSTEM_PROMPT) -> tuple[str, str]:
    """(prefix, suffix) of the chat prompt around the command text; by default the one the model was trained with.
    `system_prompt=None`: no system message (the template's own default, if it has one)."""
    if not getattr(tokenizer, "chat_template", None):
        return "", ""
    messages = (
        chat_messages(PROMPT_SENTINEL, system_prompt)
        if system_prompt is not None
        else [{"role": "user", "content": PROMPT_SENTINEL}]
    )
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if rendered.count(PROMPT_SENTINEL) != 1:
        raise ValueError(
            "the chat template does not place the user's text exactly once; cannot split the prompt"
        )
    prefix, suffix = rendered.split(PROMPT_SENTINEL)
    return prefix, suffix


def prompt_of(tokenizer: Any, system_prompt: str | None = SYSTEM_PROMPT) -> PromptTemplate:
    return PromptTemplate(*prompt_template(tokenizer, system_prompt))


def write_tokenizer(tokenizer: Any, directory: Path) -> list[str]:
    """tokenizer.json (the `tokenizers` file the runtime loads) and the chat template, if any."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "the base's tokenizer has no fast (tokenizers) version; the runtime needs tokenizer.json"
        )
    backend.save(str(directory / "tokenizer.json"))
    files = ["tokenizer.json"]
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        (directory / "chat_template.jinja").write_text(template, encoding="utf-8")
        files.append("chat_template.jinja")
    return files


def special_tokens_of(tokenizer: Any, eos: int | None = None) -> SpecialTokens:
    """bos, eos (`eos`, by default the tokenizer's end of sequence) and pad (eos when there is none)."""
    if eos is None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-sequence token; generation could not stop")
        eos = int(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id
    return SpecialTokens(tokenizer.bos_token_id, int(eos), eos if pad is None else int(pad))


def special_tokens(tokenizer: Any, eos: int | None = None) -> dict[str, int | None]:
    """`special_tokens_of` as the manifest's dict."""
    return special_tokens_of(tokenizer, eos).to_dict()
