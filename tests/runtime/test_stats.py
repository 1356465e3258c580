"""The shared statistics helpers: numpy's percentiles, one summary shape, an evenly spread subset."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadow_edge.runtime.digest import file_sha256, files_sha256
from shadow_edge.runtime.stats import SUMMARY_KEYS, percentile, strided, summary

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(deadline=None)  # no wall-clock limit: the machine may be loaded
@given(st.lists(finite, min_size=1, max_size=50), st.floats(min_value=0, max_value=100))
def test_percentile_is_numpys(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_empty_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_figures_and_none_entries():
    s = summary([5.0, 1.0, 3.0, 2.0, 4.0, None])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["p90"] == pytest.approx(4.6) and s["mean"] == 3.0
    assert tuple(s) == SUMMARY_KEYS


def test_summary_of_nothing_keeps_the_keys():
    s = summary([])
    assert s["n"] == 0 and all(s[k] is None for k in SUMMARY_KEYS if k != "n")


def test_strided_spreads_evenly():
    items = list(range(10))
    assert strided(items, 5) == [0, 2, 4, 6, 8]
    assert strided(items, 3) == [0, 3, 6]
    assert strided(items, None) == items and strided(items, 0) == items and strided(items, 20) == items


@settings(deadline=None)
@given(st.lists(st.integers(), min_size=1, max_size=200), st.integers(min_value=1, max_value=300))
def test_strided_length_and_order(items, n):
    picked = strided(items, n)
    assert len(picked) == min(n, len(items))
    remaining = iter(items)
    assert all(any(x == y for y in remaining) for x in picked)  # an ordered subsequence
    assert picked[0] == items[0]


def test_file_digests(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"y")
    import hashlib

    assert file_sha256(a, chunk=1000) == hashlib.sha256(a.read_bytes()).hexdigest()
    together = files_sha256([a, b])
    assert together != files_sha256([b, a])
    (tmp_path / "c.bin").write_bytes(b"x" * 3_000_000)
    assert files_sha256([tmp_path / "c.bin", b]) != together  # the name counts
