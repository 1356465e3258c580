"""shadow-bench: the runtime's measurement core, the weight-traffic count, and the CLI on a scripted export directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime_fakes import (
    scripted_export,
    split_rows,
    tiny_tokenizer,
)
from shadow_edge.bench import cli as bench_cli
from shadow_edge.bench import measure as bench
from shadow_edge.bench.weight_traffic import WeightReadError, read_graph, weight_traffic
from shadow_edge.runtime.actions import parse_program
from shadow_edge.runtime.arguments import unsaid_arguments
from shadow_edge.runtime.commander import Commander
from shadow_edge.runtime.stats import strided, summary
from shadow_edge.runtime.text_input import model_input

PROGRAM = "sit; move x=1"
SPEC_KEYS = {
    "model_dir",
    "precision",
    "mode",
    "command_latency_ms",
    "decode_ms_per_token",
    "ttft_ms",
    "peak_rss_mb",
    "bandwidth_bound_ratio",
    "against",
}
TESTS = Path(__file__).resolve().parent


def _export_dir(directory: Path, **extra) -> Path:
    return scripted_export(directory, PROGRAM, **extra)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _export_dir(tmp_path_factory.mktemp("bench") / "model")


@pytest.fixture(scope="module")
def texts():
    """Test-split commands whose numbers agree with the scripted program (others are held back, not measured)."""
    program = parse_program(PROGRAM)
    agree = [r["text"] for r in split_rows() if not unsaid_arguments(model_input(r["text"])[0], program)]
    return agree[:12]


# -- statistics ------------------------------------------------------------------------------------------------------


def test_summarize():
    s = summary([5.0, 1.0, 3.0, 2.0, 4.0, None])
    assert (s["median"], s["min"], s["max"], s["n"]) == (3.0, 1.0, 5.0, 5)
    assert s["median"] <= s["p90"] <= s["p99"] <= s["max"]
    assert summary([])["median"] is None and summary([])["n"] == 0


def test_speedup_is_reference_over_ours():
    assert bench.speedup(100.0, 8.0) == 12.5
    assert bench.speedup(None, 8.0) is None and bench.speedup(100.0, 0.0) is None


def test_memory_readings():
    peak, now = bench.peak_rss_mb(), bench.rss_mb()
    assert peak is not None and peak > 10
    if now is not None:  # Linux
        assert now <= peak
        block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
        assert bench.peak_rss_mb() >= now + 60
        del block


def test_copy_bandwidth_is_plausible():
    measured = bench.copy_bandwidth(megabytes=32, repeats=2)
    assert 0.1 < measured["copy_gb_per_s"] < 10_000  # GB/s
    with pytest.raises(ValueError):
        bench.copy_bandwidth(megabytes=0)


# -- weight bytes per token ------------------------------------------------------------------------------------------


def _onnx_nbytes(path: Path) -> dict[str, int]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).nbytes for t in model.graph.initializer}


def test_read_graph_matches_onnx(model_dir):
    path = model_dir / "decoder.onnx"
    nodes, inits = read_graph(path)
    model = onnx.load(str(path))
    assert [n.op_type for n in nodes] == [n.op_type for n in model.graph.node]
    assert [n.inputs for n in nodes] == [tuple(n.input) for n in model.graph.node]
    assert {i.name: i.nbytes for i in inits} == _onnx_nbytes(path)
    assert {i.name: i.dims for i in inits} == {t.name: tuple(t.dims) for t in model.graph.initializer}


def test_weight_traffic_counts_lookups_one_row(model_dir):
    path = model_dir / "decoder.onnx"
    sizes = _onnx_nbytes(path)
    shapes = {t.name: tuple(t.dims) for t in onnx.load(str(path)).graph.initializer}
    traffic = weight_traffic(path)
    gathered = ("bigram", "emb", "pos_emb")  # tables the fake decoder only looks up (Gather data)
    unused = {"axis_2"}  # an initializer no node reads
    expected = sum(sizes[n] // shapes[n][0] for n in gathered)
    expected += sum(v for n, v in sizes.items() if n not in gathered and n not in unused)
    assert traffic.per_token_bytes == expected
    assert traffic.lookup_table_bytes == sum(sizes[n] for n in gathered)
    assert traffic.stored_bytes == sum(sizes.values())


def test_weight_traffic_counts_stored_bytes_of_quantized_weights(tmp_path):
    """A MatMulNBits weight counts its uint8 blob, scales and zero points; INT4 initializers half a byte each;
    Constant-node tensors count like initializers."""
    n, k, block = 64, 128, 32
    blob = numpy_helper.from_array(np.zeros((n, k // block, block), np.uint8), "w_q")  # 8-bit blocks
    scales = numpy_helper.from_array(np.ones((n * k // block,), np.float32), "w_scales")
    int4 = helper.make_tensor(
        "w4", TensorProto.INT4, [k, n], np.zeros(k * n // 2, np.uint8).tobytes(), raw=True
    )
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [n], np.zeros(n, np.float32).tobytes(), raw=True)
    nodes = [
        helper.make_node(
            "MatMulNBits",
            ["x", "w_q", "w_scales"],
            ["y"],
            domain="com.microsoft",
            K=k,
            N=n,
            bits=8,
            block_size=32,
        ),
        helper.make_node("DequantizeLinear", ["w4", "s4"], ["w4f"]),
        helper.make_node("MatMul", ["x", "w4f"], ["y4"]),
        helper.make_node("Constant", [], ["b"], value=bias),
        helper.make_node("Add", ["y", "b"], ["yb"]),
        helper.make_node("Add", ["yb", "y4"], ["out"]),
    ]
    s4 = numpy_helper.from_array(np.array(0.1, np.float32), "s4")
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, n])],
        [blob, scales, int4, s4],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path / "q.onnx"
    onnx.save_model(model, str(path))
    traffic = weight_traffic(path)
    assert traffic.per_token_bytes == n * k + 4 * n * k // block + k * n // 2 + 4 + 4 * n
    assert traffic.by_dtype["uint8"] == n * k and traffic.by_dtype["int4"] == k * n // 2
    assert traffic.lookup_table_bytes == 0


def test_weight_traffic_external_data(tmp_path):
    weight = numpy_helper.from_array(np.ones((256, 256), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [weight],
    )
    path = tmp_path / "ext.onnx"
    onnx.save_model(helper.make_model(graph), str(path), save_as_external_data=True, size_threshold=0)
    assert weight_traffic(path).per_token_bytes == 256 * 256 * 4


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all \xff\xff\xff\xff", None])
def test_weight_traffic_bad_files(tmp_path, model_dir, content):
    path = tmp_path / "bad.onnx"
    if content is None:  # truncated real model
        path.write_bytes((model_dir / "decoder.onnx").read_bytes()[:1000])
    else:
        path.write_bytes(content)
    with pytest.raises(WeightReadError, match="bad.onnx"):
        weight_traffic(path)
    with pytest.raises(WeightReadError, match="cannot open"):
        weight_traffic(tmp_path / "missing.onnx")


# -- measuring a model -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured(model_dir, texts):
    commander = Commander(model_dir, threads=1)
    samples = bench.measure_commands(commander, texts, warmup=2)
    report = bench.runtime_report(
        commander,
        samples,
        peak_rss=bench.peak_rss_mb(),
        bandwidth=bench.copy_bandwidth(megabytes=32, repeats=2),
        warmup=2,
    )
    return commander, samples, report


def test_measure_commands(measured, texts):
    _, samples, _ = measured
    assert [s.text for s in samples] == texts
    for s in samples:
        assert s.program == PROGRAM and s.route == "robot" and s.accepted and s.error is None
        assert s.new_tokens == len(tiny_tokenizer().encode(PROGRAM, add_special_tokens=False).ids)
        # one decoder call per token after the first, and one more for the end-of-sequence decision ("1.5" could
        # go on as "1.55")
        assert len(s.step_ms) == s.new_tokens
        assert s.latency_ms > 0 and s.ttft_ms > 0 and all(ms > 0 for ms in s.step_ms)


def test_runtime_report_fields_and_sanity(measured, model_dir, texts):
    commander, samples, report = measured
    assert set(report) >= SPEC_KEYS
    assert (report["model_dir"], report["precision"], report["mode"]) == (str(model_dir), "fp32", "detached")
    for key in ("command_latency_ms", "decode_ms_per_token", "ttft_ms"):
        s = report[key]
        assert 0 < s["median"] <= s["p90"] <= s["max"], key
    assert report["command_latency_ms"]["n"] == len(texts)
    assert report["decode_ms_per_token"]["n"] == sum(len(s.step_ms) for s in samples)
    assert report["command_latency_ms"]["median"] == pytest.approx(
        np.median([s.latency_ms for s in samples]), abs=1e-3
    )
    assert report["peak_rss_mb"] > 0 and report["threads"] == 1
    assert report["weights"]["per_token_bytes"] == weight_traffic(model_dir / "decoder.onnx").per_token_bytes
    bound = report["weights"]["per_token_bytes"] / (report["memory_bandwidth"]["copy_gb_per_s"] * 1e9) * 1e3
    assert report["bandwidth_bound_ms_per_token"] == pytest.approx(bound, rel=1e-3)
    assert report["bandwidth_bound_ratio"] == pytest.approx(
        report["decode_ms_per_token"]["median"] / bound, rel=2e-3
    )
    assert report["bandwidth_bound_ratio"] > 0
    assert report["routes"] == {"robot": len(texts)} and report["accepted"] == len(texts)
    json.dumps(report)  # serialisable as is


def test_add_reference_speedup_and_agreement(measured):
    _, samples, report = measured
    report = json.loads(json.dumps(report))
    ours = report["command_latency_ms"]["median"]
    reference = {
        "implementation": "scripted",
        "latencies_ms": [10 * ours, 12 * ours, 11 * ours, 30 * ours],
        "ttft_ms": [1.0, 2.0, 3.0, 4.0],
        "new_tokens": [8, 8, 8, 8],
        "programs": [PROGRAM, PROGRAM, "sit", PROGRAM],
        "decode_step_ms": [2.0, 4.0, 3.0],
    }
    entry = bench.add_reference(report, "torch", reference, our_programs=[PROGRAM] * 4)
    assert report["against"]["torch"] is entry
    assert entry["command_latency_ms"]["median"] == pytest.approx(11.5 * ours, rel=1e-3)
    assert entry["command_latency_ms"]["p90"] >= entry["command_latency_ms"]["median"]
    assert entry["speedup"] == pytest.approx(entry["command_latency_ms"]["median"] / ours, rel=1e-3)
    assert entry["decode_ms_per_token"]["median"] == 3.0 and entry["ttft_ms"]["median"] == 2.5
    assert entry["program_agreement"] == 0.75 and entry["implementation"] == "scripted"
    assert "latencies_ms" not in entry and "programs" not in entry
    with pytest.raises(bench.BenchError):
        bench.add_reference(report, "optimum", {"latencies_ms": []})


def test_stream_check(measured, texts):
    commander, _, _ = measured
    stream = bench.stream_check(commander, texts, commands=60, samples=6)
    assert stream["commands"] == 60 and stream["command_latency_ms"]["n"] == 60
    if stream["rss_mb"] is not None:  # Linux
        assert len(stream["rss_mb"]) == 6
        assert stream["growth_mb"] == pytest.approx(stream["rss_mb"][-1] - stream["rss_mb"][0], abs=0.02)
        assert stream["grows"] is False  # decoding keeps nothing per command
    with pytest.raises(ValueError):
        bench.stream_check(commander, texts, commands=3, samples=6)


def test_every_command_failing_is_an_error(model_dir, texts):
    commander = Commander(model_dir, threads=1)

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    commander.generator.session.run = broken
    with pytest.raises(bench.BenchError, match="every command failed"):
        bench.measure_commands(commander, texts[:3], warmup=0)


# -- the command line ------------------------------------------------------------------------------------------------


def run_cli(capsys, *args):
    code = bench_cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_json_report_and_plot(model_dir, tmp_path, capsys):
    out = tmp_path / "reports" / "bench.json"
    code, stdout, err = run_cli(
        capsys,
        model_dir,
        "--json",
        "--commands",
        8,
        "--warmup",
        1,
        "--threads",
        1,
        "--out",
        out,
        "--bandwidth-mb",
        16,
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert set(report) >= SPEC_KEYS and report["against"] == {}
    assert report["command_latency_ms"]["n"] == 8 and report["commands_source"] == "robot-dog test split"
    assert report["command_latency_ms"]["p90"] >= report["command_latency_ms"]["median"] > 0
    assert "samples" not in report  # kept in the file only
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert len(saved["samples"]["command_latency_ms"]) == 8
    assert saved["command_latency_ms"] == report["command_latency_ms"]
    pytest.importorskip("matplotlib")
    assert report["plot"] == str(out.with_suffix(".png"))
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_default_output_next_to_model_dir(tmp_path, capsys):
    model = _export_dir(tmp_path / "robot")
    lines = [json.dumps({"text": r["text"]}) for r in split_rows(3)]
    commands = tmp_path / "cmds.jsonl"
    commands.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, stdout, err = run_cli(
        capsys,
        model,
        "--commands-file",
        commands,
        "--warmup",
        0,
        "--no-plot",
        "--bandwidth-mb",
        16,
        "--stream",
        12,
    )
    assert code == 0, err
    assert stdout == ""  # no --json: nothing on stdout
    report = json.loads((tmp_path / "bench-robot.json").read_text(encoding="utf-8"))
    assert report["command_latency_ms"]["n"] == 3 and report["commands_source"] == str(commands)
    assert report["stream"]["commands"] == 12 and report["plot"] is None
    assert not (tmp_path / "bench-robot.png").exists()


@pytest.fixture
def fake_references(tmp_path, monkeypatch):
    """An adapter directory and `tests/fake_bench_reference.py` standing in for the reference module."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(bench_cli, "REFERENCE_MODULE", "fake_bench_reference")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), *sys.path]))
    return adapter


def test_cli_reference_plumbing(tmp_path, capsys, fake_references):
    """--against runs each reference in its own process, in rounds taken in turns, and reports speed-up =
    reference median / ours and program agreement."""
    adapter = fake_references
    model = _export_dir(tmp_path / "model", source={"base": None, "adapter": str(adapter)})
    out = tmp_path / "b.json"
    code, stdout, err = run_cli(
        capsys, model, "--against", "torch,optimum", "--json", "--commands", 5, "--round-size", 2, "--warmup", 3,
        "--no-plot", "--out", out, "--bandwidth-mb", 16,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["command_latency_ms"]["n"] == 5
    for name in ("torch", "optimum"):
        entry = report["against"][name]
        assert entry["command_latency_ms"]["median"] == 500.0  # what the fake reference "measured"
        assert entry["command_latency_ms"]["n"] == 5  # 3 rounds: 2 + 2 + 1 commands
        assert entry["speedup"] == pytest.approx(500.0 / report["command_latency_ms"]["median"], rel=1e-3)
        assert entry["decode_ms_per_token"]["n"] == 30 and entry["ttft_ms"]["median"] == 100.0
        assert entry["program_agreement"] == 1.0 and entry["received_adapter"] == str(adapter)
        assert entry["peak_rss_mb"] == 30.0  # the last round's report
        assert entry["warmup_seen"] == [3, 0, 0]  # warm-up in the first round only
    assert report["reference_source"] == {"base": None, "adapter": str(adapter)}
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["samples"]["torch_command_latency_ms"] == [500.0] * 5


@pytest.mark.parametrize(
    ("fail", "why"),
    [
        ("load", "injected load failure"),
        ("measure", "injected measurement failure"),
        ("crash", "segfault (fake)"),
    ],
)
def test_cli_reference_failure_is_reported(tmp_path, capsys, monkeypatch, fake_references, fail, why):
    model = _export_dir(tmp_path / "model")
    monkeypatch.setenv("FAKE_REFERENCE_FAIL", fail)
    out = tmp_path / "b.json"
    code, stdout, err = run_cli(
        capsys, model, "--adapter", fake_references, "--against", "optimum", "--commands", 4, "--round-size", 2,
        "--warmup", 0, "--no-plot", "--out", out, "--bandwidth-mb", 16,
    )  # fmt: skip
    assert code == 1
    assert f"the optimum reference failed: {why}" in err and "Traceback" not in err
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["against"]["optimum"] == {"error": f"the optimum reference failed: {why}"}
    assert report["command_latency_ms"]["n"] == 4  # our own numbers still stand


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "MODEL_DIR"),
        (["{model}", "--against", "torch"], "does not say which adapter"),
        (["{model}", "--against", "torch", "--adapter", "{missing}"], "no adapter_config.json"),
        (["{model}", "--commands-file", "{missing}"], "cannot read it"),
        (["{notjson}"], "cannot run the model in MODEL_DIR"),
        (["{attached}", "--against", "optimum"], "mode=attached, but the references"),
    ],
)
def test_cli_errors_are_clear(model_dir, tmp_path, capsys, args, message):
    notjson = tmp_path / "notjson"
    notjson.mkdir()
    (notjson / "manifest.json").write_text("{oops", encoding="utf-8")
    attached = _export_dir(tmp_path / "attached", mode="attached")
    paths = {"missing": tmp_path / "nope", "model": model_dir, "notjson": notjson, "attached": attached}
    code, stdout, err = run_cli(capsys, *[a.format(**paths) for a in args], "--out", tmp_path / "r.json")
    assert code == 2  # bad input: nothing was measured
    assert message in err and "Traceback" not in err and stdout == ""
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "args",
    [["--against", "tensorflow"], ["--against", "torch,,nope"], ["--commands", "-2"], ["--stream", "5"]],
)
def test_cli_usage_errors(model_dir, capsys, args):
    with pytest.raises(SystemExit) as info:
        bench_cli.main([str(model_dir), *args])
    assert info.value.code == 2
    assert "shadow-bench: error:" in capsys.readouterr().err


def test_spread_covers_the_split():
    texts = [str(i) for i in range(100)]
    assert strided(texts, 10) == [str(i) for i in range(0, 100, 10)]
    assert strided(texts, 0) == texts and strided(texts, 500) == texts


def test_cli_starts_the_bench_packages_own_helpers():
    """References and the plot run in their own processes from this package, never from the exporter's."""
    from importlib.util import find_spec

    for module in (bench_cli.REFERENCE_MODULE, bench_cli.PLOT_MODULE):
        assert module.startswith("shadow_edge.bench.") and find_spec(module) is not None
    command = bench_cli.reference_command(
        "torch", {"adapter": "a", "base": None}, max_new_tokens=8, threads=1, cache_dir=Path("c")
    )
    assert command[1:3] == ["-m", "shadow_edge.bench.references"]
