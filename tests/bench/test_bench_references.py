"""shadow-bench's reference implementations on the real bundled model (slow: loads SmolLM2 and exports with optimum)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "robot-dog-shadow"
TEXTS = ["sit down", "walk forward two meters then turn left", "往前走一米"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    pytest.importorskip("peft")
    pytest.importorskip("optimum.onnxruntime")
    if not (ADAPTER / "adapter_config.json").is_file():
        pytest.skip("the bundled adapter is not there")
    from shadow_edge.bench.references import run_reference
    from shadow_edge.export.base_model import BaseModelError, default_base_gguf

    try:
        default_base_gguf()
    except BaseModelError as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("bench-cache")
    return {
        name: run_reference(name, TEXTS, adapter=str(ADAPTER), warmup=1, threads=1, cache_dir=cache)
        for name in ("torch", "optimum", "optimum-int8")
    }


@pytest.mark.parametrize("name", ["torch", "optimum", "optimum-int8"])
def test_reference_measurements(references, name):
    result = references[name]
    assert len(result["latencies_ms"]) == len(result["ttft_ms"]) == len(result["programs"]) == len(TEXTS)
    for latency, first, new in zip(
        result["latencies_ms"], result["ttft_ms"], result["new_tokens"], strict=True
    ):
        assert 0 < first <= latency and 1 <= new <= result["max_new_tokens"]
    # one stamp per generated token: the gaps are the decode steps
    assert len(result["decode_step_ms"]) == sum(n - 1 for n in result["new_tokens"])
    assert all(ms > 0 for ms in result["decode_step_ms"])
    assert result["threads"] == 1 and result["peak_rss_mb"] > 0
    assert result["precision"] == ("int8" if name == "optimum-int8" else "fp32")


def test_torch_and_optimum_write_the_same_programs(references):
    """Both run the same FP32 detached shadow greedily (float rounding may flip a near tie, hence not all)."""
    pairs = zip(references["torch"]["programs"], references["optimum"]["programs"], strict=True)
    assert sum(a == b for a, b in pairs) >= len(TEXTS) - 1
