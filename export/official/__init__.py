"""Checkpoints written by the official `shadow-peft` package (0.1.x), loaded without it.

The package (github.com/ShadowLLM/shadow-peft) needs transformers > 5, which this project cannot install beside
optimum-onnx. Its checkpoints are small and simple, so this subpackage reads them directly and rebuilds the model in
torch with the package's math (read off shadow_peft 0.1.1: `modules.py`, `peft_model.py`, `task_models.py`):

    files   shadow_config.json          ShadowConfig fields (num_shadow_layers, injection_hidden_size,
                                        gate_hidden_size, alpha, dropout, shadow_* sizes, modules_to_save)
            shadow_adapter.safetensors  shadow_model.*              the shadow backbone (a `*Model`; no embed_tokens
                                                                    when it shares the base input embeddings)
                                        shadow_hidden_projection.weight   [d, d_shadow], only when the widths differ
                                        shadow_injection_model.injection_downs [L-1, d, r], .injection_ups [L-1, r, d]
                                        shadow_update_model.hidden_norm.{weight,bias}      one LayerNorm, all layers
                                        shadow_update_model.update_transforms.{i}.{0,3}.weight   Linear-SiLU-Linear
                                        shadow_update_model.update_gates.{i}.{0,2}.weight        Linear-SiLU-Linear
            shadow_modules.safetensors  optional: lm_head / shadow_lm_head (causal LM) or classifier_head /
                                        shadow_classifier_head (sequence classification), "{module}.{param}"

    seed    s = P(shadow_backbone(x))          x = base input embeddings (shared) or the backbone's own
    block 0 h = block_0(h)                     (untouched)
    block l h = h + alpha * ((h - s) @ D[l-1]) @ U[l-1]                           (l = 1 .. L-1, injection)
            h = block_l(h)
            n = LayerNorm(h);  s = s + G[l-1](n) * (T[l-1](n) - s),  G ends in a sigmoid  (update)
    heads   logits = base head (lm_head / score, possibly replaced from shadow_modules)
            shadow_logits = shadow head(s_seed)  -- the *seed* state, not the updated one
            (sequence classification: the shadow state at index sum(mask) - 1, i.e. right-padding pooling)

The loaded `OfficialShadowModel` keeps the base's own HF forward (masks, rotary embedding, KV cache) and wraps blocks
1..L-1 in `OfficialShadowLayer`s whose attribute names and inference methods follow peft's `ShadowLayer`
(`base_layer`, `shadow_down[adapter]`, `shadow_inject(h, s, adapter)`, `shadow_update(h, s, adapter)`);
`OfficialShadowModel.shadow_parts()` describes it like `export.parts.ShadowParts` describes a peft model, so the
tensor-only export graphs and the detached folding can treat both dialects alike.

Split the way peft splits a method: `config` (the config file and the package's names), `io` (reading, checking,
loading and saving the files; the tensor-name mapping), `modeling` (layers and model), `detach` (the detached shadow
as a plain HF model).
"""

from shadow_edge.export.official.config import (
    ADAPTER_NAME,
    HEAD_MODULES,
    OFFICIAL_CONFIG,
    OFFICIAL_LEGACY_WEIGHTS,
    OFFICIAL_MODULES,
    OFFICIAL_WEIGHTS,
    OfficialShadowConfig,
    Task,
)
from shadow_edge.export.official.detach import official_detached_model
from shadow_edge.export.official.io import (
    OfficialCheckpoint,
    check_official_pair,
    detect_dialect,
    load_official_model,
    official_state_dict,
    read_official_checkpoint,
    save_official_checkpoint,
)
from shadow_edge.export.official.modeling import (
    OfficialParts,
    OfficialShadowLayer,
    OfficialShadowModel,
    OfficialShadowOutput,
    build_official_model,
    implicit_shadow_config,
    pool_like_package,
)

__all__ = [
    "ADAPTER_NAME",
    "HEAD_MODULES",
    "OFFICIAL_CONFIG",
    "OFFICIAL_LEGACY_WEIGHTS",
    "OFFICIAL_MODULES",
    "OFFICIAL_WEIGHTS",
    "OfficialCheckpoint",
    "OfficialParts",
    "OfficialShadowConfig",
    "OfficialShadowLayer",
    "OfficialShadowModel",
    "OfficialShadowOutput",
    "Task",
    "build_official_model",
    "check_official_pair",
    "detect_dialect",
    "implicit_shadow_config",
    "load_official_model",
    "official_detached_model",
    "official_state_dict",
    "pool_like_package",
    "read_official_checkpoint",
    "save_official_checkpoint",
]
