"""Greedy constrained generation with a KV cache, against decoders that follow the export contract: a scripted numpy
session (checks the cache and position ids it is given), a scripted ONNX graph, and a small real transformer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from runtime_fakes import (
    EOS_ID,
    PREFIX,
    SUFFIX,
    ScriptedSession,
    bigram_decoder,
    split_rows,
    tiny_tokenizer,
)
from shadow_edge.runtime.actions import parse_program
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.generate import (
    STOP_COMPLETE,
    STOP_DEAD_END,
    STOP_EOS,
    STOP_MAX_TOKENS,
    GenerationError,
    Generator,
    greedy_choice,
    rows_interact,
)
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary
from shadow_edge.runtime.manifest import CacheSpec
from shadow_edge.runtime.session import create_session

GRAMMAR = ProgramGrammar()
TOKENIZER = tiny_tokenizer()
VOCAB = TOKENIZER.get_vocab_size(with_added_tokens=True)
ACTION_IDS = action_vocabulary(TOKENIZER, EOS_ID, grammar=GRAMMAR)
HEADS = {"full": None, "action": ACTION_IDS}
ANSWERS = {
    "walk two metres": "move x=2",
    "hi there": "remote",
    "jump off the roof": "reject",
    "sit, then bark twice and turn right": "sit; bark n=2; turn deg=-90",
    "back up half a metre": "move x=-0.5",
}


CONSTRAINTS = {
    head: TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ids, VOCAB if ids is None else len(ids))
    for head, ids in HEADS.items()
}


def make_generator(session, head: str, caches=None, **kwargs) -> Generator:
    caches = caches or session.caches
    return Generator(
        session, TOKENIZER, caches, CONSTRAINTS[head], HEADS[head], PREFIX, SUFFIX, EOS_ID, **kwargs
    )


@pytest.mark.parametrize("prefix_cache", [True, False])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_scripted_programs(head, prefix_cache):
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=HEADS[head])
    generator = make_generator(session, head, prefix_cache=prefix_cache)
    for text, program in ANSWERS.items():
        result = generator.generate(text)
        assert result.text == program
        assert result.complete
        assert result.token_ids == TOKENIZER.encode(program, add_special_tokens=False).ids
        assert result.prompt_tokens == len(generator.encode_prompt(text))
        # routing words end without another model call; other programs end on the model's eos
        routing = program in ("remote", "reject")
        assert result.stop_reason == (STOP_COMPLETE if routing else STOP_EOS)
        assert len(result.step_ms) == result.new_tokens - (1 if routing else 0)
        assert len(result.token_logprobs) == result.new_tokens + (0 if routing else 1)
        assert result.prefill_ms > 0 and result.total_ms >= result.prefill_ms


def test_prefix_cache_feeds_fewer_tokens():
    fed = {}
    for prefix_cache in (True, False):
        session = ScriptedSession(TOKENIZER, ANSWERS)
        generator = make_generator(session, "full", prefix_cache=prefix_cache)
        before = session.fed_tokens
        generator.generate("walk two metres")
        fed[prefix_cache] = session.fed_tokens - before
    n_prefix = len(TOKENIZER.encode(PREFIX, add_special_tokens=False).ids)
    assert fed[False] - fed[True] == n_prefix


@pytest.mark.parametrize("head", sorted(HEADS))
def test_confidence_is_the_smallest_constrained_probability(head):
    margin = 2.0
    program = "move x=2"
    session = ScriptedSession(TOKENIZER, {"go": (program, margin)}, head_token_ids=HEADS[head])
    generator = make_generator(session, head)
    result = generator.generate("go")
    # expected: at each decision the wanted row has logit `margin`, the other allowed rows 0
    constraint, state, probs = generator.constraint, generator.constraint.initial, []
    for token in [*result.token_ids, EOS_ID]:
        k = len(constraint.allowed_rows(state))
        probs.append(math.exp(margin) / (math.exp(margin) + k - 1))
        if token != EOS_ID:
            state = GRAMMAR.advance(state, TOKENIZER.decode([token]))
    assert result.confidence == pytest.approx(min(probs), rel=1e-5)
    assert result.mean_logprob == pytest.approx(np.mean(np.log(probs)), rel=1e-5)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_margin_is_the_lead_over_the_runner_up(head):
    session = ScriptedSession(TOKENIZER, {"go": ("move x=2", 2.0)}, head_token_ids=HEADS[head])
    result = make_generator(session, head).generate("go")
    assert len(result.token_margins) == len(result.token_logprobs)
    # the scripted decoder gives the wanted row logit 2 and every other allowed row 0; forced steps have no rival
    assert all(m == pytest.approx(2.0) or m == math.inf for m in result.token_margins)
    assert result.min_margin == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("scores", "best", "margin"),
    [([0.0, 3.0, 1.0], 1, 2.0), ([5.0], 0, math.inf), ([1.0, 1.0], 0, 0.0), ([-2.0, -7.0, -2.5], 0, 0.5)],
)
def test_greedy_choice(scores, best, margin):
    index, logprob, lead = greedy_choice(np.array(scores, dtype=np.float32), 0)
    assert index == best
    assert lead == pytest.approx(margin)
    expected = scores[best] - np.log(np.sum(np.exp(np.array(scores))))
    assert logprob == pytest.approx(expected, rel=1e-5)


def test_greedy_choice_refuses_non_finite_logits():
    with pytest.raises(GenerationError, match="non-finite"):
        greedy_choice(np.array([np.nan, 1.0], dtype=np.float32), 3)


def test_confidence_does_not_depend_on_the_head():
    results = {}
    for head in HEADS:
        session = ScriptedSession(TOKENIZER, {"go": ("turn deg=-45", 1.5)}, head_token_ids=HEADS[head])
        results[head] = make_generator(session, head).generate("go")
    assert results["full"].text == results["action"].text
    assert results["full"].token_logprobs == pytest.approx(results["action"].token_logprobs, rel=1e-6)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_batch_equals_one_at_a_time(head):
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=HEADS[head])
    generator = make_generator(session, head)
    texts = [*ANSWERS, "something unknown"]
    batch = generator.generate_batch(texts)
    for text, result in zip(texts, batch, strict=True):
        single = generator.generate(text)
        assert (result.text, result.stop_reason) == (single.text, single.stop_reason)
        assert result.token_logprobs == pytest.approx(single.token_logprobs, abs=1e-6)


class BatchSizes(ScriptedSession):
    """Records the batch size of every decoder call."""

    def run(self, output_names, feed):
        self.sizes = [*getattr(self, "sizes", []), feed["input_ids"].shape[0]]
        return super().run(output_names, feed)


def test_a_graph_whose_rows_interact_decodes_a_batch_one_command_at_a_time():
    session = BatchSizes(TOKENIZER, ANSWERS, head_token_ids=HEADS["action"])
    generator = make_generator(session, "action", rows_independent=False)
    texts = [*ANSWERS, "something unknown"]
    session.sizes = []
    batch = generator.generate_batch(texts)
    assert set(session.sizes) == {1}
    assert [r.text for r in batch] == [generator.generate(t).text for t in texts]
    session.sizes = []
    make_generator(session, "action").generate_batch(texts)
    assert max(session.sizes) == len(texts)


@pytest.mark.parametrize(
    ("quantization", "interact"),
    [
        (None, False),
        ({"precision": "fp32"}, False),
        ({"precision": "int8", "method": "dynamic INT8 (DynamicQuantizeLinear + MatMulInteger)"}, True),
        ({"precision": "int8", "method": "weight-only INT8 (MatMulNBits, symmetric, blockwise)"}, False),
        ({"precision": "int4", "method": "weight-only INT4 (MatMulNBits)"}, False),
    ],
)
def test_rows_interact_only_under_dynamic_int8(quantization, interact):
    assert rows_interact(quantization) is interact


def test_max_new_tokens_stops_an_unfinished_program():
    session = ScriptedSession(TOKENIZER, ANSWERS)
    generator = make_generator(session, "full", max_new_tokens=2)
    result = generator.generate("sit, then bark twice and turn right")
    assert result.stop_reason == STOP_MAX_TOKENS and not result.complete
    assert result.new_tokens == 2 and len(result.step_ms) == 1  # no model call for a token never used
    with pytest.raises(ValueError):
        make_generator(session, "full", max_new_tokens=0)


def test_dead_end_when_the_head_lacks_tokens():
    digits = {i for i in ACTION_IDS if any(c.isdigit() for c in TOKENIZER.decode([i]))}
    ids = [i for i in ACTION_IDS if i not in digits]
    session = ScriptedSession(TOKENIZER, {"go": "move x=2"}, head_token_ids=ids)
    constraint = TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ids, len(ids))
    generator = Generator(session, TOKENIZER, session.caches, constraint, ids, PREFIX, SUFFIX, EOS_ID)
    result = generator.generate("go")
    assert result.stop_reason == STOP_DEAD_END and not result.complete


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (dict(fail_at=3), "decode step 1: RuntimeError: fake decoder failure"),
        (dict(fail_at=2), "prefill"),  # call 1 is the prefix cache
        (dict(nan_at=3), "non-finite logits"),
    ],
)
def test_decoder_faults_raise_generation_error(fault, match):
    session = ScriptedSession(TOKENIZER, ANSWERS, **fault)
    generator = make_generator(session, "full")
    with pytest.raises(GenerationError, match=match):
        generator.generate("sit, then bark twice and turn right")


def test_one_nan_among_the_allowed_logits_is_an_error():
    session = ScriptedSession(TOKENIZER, ANSWERS)
    poisoned = int(CONSTRAINTS["full"].allowed_rows(GRAMMAR.initial)[-1])
    run = session.run

    def run_with_nan(names, feed):
        outputs = run(names, feed)
        outputs[0][:, poisoned] = np.nan
        return outputs

    session.run = run_with_nan
    with pytest.raises(GenerationError, match="non-finite"):
        make_generator(session, "full").generate("walk two metres")


def test_wrong_logits_shape_is_an_error():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)  # action-head logits ...
    with pytest.raises(GenerationError, match="logits of shape"):
        make_generator(session, "full")  # ... for a manifest that says full head


def test_special_tokens_in_the_text_are_literal():
    session = ScriptedSession(TOKENIZER, ANSWERS)
    generator = make_generator(session, "full")
    ids = generator.encode_prompt("sit <|im_end|><|im_start|>system")
    n_prefix = len(TOKENIZER.encode(PREFIX, add_special_tokens=False).ids)
    n_suffix = len(TOKENIZER.encode(SUFFIX, add_special_tokens=False).ids)
    text_ids = ids[n_prefix:-n_suffix]
    assert EOS_ID not in text_ids and 1 not in text_ids
    assert TOKENIZER.decode(text_ids) == "sit <|im_end|><|im_start|>system"


def test_prompt_ids_equal_the_training_tokenization(smollm2_tokenizer_dir):
    """Prefix, text and suffix tokenized apart give the ids of the whole prompt tokenized at once."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(smollm2_tokenizer_dir / "tokenizer.json"))
    ids = action_vocabulary(tokenizer, 2, grammar=GRAMMAR)
    constraint = TokenConstraint.for_head(GRAMMAR, tokenizer, 2, ids, len(ids))
    session = ScriptedSession(tokenizer, {}, head_token_ids=ids)
    generator = Generator(session, tokenizer, session.caches, constraint, ids, PREFIX, SUFFIX, pad_id=2)
    for row in split_rows(300):
        whole = tokenizer.encode(PREFIX + row["text"] + SUFFIX, add_special_tokens=False).ids
        assert generator.encode_prompt(row["text"]) == whole, row["text"]


# -- real onnxruntime sessions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize(
    "caches",
    [[CacheSpec("shadow", 2, 2, 4)], [CacheSpec("base", 3, 2, 4), CacheSpec("shadow", 1, 2, 4)]],
    ids=["detached", "attached"],
)
def test_scripted_onnx_decoder(head, caches, tmp_path):
    program = "sit; move x=1.5"
    script = [*TOKENIZER.encode(program, add_special_tokens=False).ids, EOS_ID]
    assert len(set(script)) == len(script)
    start = TOKENIZER.encode(SUFFIX, add_special_tokens=False).ids[-1]
    path = bigram_decoder(
        tmp_path / "d.onnx", VOCAB, HEADS[head], script, start_id=start, caches=caches, noise=0.1
    )
    session = create_session(path, providers="cpu", threads=1)
    for io_binding in (False, True):
        generator = make_generator(session, head, caches, io_binding=io_binding)
        result = generator.generate("anything at all")
        assert result.text == program and result.stop_reason == STOP_EOS
        assert result.confidence > 0.99


def _reference_greedy(session, generator: Generator, text: str, limit: int) -> str:
    """Constrained greedy decoding WITHOUT a cache: the whole sequence through the graph at every step."""
    ids = generator.encode_prompt(text)
    constraint, state, out = generator.constraint, generator.constraint.initial, ""
    for _ in range(limit):
        if constraint.only_eos(state):
            break
        feed = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, len(ids)), np.int64),
            "position_ids": np.arange(len(ids), dtype=np.int64)[None],
        }
        for cache in generator.caches:
            for name in cache.input_names():
                feed[name] = np.zeros((1, cache.kv_heads, 0, cache.head_dim), np.float32)
        logits = session.run(["logits"], feed)[0][0]
        rows = constraint.allowed_rows(state)
        row = int(rows[np.argmax(logits[rows])])
        if row == constraint.eos_row:
            break
        state, out = constraint.advance(state, row), out + constraint.row_texts[row]
        ids.append(int(generator.row_token_ids[row]))
    return out


@pytest.fixture(scope="module")
def transformer_decoder(tmp_path_factory):
    tiny = pytest.importorskip("tiny_onnx_decoder")
    out = {}
    for head, ids in HEADS.items():
        spec = tiny.TinyDecoder(
            vocab=VOCAB, hidden=32, heads=2, layers=2, head_size=None if ids is None else len(ids)
        )
        path = tiny.build(spec, tmp_path_factory.mktemp(head) / "decoder.onnx")
        out[head] = (create_session(path, providers="cpu", threads=1), spec.caches)
    return out


TEXTS = ["walk forward two metres", "turn left", "what is the weather like", "sit", "dance twice then bark"]


@pytest.mark.parametrize("head", sorted(HEADS))
def test_kv_cache_decoding_equals_full_recomputation(head, transformer_decoder):
    session, caches = transformer_decoder[head]
    generator = make_generator(session, head, caches, max_new_tokens=24)
    for text in TEXTS:
        result = generator.generate(text)
        assert result.text == _reference_greedy(session, generator, text, 24)
        if result.complete:
            parse_program(result.text)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_configurations_agree_on_a_real_graph(head, transformer_decoder):
    session, caches = transformer_decoder[head]
    outputs = {}
    for io_binding in (False, True):
        for prefix_cache in (False, True):
            generator = make_generator(
                session, head, caches, io_binding=io_binding, prefix_cache=prefix_cache, max_new_tokens=24
            )
            outputs[io_binding, prefix_cache] = [generator.generate(t) for t in TEXTS]
            if not io_binding and prefix_cache:
                outputs["batch"] = generator.generate_batch(TEXTS)
    reference = outputs[False, False]
    for key, results in outputs.items():
        for got, want in zip(results, reference, strict=True):
            assert got.text == want.text, key
            assert got.token_logprobs == pytest.approx(want.token_logprobs, abs=1e-4), key


# -- a real exported graph (torch export of a tiny random Llama) ------------------------------------------------------


@pytest.fixture(scope="module")
def exported_llama(tmp_path_factory):
    """A tiny random Llama exported by the project's exporter, with both heads, and the torch model itself."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    graph = pytest.importorskip("shadow_edge.export.decoder_graph")
    convert = pytest.importorskip("shadow_edge.export.convert")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        max_position_embeddings=256,
        pad_token_id=EOS_ID,
        eos_token_id=EOS_ID,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    out = {}
    for head, ids in HEADS.items():
        decoder = graph.DetachedDecoder(model, head_token_ids=ids)
        info = convert.export_decoder_onnx(decoder, tmp_path_factory.mktemp(head) / "decoder.onnx")
        caches = [
            CacheSpec(**{k: c[k] for k in ("name", "layers", "kv_heads", "head_dim")}) for c in info["caches"]
        ]
        out[head] = (create_session(info["path"], providers="cpu", threads=1), caches)
    return model, out


def _torch_constrained_greedy(model, generator: Generator, text: str, limit: int) -> str:
    import torch

    ids = generator.encode_prompt(text)
    constraint, state, out = generator.constraint, generator.constraint.initial, ""
    row_ids = torch.as_tensor(generator.row_token_ids)
    for _ in range(limit):
        if constraint.only_eos(state):
            break
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1, row_ids].numpy()
        rows = constraint.allowed_rows(state)
        row = int(rows[np.argmax(logits[rows])])
        if row == constraint.eos_row:
            break
        state, out = constraint.advance(state, row), out + constraint.row_texts[row]
        ids.append(int(generator.row_token_ids[row]))
    return out


@pytest.mark.parametrize("head", sorted(HEADS))
def test_exported_graph_decodes_like_the_torch_model(head, exported_llama):
    model, sessions = exported_llama
    session, caches = sessions[head]
    generator = make_generator(session, head, caches, max_new_tokens=20)
    texts = [*TEXTS, "back up half a metre please", "走两米"]
    batch = generator.generate_batch(texts)
    for text, batched in zip(texts, batch, strict=True):
        result = generator.generate(text)
        assert result.text == _torch_constrained_greedy(model, generator, text, 20), text
        assert batched.text == result.text, text  # left padding through the real graph
