"""databuild.bench.stats: percentiles and summaries."""

from __future__ import annotations

import pytest

from databuild.bench.stats import Summary, percentile, ratio


def test_percentile_interpolates_like_numpy() -> None:
    samples = [1.0, 2.0, 3.0, 4.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 99) == pytest.approx(3.97)
    assert percentile([5.0], 99) == 5.0


def test_percentile_does_not_need_sorted_input() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_summary() -> None:
    s = Summary.of([0.1 * i for i in range(1, 101)])
    assert s.count == 100
    assert s.p50 == pytest.approx(5.05)
    assert s.p99 == pytest.approx(9.901)
    assert (s.min, s.max) == (pytest.approx(0.1), pytest.approx(10.0))
    assert s.mean == pytest.approx(5.05)
    with pytest.raises(ValueError):
        Summary.of([])


def test_ratio_is_none_without_a_usable_denominator() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
