"""Adapter recipes, the robot-dog training objective and the training script, on tiny random causal LMs.

Every model here is a 4-layer, 32-wide Llama / Qwen2 / Qwen3 with the real SmolLM2 tokenizer's vocabulary (so the
chat template and the encoded examples are the ones training uses), randomly initialised: the real base is never
loaded. One CPU thread, a few seconds per architecture.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from shadow_edge.tasks.robot_dog.generator import load_split  # noqa: E402
from shadow_edge.tasks.robot_dog.recipes import (  # noqa: E402
    SHADOW_ADAPTER,
    base_layers_for_shadow,
    build_adapter,
    count_trainable,
    recipe_dict,
    shadow_seed_state,
)
from shadow_edge.tasks.robot_dog.task import (  # noqa: E402
    IGNORE_INDEX,
    collate,
    encode_example,
    generate_programs,
    tail_loss,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHS = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
}
N_LAYERS = 4


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(arch: str, tokenizer, initializer_range: float = 0.02):
    config_cls, _ = ARCHS[arch]
    return config_cls(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_base(arch: str, tokenizer, seed: int = 0, initializer_range: float = 0.02):
    """A random base, frozen and in eval mode like `load_base` returns it."""
    torch.manual_seed(seed)
    _, model_cls = ARCHS[arch]
    model = model_cls(tiny_config(arch, tokenizer, initializer_range))
    model.requires_grad_(False)
    model.eval()
    return model


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    return smollm2_tokenizer


@pytest.fixture(scope="module")
def train_examples() -> list[dict]:
    return load_split("train")[:200]


@pytest.fixture(scope="module")
def encoded(tokenizer, train_examples):
    """Three training examples whose prompts and answers all have different lengths (so padding is exercised)."""
    picked, lengths, targets = [], set(), set()
    for ex in train_examples:
        e = encode_example(tokenizer, ex["text"], ex["program"])
        if len(e.input_ids) not in lengths and e.n_target not in targets:
            picked.append(e)
            lengths.add(len(e.input_ids))
            targets.add(e.n_target)
        if len(picked) == 3:
            break
    assert len(picked) == 3
    # Shortest first: neither collate nor the checks may rely on the order.
    return sorted(picked, key=lambda e: len(e.input_ids))


def wrapped_base_layers(model):
    return model.base_model.model.model.layers


# ----------------------------------------------------------------------------------------------- recipe wiring


@pytest.mark.parametrize(
    ("n_base", "n_shadow", "expected"),
    [
        (30, 4, [0, 1, 2, 29]),
        (4, 1, [0]),
        (4, 2, [0, 3]),
        (4, 4, [0, 1, 2, 3]),
        (30, 2, [0, 29]),
    ],
)
def test_base_layers_for_shadow(n_base, n_shadow, expected):
    assert base_layers_for_shadow(n_base, n_shadow) == expected


def test_base_layers_for_shadow_needs_a_layer():
    with pytest.raises(ValueError):
        base_layers_for_shadow(4, 0)


def test_base_layers_for_shadow_refuses_more_layers_than_the_base():
    with pytest.raises(ValueError, match="cannot seed 5 shadow layers from a 3-layer base"):
        base_layers_for_shadow(3, 5)


@pytest.mark.parametrize("arch", ARCHS)
def test_shadow_freezes_base_and_seeds_backbone_from_base_layers(arch, tokenizer):
    base = tiny_base(arch, tokenizer)
    before = {name: t.detach().clone() for name, t in base.state_dict().items()}
    base_params = dict(base.named_parameters())

    model = build_adapter(base, "shadow", shadow_layers=2)

    # The base: every original parameter frozen and unchanged.
    for name, p in base_params.items():
        assert not p.requires_grad, f"base parameter {name} is trainable"
        assert torch.equal(p, before[name]), f"base parameter {name} changed"
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("shadow_" in n for n in trainable), sorted(trainable)
    assert count_trainable(model) == sum(p.numel() for p in trainable.values()) > 0
    # Every base block carries an injection / update.
    for block in wrapped_base_layers(model):
        assert SHADOW_ADAPTER in block.shadow_down

    # The shadow backbone: copies (not views) of base layers [0, L-1] and of the base's final norm.
    backbone = model.base_model.shadow_backbone[SHADOW_ADAPTER]
    assert not hasattr(backbone, "embed_tokens"), (
        "the mirror backbone should share the frozen base embeddings"
    )
    seeds = base_layers_for_shadow(N_LAYERS, 2)
    assert len(backbone.layers) == len(seeds) == 2
    base_storage = {p.data_ptr() for p in base_params.values()}
    for i, j in enumerate(seeds):
        prefix = f"model.layers.{j}."
        expected = {k[len(prefix) :]: v for k, v in before.items() if k.startswith(prefix)}
        got = backbone.layers[i].state_dict()
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(got[key], value), f"shadow layer {i} {key} != base layer {j}"
    norm = backbone.norm.state_dict()
    assert norm.keys() == {k[len("model.norm.") :] for k in before if k.startswith("model.norm.")}
    for key, value in norm.items():
        assert torch.equal(value, before[f"model.norm.{key}"])
    for name, p in backbone.named_parameters():
        assert p.requires_grad, f"shadow backbone {name} is frozen"
        assert p.data_ptr() not in base_storage, f"shadow backbone {name} shares storage with the base"


def test_shadow_deeper_than_base(tokenizer):
    """Seeding from base layers needs as many base layers; a fresh (random) deeper shadow is still possible."""
    with pytest.raises(ValueError, match="cannot seed"):
        build_adapter(tiny_base("llama", tokenizer), "shadow", shadow_layers=N_LAYERS + 1)
    model = build_adapter(
        tiny_base("llama", tokenizer), "shadow", shadow_layers=N_LAYERS + 1, init_from_base=False
    )
    assert len(model.base_model.shadow_backbone[SHADOW_ADAPTER].layers) == N_LAYERS + 1


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_and_dora_train_only_adapter_weights(arch, method, tokenizer):
    base = tiny_base(arch, tokenizer)
    base_params = dict(base.named_parameters())
    model = build_adapter(base, method, r=4, alpha=8)
    for name, p in base_params.items():
        assert not p.requires_grad, f"base parameter {name} is trainable"
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable), trainable
    magnitudes = [n for n in trainable if "lora_magnitude_vector" in n]
    assert bool(magnitudes) == (method == "dora")
    # Seven projections in each of the four blocks.
    assert len([n for n in trainable if "lora_A" in n]) == 7 * N_LAYERS
    if method == "dora":
        assert len(magnitudes) == 7 * N_LAYERS
    config = model.peft_config["default"]
    assert config.r == 4 and config.lora_alpha == 8 and config.use_dora == (method == "dora")
    assert recipe_dict(method, r=4, alpha=8)["use_dora"] == (method == "dora")


def test_unknown_method(tokenizer):
    with pytest.raises(ValueError, match="unknown method"):
        build_adapter(tiny_base("llama", tokenizer), "prefix")


# ------------------------------------------------------------------------------------------- training objective


def reference_answer_logits(model, example):
    """Logits predicting the answer tokens of one example, from an unpadded forward over the whole sequence."""
    ids = torch.tensor([example.input_ids])
    logits = model(input_ids=ids).logits[0]
    n = len(example.input_ids)
    return logits[n - example.n_target - 1 : n - 1]


@pytest.mark.parametrize("arch", ARCHS)
def test_tail_loss_on_left_padded_batch_equals_masked_loss(arch, tokenizer, encoded):
    model = tiny_base(arch, tokenizer)
    batch = collate(encoded, tokenizer.pad_token_id)
    assert batch.input_ids.shape[0] == 3
    assert (batch.labels != IGNORE_INDEX).sum() == sum(e.n_target for e in encoded)
    with torch.no_grad():
        out = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=batch.n_tail
        )
        assert out.logits.shape[1] == batch.n_tail
        loss = tail_loss(out.logits, batch)

        # Reference: each row on its own, no padding; labels -100 everywhere but the answer; mean over all answer tokens.
        total, count = torch.zeros((), dtype=torch.float64), 0
        for e in encoded:
            ids = torch.tensor([e.input_ids])
            labels = torch.full_like(ids, IGNORE_INDEX)
            labels[0, -e.n_target :] = ids[0, -e.n_target :]
            logits = model(input_ids=ids).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(
                logits.float(), labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum"
            ).double()
            count += e.n_target
    torch.testing.assert_close(loss.double(), total / count, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_auxiliary_loss_trains_the_detached_shadow(arch, tokenizer, encoded):
    """What the training script's auxiliary loss scores -- head(s0) on the last n_tail positions of the padded batch --
    is exactly what `unload_shadow()` computes on each unpadded example."""
    base = tiny_base(arch, tokenizer)
    model = build_adapter(base, "shadow", shadow_layers=2)
    torch.manual_seed(1)
    with torch.no_grad():  # move away from the copy-of-base initialisation
        for p in model.base_model.shadow_backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.train()  # as in training (dropout does not touch the seed path)
    batch = collate(encoded, tokenizer.pad_token_id)
    with torch.no_grad():
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=batch.n_tail)
        head = model.get_output_embeddings()
        shadow_logits = head(shadow_seed_state(model)[:, -batch.n_tail :, :])

        detached = model.base_model.unload_shadow()
        detached.eval()
        for row, e in enumerate(encoded):
            expected = reference_answer_logits(detached, e)
            got = shadow_logits[row, -e.n_target - 1 : -1]
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def training_loss(model, method, batch, aux_weight):
    """The loss the training script minimises."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=batch.n_tail)
    loss = tail_loss(out.logits, batch)
    if method == "shadow":
        head = model.get_output_embeddings()
        loss = loss + aux_weight * tail_loss(head(shadow_seed_state(model)[:, -batch.n_tail :, :]), batch)
    return loss


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    ("method", "overrides"), [("shadow", {"shadow_layers": 2}), ("lora", {}), ("dora", {})]
)
def test_a_few_steps_reduce_the_loss(arch, method, overrides, tokenizer, encoded):
    if method != "shadow":
        overrides = {"r": 4, "alpha": 8}
    model = build_adapter(tiny_base(arch, tokenizer), method, **overrides)
    model.train()
    torch.manual_seed(0)
    aux_weight = recipe_dict(method, **overrides).get("auxiliary_loss_weight", 0.0)
    batch = collate(encoded, tokenizer.pad_token_id)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        loss = training_loss(model, method, batch, aux_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # From a random base the loss falls slowly (about 0.3-0.8 nats in ten steps), but it must fall.
    assert losses[-1] < losses[0] - 0.1, losses


# ------------------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_programs_batched_equals_one_by_one(arch, tokenizer, train_examples):
    # A wide initialisation keeps the greedy choices far from ties, so float noise between padded and unpadded
    # forwards cannot flip a token.
    base = tiny_base(arch, tokenizer, initializer_range=0.5)
    texts = sorted(
        (ex["text"] for ex in train_examples[:4]), key=len
    )  # shortest first: not the batching order
    lengths = [len(t) for t in texts]
    assert lengths != sorted(lengths, reverse=True), "generate_programs reorders longest-first: test that"

    def check(model):
        batched = generate_programs(model, tokenizer, texts, batch_size=3, max_new_tokens=6)
        assert len(batched) == len(texts) and all(isinstance(s, str) for s in batched)
        assert len(set(batched)) == len(texts), "distinct answers are needed to tell the order apart"
        alone = [generate_programs(model, tokenizer, [t], max_new_tokens=6)[0] for t in texts]
        assert batched == alone
        return batched

    from_base = check(base)
    shadow = build_adapter(base, "shadow", shadow_layers=2)
    torch.manual_seed(1)
    with torch.no_grad():  # make the injection and the shadow backbone matter
        for p in shadow.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    shadow.eval()
    from_shadow = check(shadow)
    detached = shadow.base_model.unload_shadow()
    detached.eval()
    from_detached = check(detached)
    assert from_shadow != from_base and from_detached != from_base


# --------------------------------------------------------------------------------------------- training script


def load_training_script():
    spec = importlib.util.spec_from_file_location("train_robot_dog", ROOT / "scripts" / "train_robot_dog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_base_dir(tmp_path_factory, tokenizer) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama")
    tiny_base("llama", tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    assert (directory / "config.json").is_file()
    return directory


def train_args(base: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--method",
        "shadow",
        "--base",
        str(base),
        "--out",
        str(out),
        "--steps",
        "4",
        "--batch-size",
        "2",
        # Five examples in batches of two: step 3 crosses into the second epoch, whose shuffle the resumed run must
        # repeat from the checkpointed data RNG.
        "--limit",
        "5",
        "--save-every",
        "2",
        "--recipe",
        "shadow_layers=2",
        "--threads",
        "1",
        "--lr",
        "1e-2",
        "--backbone-lr",
        "1e-3",
        "--warmup",
        "1",
        *extra,
    ]


def read_adapter(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(directory / "adapter_model.safetensors")


def test_training_script_writes_adapter_and_resumes_exactly(tmp_path, tiny_base_dir):
    script = load_training_script()

    # Run A: four steps straight.
    straight = tmp_path / "a"
    assert script.main(train_args(tiny_base_dir, straight)) == 0
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_record.json"):
        assert (straight / name).is_file(), name
    record = json.loads((straight / "training_record.json").read_text())
    assert record["trainable_parameters"] > 0
    assert record["train_examples"] == 5
    assert record["recipe"]["shadow_layers"] == 2
    assert record["data_sha256"] and all(len(h) == 64 for h in record["data_sha256"].values())
    assert [r["step"] for r in record["loss_history"]] == [1, 2, 3, 4]
    assert all("shadow_loss" in r for r in record["loss_history"])
    weights_a = read_adapter(straight)
    assert sum(t.numel() for t in weights_a.values()) == record["trainable_parameters"]
    assert any(".shadow_backbone." in f".{k}" for k in weights_a)
    ups = [v for k, v in weights_a.items() if ".shadow_up." in k]
    assert ups and all(v.abs().max() > 0 for v in ups), "the zero-initialised injections did not train"

    # Run B: interrupted during step 3 (after the step-2 checkpoint), then resumed.
    resumed = tmp_path / "b"
    calls = []

    class Interrupted(Exception):
        pass

    def crash_on_third_step(optimizer, args, kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(crash_on_third_step)
    try:
        with pytest.raises(Interrupted):
            script.main(train_args(tiny_base_dir, resumed))
    finally:
        handle.remove()
    assert not (resumed / "adapter_model.safetensors").exists()
    ckpt = resumed.with_name(resumed.name + ".ckpt") / "state.pt"
    assert torch.load(ckpt, weights_only=False)["step"] == 2

    assert script.main(train_args(tiny_base_dir, resumed, "--resume")) == 0
    record_b = json.loads((resumed / "training_record.json").read_text())
    assert record_b["loss_history"] == record["loss_history"]
    weights_b = read_adapter(resumed)
    assert weights_b.keys() == weights_a.keys()
    for key, value in weights_a.items():
        assert torch.equal(weights_b[key], value), key


@pytest.mark.parametrize("arch", ARCHS)
def test_standalone_shadow_state_loads_back_and_grafts_into_the_adapter(arch, tokenizer):
    import torch
    from shadow_edge.tasks.robot_dog.standalone import (
        build_standalone_shadow,
        graft_shadow,
        load_shadow_state,
        shadow_state_dict,
    )

    base = tiny_base(arch, tokenizer)
    trained = build_standalone_shadow(base, 2)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.5)
    state = shadow_state_dict(trained)

    fresh = build_standalone_shadow(base, 2)
    load_shadow_state(fresh, state)
    assert all(torch.equal(state[k], v) for k, v in shadow_state_dict(fresh).items())
    with pytest.raises(ValueError, match="do not fit the standalone shadow"):
        load_shadow_state(build_standalone_shadow(base, 1), state)

    # build_adapter wraps the base's layers in place: each adapter gets a base of its own
    adapter = build_adapter(base, "shadow", shadow_layers=2)
    graft_shadow(adapter, state)
    backbone = adapter.base_model.shadow_backbone["default"].state_dict()
    assert all(torch.equal(backbone[k], v) for k, v in state.items())
    with pytest.raises(ValueError, match="do not fit the adapter"):
        graft_shadow(build_adapter(tiny_base(arch, tokenizer), "shadow", shadow_layers=1), state)
