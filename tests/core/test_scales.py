"""Colour scales: shared maxima, domains and titles per scale mode."""

from __future__ import annotations

import numpy as np
import pytest

from core.scales import (
    LOG_DECADES,
    log_domain,
    scale_caption,
    scale_title,
    shared_max,
    value_domain,
)


def test_shared_max_ignores_nan_and_takes_magnitudes_when_asked():
    a = np.array([[0.2, np.nan], [0.1, 0.05]])
    b = np.array([-0.7, 0.3])
    assert shared_max([a, b]) == 0.3
    assert shared_max([a, b], absolute=True) == 0.7
    assert shared_max([np.zeros(3), np.full(2, np.nan)]) == 1.0  # never an empty domain


def test_value_domain_per_mode():
    values = np.array([0.0, 0.12, 0.4])
    assert value_domain(values, "chart") == (0.0, 0.4)
    assert value_domain(values, "shared", shared=0.9) == (0.0, 0.9)
    assert value_domain(values, "fixed") == (0.0, 1.0)
    assert value_domain(np.array([-0.2, 0.1]), "chart", diverging=True) == (-0.2, 0.2)
    with pytest.raises(ValueError, match="shared_max"):
        value_domain(values, "shared", shared=0.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        value_domain(values, "own")  # type: ignore[arg-type]


def test_titles_say_which_scale():
    assert scale_title("attention", "fixed", (0.0, 1.0)) == ["attention", "0–1 fixed"]
    assert scale_title("attention", "shared", (0.0, 0.0834)) == ["attention", "0–0.083 shared"]
    assert scale_title("change", "chart", (-0.25, 0.25), diverging=True) == [
        "change",
        "±0.25 this chart",
    ]
    assert scale_caption("attention", "fixed", (0.0, 1.0)) == "attention (0–1 fixed)"


def test_a_log_scale_spans_three_decades_below_the_top_and_says_so():
    assert LOG_DECADES == 3
    assert log_domain((0.0, 0.5)) == pytest.approx((0.0005, 0.5))
    assert log_domain((0.0, 1.0), decades=2) == pytest.approx((0.01, 1.0))
    with pytest.raises(ValueError, match="positive top"):
        log_domain((0.0, 0.0))
    assert scale_title("attention", "fixed", log_domain((0.0, 1.0)), log=True) == [
        "attention",
        "≤0.001–1 fixed",
        "log scale, 3 decades",
    ]
    # Signed data has no log scale: the title stays the linear one.
    assert scale_title("change", "chart", (-0.25, 0.25), diverging=True, log=True) == [
        "change",
        "±0.25 this chart",
    ]
