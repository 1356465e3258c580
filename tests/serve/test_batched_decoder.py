"""Continuous batching (runtime/batched.py): same results as one command at a time, shared decode steps, faults
that stay local, and the BatchingCommander behind the server."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from runtime_fakes import (
    EOS_ID,
    PREFIX,
    SUFFIX,
    ScriptedSession,
    bigram_decoder,
    tiny_tokenizer,
    write_export_dir,
)
from shadow_edge.runtime.batched import BatchedDecoder, BatchingCommander, DecoderClosed
from shadow_edge.runtime.commander import Commander
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.generate import STOP_MAX_TOKENS, GenerationError, Generator
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary

GRAMMAR = ProgramGrammar()
TOKENIZER = tiny_tokenizer()
ACTION_IDS = action_vocabulary(TOKENIZER, EOS_ID, grammar=GRAMMAR)
CONSTRAINT = TokenConstraint.for_head(GRAMMAR, TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS))
ANSWERS = {
    "walk two metres": "move x=2",
    "sit, then bark twice and turn right": "sit; bark n=2; turn deg=-90",
    "back up half a metre": ("move x=-0.5", 1.0),
    "what is two plus two": "remote",
    "jump off the roof": "reject",
    "sit": "sit",
}
TEXTS = [*ANSWERS, "something unknown"]
PROGRAMS = {t: (a[0] if isinstance(a, tuple) else a) for t, a in ANSWERS.items()}
TIMING_FIELDS = {"prefill_ms", "step_ms", "total_ms"}


def make_generator(session, **kwargs) -> Generator:
    return Generator(
        session, TOKENIZER, session.caches, CONSTRAINT, ACTION_IDS, PREFIX, SUFFIX, EOS_ID, **kwargs
    )


def same_result(batched, single) -> None:
    """Every field of GenerationResult but the timings (new fields are compared too)."""
    for f in dataclasses.fields(single):
        if f.name in TIMING_FIELDS:
            continue
        a, b = getattr(batched, f.name), getattr(single, f.name)
        if f.name == "token_logprobs":
            assert a == pytest.approx(b, abs=1e-5)
        else:
            assert a == b, f.name


class GatedSession(ScriptedSession):
    """Holds its first decoder call after the prefix until `gate` is set, so that the test can queue commands."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def run(self, output_names, feed):
        if self.calls >= 1 and not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(10)
        return super().run(output_names, feed)


@pytest.mark.parametrize("max_batch", [1, 3, 16])
def test_concurrent_results_equal_one_at_a_time(max_batch):
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    singles = {t: generator.generate(t) for t in TEXTS}
    texts = TEXTS * 4
    with BatchedDecoder(generator, max_batch=max_batch) as decoder, ThreadPoolExecutor(12) as pool:
        results = list(pool.map(decoder.generate, texts))
    for text, result in zip(texts, results, strict=True):
        same_result(result, singles[text])
        assert result.prompt_tokens == len(generator.encode_prompt(text))
        assert len(result.step_ms) == len(singles[text].step_ms) and result.total_ms > 0


def test_waiting_commands_share_decode_steps():
    session = GatedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    sizes: list[int] = []
    texts = TEXTS[:6]
    with BatchedDecoder(generator, max_batch=8, on_step=sizes.append) as decoder:
        first = decoder.submit(texts[0])
        assert session.entered.wait(10)  # the first command is in its prefill: the rest queue up
        rest = [decoder.submit(t) for t in texts[1:]]
        calls_before = session.calls
        session.gate.set()
        results = [first.result(10), *(f.result(10) for f in rest)]
    batched_calls = session.calls - calls_before + 1
    assert [r.text for r in results] == [PROGRAMS[t] for t in texts]
    assert max(sizes) >= 3  # waiting commands of similar length were prefilled together and decoded together
    sequential = sum(len(r.step_ms) + 1 for r in results)  # prefill + steps, one command at a time
    # one at a time would make `sequential` calls; the five (of five different lengths) prefill one by one
    assert batched_calls < 0.75 * sequential


class CountingSession(GatedSession):
    """Records every prefill call (more than one new token per row): rows, tokens computed, real tokens."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prefills: list[tuple[int, int, int]] = []

    def run(self, output_names, feed):
        ids, mask = feed["input_ids"], feed["attention_mask"]
        if ids.shape[1] > 1:
            self.prefills.append((ids.shape[0], ids.size, int(mask[:, -ids.shape[1] :].sum())))
        return super().run(output_names, feed)


def test_prefill_calls_group_commands_of_the_same_length_without_padding():
    long_text = "please walk forward two metres, then sit down, then bark twice and turn right slowly"
    answers = {**ANSWERS, long_text: "move x=2; sit; bark n=2; turn deg=-90"}
    session = CountingSession(TOKENIZER, answers, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    texts = ["sit", "walk two metres", long_text, "sit", "jump off the roof", "walk two metres", "sit"]
    session.gate.set()
    singles = {t: generator.generate(t) for t in texts}
    session.gate.clear()  # the next call waits at the gate
    session.prefills = []
    with BatchedDecoder(generator, max_batch=8) as decoder:
        first = decoder.submit("back up half a metre")
        assert session.entered.wait(10)
        futures = [decoder.submit(t) for t in texts]
        session.gate.set()
        first.result(10)
        results = [f.result(10) for f in futures]
    for text, result in zip(texts, results, strict=True):
        same_result(result, singles[text])
    joined = session.prefills[1:]  # after the first command's own prefill
    assert sum(rows for rows, _, _ in joined) == len(texts)
    assert len(joined) == len(set(texts))  # commands of the same length shared a call
    assert all(computed == real for _, computed, real in joined)  # nothing was padded


def test_a_long_command_does_not_hold_up_a_short_one():
    session = GatedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    long_text = "sit, then bark twice and turn right"
    finished: list[str] = []
    with BatchedDecoder(generator, max_batch=4) as decoder:
        long = decoder.submit(long_text)
        long.add_done_callback(lambda _: finished.append("long"))
        assert session.entered.wait(10)
        short = decoder.submit("walk two metres")
        short.add_done_callback(lambda _: finished.append("short"))
        session.gate.set()
        assert short.result(10).text == "move x=2"
        assert long.result(10).text == ANSWERS[long_text]
    assert finished == ["short", "long"]  # it joined the running batch and left it when done


def test_max_new_tokens_matches_the_generator():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session, max_new_tokens=3)
    text = "sit, then bark twice and turn right"
    single = generator.generate(text)
    with BatchedDecoder(generator, max_batch=4) as decoder:
        batched = decoder.generate(text)
        short = decoder.generate("sit", max_new_tokens=1)
    assert batched.stop_reason == STOP_MAX_TOKENS
    same_result(batched, single)
    assert short.new_tokens == 1
    with pytest.raises(ValueError):
        BatchedDecoder(generator, max_batch=0)


@pytest.mark.parametrize("fault", ["raise", "nan"])
def test_decoder_faults_fail_the_commands_and_decoding_goes_on(fault):
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    with BatchedDecoder(generator, max_batch=4) as decoder:
        if fault == "raise":
            session.fail_at = session.calls + 2  # the prefill passes, the first decode step fails
            match = "decode step"
        else:
            session.nan_at = session.calls + 1
            match = "non-finite"
        with pytest.raises(GenerationError, match=match):
            decoder.generate("walk two metres")
        session.fail_at = session.nan_at = None
        assert decoder.generate("walk two metres").text == "move x=2"


def test_close_refuses_new_commands():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    decoder = BatchedDecoder(make_generator(session))
    assert decoder.generate("sit").text == "sit"
    decoder.close()
    with pytest.raises(DecoderClosed):
        decoder.submit("sit")


def test_io_binding_generators_are_refused():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    generator.io_binding = True
    with pytest.raises(ValueError, match="io_binding"):
        BatchedDecoder(generator)


def test_batching_commander_gives_the_commander_results():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    plain = Commander.from_generator(generator)
    expected = {t: plain.run(t).to_json() for t in TEXTS}
    commander = BatchingCommander.from_generator(generator, max_batch=4)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(commander.run, TEXTS * 3))
    finally:
        commander.close()
    for result in results:
        got, want = result.to_json(), dict(expected[result.text])
        for key in ("latency_ms", "timings_ms"):
            got.pop(key), want.pop(key)
        assert got == want


def test_a_graph_whose_rows_interact_is_never_batched():
    session = ScriptedSession(TOKENIZER, ANSWERS, head_token_ids=ACTION_IDS)
    generator = make_generator(session)
    generator.rows_independent = False  # as Generator.from_manifest sets it for a dynamic INT8 export
    commander = BatchingCommander.from_generator(generator, max_batch=4)
    try:
        assert commander.batcher.max_batch == 1 and commander.info()["max_batch"] == 1
        assert commander.run(TEXTS[0]).program == Commander.from_generator(generator).run(TEXTS[0]).program
    finally:
        commander.close()


def test_batching_commander_on_an_onnx_export_with_a_cache_dependent_decoder(tmp_path):
    """A real onnxruntime session whose logits depend on the whole masked cache: left padding and merged rows must
    give the programs of one command at a time."""
    program = "sit; move x=1.5"
    script = [*TOKENIZER.encode(program, add_special_tokens=False).ids, EOS_ID]
    start = TOKENIZER.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = TOKENIZER.get_vocab_size(with_added_tokens=True)
    model_dir = write_export_dir(
        tmp_path / "model",
        TOKENIZER,
        ACTION_IDS,
        lambda path: bigram_decoder(path, vocab, ACTION_IDS, script, start_id=start, noise=0.05),
    )
    plain = Commander(model_dir, threads=1)
    texts = ["sit down then walk", "go", "a much longer command with many more words in it", "walk"] * 3
    expected = {t: plain.run(t) for t in texts}
    commander = BatchingCommander(model_dir, threads=1, max_batch=8)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(commander.run, texts))
    finally:
        commander.close()
    for result in results:
        want = expected[result.text]
        assert (result.program, result.route, result.accepted) == (want.program, want.route, want.accepted)
        assert result.confidence == pytest.approx(want.confidence, abs=1e-4)
    assert np.isfinite([r.latency_ms for r in results]).all()
