"""Checkpoints of the official `shadow-peft` package, loaded by `export.official` without the package.

Slow table (marked `slow`): tiny random Llama / Qwen2 / Qwen3 bases x {implicit shadow, explicit narrow shadow with
its own embeddings and a projection, sequence classification, ...}; the official package (0.1.1, transformers > 5,
run in the separate venv made by scripts/official_reference_env.py) builds, perturbs and saves each checkpoint and
writes its own outputs; our loader must reproduce them (attached logits, shadow logits, detached logits, cached
decoding) within 1e-4, and the folded HF detached model must too.

Fast tests: save/load round trips of our own writer on the same table, dialect detection and every bad input.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")

import numpy as np  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from shadow_edge.export.checkpoint import CheckpointError  # noqa: E402
from shadow_edge.export.official import (  # noqa: E402
    OFFICIAL_MODULES,
    OfficialShadowConfig,
    build_official_model,
    detect_dialect,
    load_official_model,
    official_detached_model,
    read_official_checkpoint,
    save_official_checkpoint,
)
from tiny_models import FAMILIES, tiny_kwargs  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "official_reference_env.py"
TOL = 1e-4

TINY = tiny_kwargs(layers=3)
CONFIGS = FAMILIES
NARROW = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
              intermediate_size=32)  # fmt: skip
SAME_WIDTH = dict(num_hidden_layers=1, intermediate_size=48)

# name -> (base family, task, tied, shadow_config, explicit shadow config overrides or None, share embeddings)
VARIANTS = {
    "implicit": (
        "causal_lm",
        True,
        dict(num_shadow_layers=2, modules_to_save=["shadow_lm_head"]),
        None,
        False,
    ),
    "implicit-sized": (
        "causal_lm",
        False,
        dict(
            num_shadow_layers=2,
            shadow_intermediate_size=48,
            shadow_num_attention_heads=2,
            shadow_num_key_value_heads=1,
        ),
        None,
        False,
    ),  # fmt: skip
    "explicit-narrow": ("causal_lm", True, dict(injection_hidden_size=4, gate_hidden_size=3), NARROW, False),
    "seq-cls": ("seq_cls", False, dict(num_shadow_layers=1, gate_hidden_size=5), None, False),
}
CASES = [(family, variant) for family in CONFIGS for variant in VARIANTS]
# Two more semantics worth pinning: a trained base lm_head on a tied base (the shadow head keeps the original
# weights, the embeddings move with the head), and an explicit same-width shadow sharing the base embeddings.
CASES += [("qwen2", "lm-head-tied"), ("llama", "explicit-shared")]
VARIANTS["lm-head-tied"] = ("causal_lm", True, dict(modules_to_save=["lm_head"]), None, False)
VARIANTS["explicit-shared"] = ("causal_lm", True, dict(num_shadow_layers=1), SAME_WIDTH, True)
IDS = [f"{f}-{v}" for f, v in CASES]
# shadow-peft 0.1.1 cannot run an explicit shadow with removed embeddings on transformers 5 (its check
# `get_input_embeddings() is None` meets a NotImplementedError, so the backbone is called without embeddings and
# crashes): that case is only tested against our own writer.
OFFICIAL_CASES = [(f, v) for f, v in CASES if v != "explicit-shared"]
OFFICIAL_IDS = [f"{f}-{v}" for f, v in OFFICIAL_CASES]


def base_config(family: str, variant: str):
    task, tied = VARIANTS[variant][:2]
    extra = {"num_labels": 3} if task == "seq_cls" else {}
    return CONFIGS[family](**TINY, tie_word_embeddings=tied, **extra)


def shadow_model_config(family: str, variant: str):
    overrides = VARIANTS[variant][3]
    if overrides is None:
        return None
    return CONFIGS[family](**{**TINY, **overrides})


def save_base(family: str, variant: str, directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = base_config(family, variant)
    auto = AutoModelForCausalLM if VARIANTS[variant][0] == "causal_lm" else AutoModelForSequenceClassification
    auto.from_config(cfg).save_pretrained(directory)
    return directory


def perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)


def inputs(vocab: int = 128, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows: full, left-padded, right-padded."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, 6:] = 0
    return ids.masked_fill(mask == 0, 0), mask, (mask.cumsum(-1) - 1).clamp(min=0)


def real(logits: torch.Tensor | np.ndarray, mask: torch.Tensor) -> np.ndarray:
    """Per-position logits at real (attended) positions only; padded query rows are not compared."""
    array = logits.detach().numpy() if isinstance(logits, torch.Tensor) else logits
    return array[mask.numpy().astype(bool)] if array.ndim == 3 else array


# ------------------------------------------------------------------------------------------------ fast: our own


def adapter_modules(model) -> nn.ModuleList:
    """What the package trains: backbone, projection, injection/update and the heads it would save."""
    modules = [model.shadow_backbone, model.shadow_projection, model.shadow_norm]
    for layer in model.adapted_layers:
        modules += [
            layer.shadow_down,
            layer.shadow_up,
            layer.shadow_update_transform,
            layer.shadow_update_gate,
        ]
    requested = set(model.config.modules_to_save)
    if "lm_head" in requested or (model.task == "seq_cls" and not requested):
        modules.append(model.base_head)
    if requested & {"shadow_lm_head"} or (model.task == "seq_cls" and not requested):
        modules.append(model.shadow_head)
    return nn.ModuleList(modules)


def own_checkpoint(tmp_path: Path, family: str, variant: str, seed: int = 0):
    """A base directory and a checkpoint written by our `save_official_checkpoint` (perturbed everywhere)."""
    task, _, shadow_cfg, _, share = VARIANTS[variant]
    base_dir = save_base(family, variant, tmp_path / "base", seed)
    auto = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    model = build_official_model(
        auto.from_pretrained(base_dir),
        OfficialShadowConfig(**shadow_cfg),
        task,
        shadow_model=shadow_model_config(family, variant),
        share_embeddings=share if VARIANTS[variant][3] is not None else None,
    )
    perturb(adapter_modules(model), seed + 1)
    model.eval()
    save_official_checkpoint(model, tmp_path / "adapter")
    return model, base_dir, tmp_path / "adapter"


@pytest.mark.parametrize(("family", "variant"), CASES, ids=IDS)
def test_round_trip_and_detached(tmp_path, family, variant):
    model, base_dir, adapter = own_checkpoint(tmp_path, family, variant)
    shadow = shadow_model_config(family, variant)
    loaded = load_official_model(base_dir, adapter, shadow_model=shadow)
    assert loaded.task == model.task
    assert len(loaded.adapted_layers) == TINY["num_hidden_layers"] - 1  # blocks 1..L-1
    ids, mask, positions = inputs()
    with torch.no_grad():
        want, got = model(ids, mask, positions), loaded(ids, mask, positions)
        np.testing.assert_allclose(real(got.logits, mask), real(want.logits, mask), atol=TOL)
        np.testing.assert_allclose(real(got.shadow_logits, mask), real(want.shadow_logits, mask), atol=TOL)
        detached = loaded.detached_forward(ids, mask, positions)
        np.testing.assert_allclose(real(detached, mask), real(want.shadow_logits, mask), atol=TOL)
        # The injection matters: with the adapter layers bypassed the logits change.
        auto = AutoModelForCausalLM if loaded.task == "causal_lm" else AutoModelForSequenceClassification
        plain = auto.from_pretrained(base_dir)(input_ids=ids, attention_mask=mask, position_ids=positions)
        assert np.abs(real(plain.logits, mask) - real(got.logits, mask)).max() > 1e-3

        hf = official_detached_model(loaded).eval()
        if loaded.task == "causal_lm":
            folded = hf(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            np.testing.assert_allclose(real(folded, mask), real(detached, mask), atol=TOL)
        else:  # HF pools the last non-pad token, the package sum(mask) - 1: equal unless left-padded
            folded = hf(input_ids=ids, attention_mask=mask).logits
            np.testing.assert_allclose(folded[[0, 2]].numpy(), detached[[0, 2]].numpy(), atol=TOL)


@pytest.mark.parametrize("family", list(CONFIGS))
def test_cached_decoding_equals_recomputation(tmp_path, family):
    model, _, _ = own_checkpoint(tmp_path, family, "explicit-narrow")
    ids, mask, positions = inputs()
    with torch.no_grad():
        full = model(ids, mask, positions).logits
        out = model(ids[:, :5], mask[:, :5], positions[:, :5], use_cache=True)
        steps = [out.logits[:, -1]]
        for t in range(5, ids.shape[1]):
            out = model(
                ids[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], out.past_key_values, True
            )
            steps.append(out.logits[:, -1])
    assert out.past_key_values.shadow.get_seq_length() == ids.shape[1]
    for step, t in enumerate(range(4, ids.shape[1])):
        rows = mask[:, t].bool()
        np.testing.assert_allclose(steps[step][rows].numpy(), full[rows, t].numpy(), atol=TOL)


def test_legacy_pt_weights_load_like_safetensors(tmp_path):
    """The package still reads `shadow_adapter.pt` when there is no safetensors file."""
    model, base_dir, adapter = own_checkpoint(tmp_path, "qwen3", "implicit")
    weights = adapter / "shadow_adapter.safetensors"
    torch.save(load_file(str(weights)), adapter / "shadow_adapter.pt")
    weights.unlink()
    loaded = load_official_model(base_dir, adapter)
    ids, mask, positions = inputs()
    with torch.no_grad():
        np.testing.assert_allclose(
            real(loaded(ids, mask).logits, mask), real(model(ids, mask).logits, mask), atol=TOL
        )


def test_detect_dialect(tmp_path):
    (tmp_path / "peft").mkdir()
    (tmp_path / "peft" / "adapter_config.json").write_text(json.dumps({"peft_type": "SHADOW"}))
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "shadow_config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assert detect_dialect(tmp_path / "peft") == "peft"
    assert detect_dialect(tmp_path / "official") == "official"
    with pytest.raises(CheckpointError, match="neither adapter_config.json"):
        detect_dialect(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not found"):
        detect_dialect(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="HF peft adapter"):
        read_official_checkpoint(tmp_path / "peft")


# ------------------------------------------------------------------------------------------- fast: bad inputs


def _edit_json(path: Path, **changes) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _edit_tensors(path: Path, edit) -> None:
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _other_base(tmp_path: Path, **changes) -> Path:
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(**{**TINY, **changes})).save_pretrained(tmp_path / "other")
    return tmp_path / "other"


BAD = {
    # name: (variant, edit(tmp_path, adapter_dir) -> base dir or None, file named in the message, words)
    "no-config": ("implicit", lambda t, a: (a / "shadow_config.json").unlink(), "adapter", "neither"),
    "no-weights": ("implicit", lambda t, a: (a / "shadow_adapter.safetensors").unlink(), "shadow_adapter", "missing"),
    "truncated-weights": ("implicit", lambda t, a: _truncate(a / "shadow_adapter.safetensors"), "shadow_adapter",
                          "truncated"),
    "truncated-modules": ("implicit", lambda t, a: _truncate(a / OFFICIAL_MODULES), OFFICIAL_MODULES, "truncated"),
    "bad-json": ("implicit", lambda t, a: (a / "shadow_config.json").write_text("{"), "shadow_config.json",
                 "not valid JSON"),
    "bad-gate-size": ("implicit", lambda t, a: _edit_json(a / "shadow_config.json", gate_hidden_size=1),
                      "shadow_config.json", "gate_hidden_size"),
    "bad-alpha": ("implicit", lambda t, a: _edit_json(a / "shadow_config.json", alpha="big"), "shadow_config.json",
                  "alpha"),
    "rank-mismatch": ("implicit", lambda t, a: _edit_json(a / "shadow_config.json", injection_hidden_size=5),
                      "shadow_adapter", "injection_hidden_size"),
    "gate-shape": ("implicit", lambda t, a: _edit_json(a / "shadow_config.json", gate_hidden_size=4),
                   "shadow_adapter", "gate_hidden_size"),
    "missing-tensor": ("implicit", lambda t, a: _edit_tensors(a / "shadow_adapter.safetensors", lambda s: s.pop(
        "shadow_update_model.hidden_norm.bias")), "shadow_adapter", "missing tensor"),
    "unexpected-tensor": ("implicit", lambda t, a: _edit_tensors(a / "shadow_adapter.safetensors", lambda s: s.update(
        {"lora_A.weight": torch.zeros(2)})), "shadow_adapter", "unexpected"),
    "wrong-shadow-layers": ("implicit", lambda t, a: _edit_json(a / "shadow_config.json", num_shadow_layers=3),
                            "shadow_adapter", "does not match"),
    "base-hidden": ("implicit", lambda t, a: _other_base(t, hidden_size=48, head_dim=12), "shadow_adapter",
                    "hidden size"),
    "base-layers": ("implicit", lambda t, a: _other_base(t, num_hidden_layers=4), "shadow_adapter", "4 blocks"),
    "base-vocab": ("implicit", lambda t, a: _other_base(t, vocab_size=160), OFFICIAL_MODULES, "expected [160"),
    "base-arch": ("implicit", lambda t, a: _edit_json(t / "base" / "config.json", model_type="gpt2"), "config.json",
                  "unsupported architecture"),
    "explicit-without-config": ("explicit-narrow", lambda t, a: None, "shadow_adapter", "explicit shadow model"),
    "labels": ("seq-cls", lambda t, a: _edit_json(t / "base" / "config.json",
                                                  id2label={"0": "a", "1": "b"}, label2id={"a": 0, "b": 1}),
               OFFICIAL_MODULES, "labels"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_refused_with_the_file_named(tmp_path, name):
    variant, edit, filename, words = BAD[name]
    _, base_dir, adapter = own_checkpoint(tmp_path, "llama", variant)
    other = edit(tmp_path, adapter)
    with pytest.raises(CheckpointError) as info:
        load_official_model(other or base_dir, adapter)
    message = str(info.value)
    assert filename in message, message
    assert words in message, message
    assert "Traceback" not in message


def test_explicit_config_of_the_wrong_width_is_refused(tmp_path):
    _, base_dir, adapter = own_checkpoint(tmp_path, "llama", "explicit-narrow")
    wrong = LlamaConfig(**{**TINY, **NARROW, "hidden_size": 24, "head_dim": 12})
    with pytest.raises(CheckpointError, match="hidden size 16 but the given shadow model config says 24"):
        load_official_model(base_dir, adapter, shadow_model=wrong)


# ----------------------------------------------------------------------------- slow: against the real package


@pytest.fixture(scope="module")
def official_references(tmp_path_factory) -> dict[str, Path]:
    """Run the official package (in its cached venv) on every case; returns case name -> its output directory."""
    root = tmp_path_factory.mktemp("official-inputs")
    spec = []
    for index, (family, variant) in enumerate(OFFICIAL_CASES):
        task, _, shadow_cfg, explicit, share = VARIANTS[variant]
        name = f"{family}-{variant}"
        base_dir = save_base(family, variant, root / name / "base", seed=100 + index)
        case = {"name": name, "task": task, "base": str(base_dir), "shadow_config": shadow_cfg, "seed": index}
        if explicit is not None:
            shadow_dir = root / name / "shadow"
            shadow_model_config(family, variant).save_pretrained(shadow_dir)
            case.update(shadow_model=str(shadow_dir), share_embeddings=share)
        spec.append(case)
    spec_path = root / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "cached", str(spec_path)], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed:\n{result.stderr[-4000:]}")
    out = Path(result.stdout.strip().splitlines()[-1])
    return {case["name"]: (out / case["name"], Path(case["base"]), case.get("shadow_model")) for case in spec}


@pytest.mark.slow
@pytest.mark.parametrize(("family", "variant"), OFFICIAL_CASES, ids=OFFICIAL_IDS)
def test_matches_the_official_package(official_references, family, variant, tmp_path):
    out, base_dir, shadow = official_references[f"{family}-{variant}"]
    adapter = tmp_path / "checkpoint"
    shutil.copytree(out / "checkpoint", adapter)  # our loader must not need anything but the checkpoint
    ref = np.load(out / "reference.npz")
    ids, mask, positions = (torch.from_numpy(ref[k]) for k in ("input_ids", "attention_mask", "position_ids"))
    model = load_official_model(base_dir, adapter, shadow_model=shadow)
    assert model.task == VARIANTS[variant][0]
    with torch.no_grad():
        plain, with_pos = model(ids, mask), model(ids, mask, positions)
        detached = model.detached_forward(ids, mask)
    pairs = {
        "attached_logits": plain.logits,
        "shadow_logits": plain.shadow_logits,
        "attached_logits_pos": with_pos.logits,
        "shadow_logits_pos": with_pos.shadow_logits,
        "detached_logits": detached,
    }
    for key, ours in pairs.items():
        np.testing.assert_allclose(real(ours, mask), real(ref[key], mask), atol=TOL, err_msg=key)

    hf = official_detached_model(model).eval()
    with torch.no_grad():
        if model.task == "causal_lm":
            folded = hf(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            np.testing.assert_allclose(real(folded, mask), real(ref["detached_logits_pos"], mask), atol=TOL)
        else:
            folded = hf(input_ids=ids, attention_mask=mask).logits
            np.testing.assert_allclose(folded[[0, 2]].numpy(), ref["detached_logits"][[0, 2]], atol=TOL)

    if model.task == "causal_lm":
        prefill = int(ref["decode_prefill"])
        with torch.no_grad():
            out = model(ids[:, :prefill], mask[:, :prefill], positions[:, :prefill], use_cache=True)
            steps = [out.logits[:, -1]]
            for t in range(prefill, ids.shape[1]):
                out = model(
                    ids[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], out.past_key_values, True
                )
                steps.append(out.logits[:, -1])
        for step, t in enumerate(range(prefill - 1, ids.shape[1])):
            rows = mask[:, t].bool().numpy()
            np.testing.assert_allclose(steps[step].numpy()[rows], ref["decode_logits"][step][rows], atol=TOL)


@pytest.mark.slow
def test_official_checkpoint_files_match_our_writer(official_references, tmp_path):
    """Our writer produces the package's tensor names, shapes and config keys."""
    out, base_dir, _ = official_references["qwen3-implicit"]
    model = load_official_model(base_dir, out / "checkpoint")
    save_official_checkpoint(model, tmp_path / "ours")
    for name in ("shadow_adapter.safetensors", OFFICIAL_MODULES):
        theirs, ours = load_file(str(out / "checkpoint" / name)), load_file(str(tmp_path / "ours" / name))
        assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
        for key in theirs:
            torch.testing.assert_close(ours[key], theirs[key], atol=0, rtol=0)
    theirs = json.loads((out / "checkpoint" / "shadow_config.json").read_text())
    assert json.loads((tmp_path / "ours" / "shadow_config.json").read_text()) == theirs
