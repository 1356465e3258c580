#!/usr/bin/env python3
"""Reference checkpoints and outputs from the official `shadow-peft` package, made in a separate, cached virtualenv.

Why a separate environment: `shadow-peft` 0.1.1 needs transformers > 5, while this project pins transformers 4.57
(optimum-onnx needs it). So this script creates `build/official-ref-venv` (with `--system-site-packages`, so the
installed torch is reused; transformers > 5 and shadow-peft are installed inside it), and runs the official package
there. The project side (export/official/) then loads the saved checkpoints without shadow-peft and must
reproduce the outputs written here.

Commands (run with the project's python; `build` re-executes itself inside the venv):

    python scripts/official_reference_env.py venv                 # create / reuse the venv, print its python
    python scripts/official_reference_env.py build SPEC.json OUT  # run every case of SPEC into OUT
    python scripts/official_reference_env.py cached SPEC.json     # like build, into a cache dir keyed by the
                                                                  # versions, this script, SPEC and its input files;
                                                                  # prints that directory

SPEC is a JSON list of cases::

    {"name": "llama-implicit",
     "task": "causal_lm" | "seq_cls",
     "base": "/path/to/base",                 # an HF checkpoint (AutoModelForCausalLM / ...ForSequenceClassification)
     "shadow_config": {...},                  # shadow_peft.ShadowConfig fields
     "shadow_model": "/path/to/config/dir",   # optional: explicit shadow model built from this config.json
     "share_embeddings": false,               # explicit shadow only: prepare_shadow_model(remove_embed_tokens=True)
     "seed": 0}

For each case OUT/<name>/ gets `checkpoint/` (what the package's `save_pretrained` writes) and `reference.npz`:
`input_ids`, `attention_mask` (row 0 full, row 1 left-padded, row 2 right-padded), `position_ids` (from the mask),
`attached_logits` / `shadow_logits` (`inference_mode="base_shadow"`, default positions), `attached_logits_pos` /
`shadow_logits_pos` (explicit mask-derived positions), `detached_logits` (`inference_mode="shadow_only"`), and for
causal LM `decode_logits` [steps, B, V]: the last-position logits of a cached prefill followed by one-token steps
(`use_cache=True`, the package's own shadow KV cache), plus `decode_input_ids` / `decode_attention_mask` /
`decode_position_ids` / `decode_prefill` describing them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / "build" / "official-ref-venv"
DEFAULT_CACHE = REPO / "build" / "official-ref"
SHADOW_PEFT_VERSION = "0.1.1"
# Overridable: any transformers > 5 that shadow-peft accepts.
TRANSFORMERS_SPEC = os.environ.get("SHADOW_EDGE_OFFICIAL_TRANSFORMERS", "transformers==5.23.0")
# Optional path to a local shadow-peft wheel (otherwise pip resolves it from the configured index).
WHEEL_ENV = "SHADOW_PEFT_WHEEL"
MARKER = "shadow_edge_official_venv.json"


# ------------------------------------------------------------------------------------------------------ the venv


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path):
    """Serialize concurrent creators (two pytest sessions, say) on one lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wanted() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "transformers": TRANSFORMERS_SPEC,
        "shadow-peft": os.environ.get(WHEEL_ENV) or f"shadow-peft=={SHADOW_PEFT_VERSION}",
    }


def installed_versions(python: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({p: m.version(p) for p in ('torch', 'transformers', 'shadow-peft', 'safetensors')}))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ensure_venv(venv_dir: Path = DEFAULT_VENV) -> Path:
    """Create (once) the venv with transformers > 5 and shadow-peft; return its python."""
    python = venv_python(venv_dir)
    marker = venv_dir / MARKER
    with _locked(venv_dir.parent / (venv_dir.name + ".lock")):
        if python.exists() and marker.exists() and json.loads(marker.read_text()).get("wanted") == _wanted():
            return python
        print(f"creating {venv_dir} (transformers > 5 + shadow-peft {SHADOW_PEFT_VERSION})", file=sys.stderr)
        venv.EnvBuilder(system_site_packages=True, clear=True, with_pip=True).create(venv_dir)
        wanted = _wanted()
        cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*cmd, wanted["transformers"], wanted["shadow-peft"]], check=True)
        versions = installed_versions(python)
        if not versions["transformers"].startswith(tuple(f"{major}." for major in range(5, 10))):
            raise RuntimeError(f"{venv_dir}: expected transformers > 5, got {versions['transformers']}")
        marker.write_text(json.dumps({"wanted": wanted, "versions": versions}, indent=2) + "\n")
        return python


# ------------------------------------------------------------------------------------------------------ caching


def _tree_digest(path: Path) -> str:
    """Content hash of a file or directory (names relative to it), so the key does not depend on where it lies."""
    # imported here: the part of this script that runs inside the official venv needs nothing of the project
    from shadow_edge.runtime.digest import files_sha256

    if path.is_dir():
        return files_sha256(sorted(p for p in path.rglob("*") if p.is_file()), root=path)
    return files_sha256([path])


def cache_key(spec: list[dict[str, Any]], python: Path) -> str:
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(json.dumps(installed_versions(python), sort_keys=True).encode())
    by_content = [
        {k: (_tree_digest(Path(v)) if k in ("base", "shadow_model") and v else v) for k, v in case.items()}
        for case in spec
    ]
    digest.update(json.dumps(by_content, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def cached(spec_path: Path, cache_root: Path = DEFAULT_CACHE, venv_dir: Path = DEFAULT_VENV) -> Path:
    spec = json.loads(spec_path.read_text())
    python = ensure_venv(venv_dir)
    out = cache_root / cache_key(spec, python)
    with _locked(cache_root / ".lock"):
        if not (out / "DONE").exists():
            run_in_venv(spec_path, out, python)
            (out / "DONE").write_text("ok\n")
    return out


def run_in_venv(spec_path: Path, out: Path, python: Path) -> None:
    env = dict(os.environ, PYTHONNOUSERSITE="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("OMP_NUM_THREADS", "1")
    subprocess.run([str(python), __file__, "_inside", str(spec_path), str(out)], check=True, env=env)


# ------------------------------------------------------------------------------------- inside the venv (official)


def _inputs(vocab: int, pad: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding
    mask[2, 6:] = 0  # right padding
    ids = ids.masked_fill(mask == 0, pad)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _perturb(modules: list[Any], seed: int, scale: float = 0.3) -> None:
    """Noise on every adapter parameter: injection_ups start at zero and LayerNorms at identity, which would hide
    mistakes in those terms."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    param.add_(torch.randn(param.shape, generator=gen) * scale)


def _build_case(case: dict[str, Any], out: Path) -> None:
    import numpy as np
    import shadow_peft
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(int(case.get("seed", 0)))
    causal = case["task"] == "causal_lm"
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    base = auto.from_pretrained(case["base"], dtype=torch.float32)
    config = shadow_peft.ShadowConfig.from_dict(case.get("shadow_config", {}))

    shadow_model = None
    if case.get("shadow_model"):
        shadow_cfg = AutoConfig.from_pretrained(case["shadow_model"])
        shadow_model = AutoModelForCausalLM.from_config(shadow_cfg, dtype=torch.float32)
        if case.get("share_embeddings"):
            shadow_model = shadow_peft.prepare_shadow_model(shadow_model, remove_embed_tokens=True)
    peft_model = shadow_peft.get_shadow_model(base, config, shadow_model=shadow_model)
    wrapper_cls = shadow_peft.ShadowForCausalLM if causal else shadow_peft.ShadowForSequenceClassification
    model = wrapper_cls(peft_model)

    trained = [
        peft_model.shadow_model,
        peft_model.shadow_hidden_projection,
        peft_model.shadow_injection_model,
        peft_model.shadow_update_model,
    ]
    heads = ("lm_head", "shadow_lm_head") if causal else ("classifier_head", "shadow_classifier_head")
    requested = list(config.modules_to_save)
    trained += [getattr(model, h) for h in heads if (h in requested) or (not causal and not requested)]
    _perturb(trained, seed=1000 + int(case.get("seed", 0)))
    model.eval()

    checkpoint = out / "checkpoint"
    model.save_pretrained(checkpoint)

    # Reload through the package's own from_pretrained (what a user does), on a fresh base.
    base2 = auto.from_pretrained(case["base"], dtype=torch.float32)
    shadow2 = None
    if shadow_model is not None:
        shadow2 = AutoModelForCausalLM.from_config(shadow_cfg, dtype=torch.float32)
        if case.get("share_embeddings"):
            shadow2 = shadow_peft.prepare_shadow_model(shadow2, remove_embed_tokens=True)
    model = wrapper_cls.from_pretrained(base2, checkpoint, shadow_model=shadow2).eval()

    vocab = int(base.config.vocab_size)
    pad = base.config.pad_token_id if base.config.pad_token_id is not None else 0
    ids, mask, positions = _inputs(vocab, pad, seed=7 + int(case.get("seed", 0)))
    result: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    with torch.no_grad():
        model.set_inference_mode("base_shadow")
        plain = model(input_ids=ids, attention_mask=mask)
        with_pos = model(input_ids=ids, attention_mask=mask, position_ids=positions)
        result.update(
            attached_logits=plain.logits,
            shadow_logits=plain.shadow_logits,
            attached_logits_pos=with_pos.logits,
            shadow_logits_pos=with_pos.shadow_logits,
        )
        model.set_inference_mode("shadow_only")
        result["detached_logits"] = model(input_ids=ids, attention_mask=mask).logits
        result["detached_logits_pos"] = model(
            input_ids=ids, attention_mask=mask, position_ids=positions
        ).logits
        model.set_inference_mode("base_shadow")
        if causal:
            result.update(_decode(model, ids, mask, positions))
    np.savez(out / "reference.npz", **{k: v.detach().cpu().numpy() for k, v in result.items()})
    info = {"case": case, "versions": installed_versions(Path(sys.executable))}
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def _decode(model: Any, ids: Any, mask: Any, positions: Any, prefill: int = 6) -> dict[str, Any]:
    """Cached prefill of the first `prefill` tokens, then one token per step (the package's own KV caches)."""
    import torch

    steps = []
    out = model(
        input_ids=ids[:, :prefill],
        attention_mask=mask[:, :prefill],
        position_ids=positions[:, :prefill],
        use_cache=True,
    )
    steps.append(out.logits[:, -1])
    past = out.past_key_values
    for t in range(prefill, ids.shape[1]):
        out = model(
            input_ids=ids[:, t : t + 1],
            attention_mask=mask[:, : t + 1],
            position_ids=positions[:, t : t + 1],
            use_cache=True,
            past_key_values=past,
        )
        past = out.past_key_values
        steps.append(out.logits[:, -1])
    return {
        "decode_logits": torch.stack(steps),
        "decode_input_ids": ids,
        "decode_attention_mask": mask,
        "decode_position_ids": positions,
        "decode_prefill": torch.tensor(prefill),
    }


def inside(spec_path: Path, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    spec = json.loads(spec_path.read_text())
    for case in spec:
        target = out / case["name"]
        target.mkdir(parents=True, exist_ok=True)
        _build_case(case, target)


# ------------------------------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{venv,build,cached}")
    p_venv = sub.add_parser("venv", help="create / reuse the venv and print its python")
    p_venv.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p_build = sub.add_parser("build", help="run the cases of SPEC into OUT (no caching)")
    p_build.add_argument("spec", type=Path)
    p_build.add_argument("out", type=Path)
    p_build.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p_cached = sub.add_parser("cached", help="like build, into a keyed cache directory; prints it")
    p_cached.add_argument("spec", type=Path)
    p_cached.add_argument("--cache-root", type=Path, default=DEFAULT_CACHE)
    p_cached.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p_inside = sub.add_parser("_inside")  # internal: runs inside the venv
    p_inside.add_argument("spec", type=Path)
    p_inside.add_argument("out", type=Path)
    args = parser.parse_args(argv)

    if args.command == "venv":
        print(ensure_venv(args.venv))
    elif args.command == "build":
        run_in_venv(args.spec, args.out, ensure_venv(args.venv))
        print(args.out)
    elif args.command == "cached":
        print(cached(args.spec, args.cache_root, args.venv))
    else:
        inside(args.spec, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
