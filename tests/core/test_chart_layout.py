"""Chart layout in pixels: label thinning and token-bar plans beside a legend or not."""

from __future__ import annotations

import numpy as np
import pytest

from core.chart_layout import (
    BAR_AXIS_PX,
    LABEL_PX,
    LEGEND_PX,
    MIN_PLOT_PX,
    bar_plot_width,
    plan_axis,
    plan_token_bars,
)


@pytest.mark.parametrize(
    ("n", "length", "step"),
    [(10, 220, 1), (18, 220, 1), (19, 220, 2), (80, 260, 4), (512, 680, 10)],
)
def test_plan_axis_keeps_a_label_height_between_labels(n, length, step):
    plan = plan_axis(n, length)
    assert plan.step == step
    assert plan.values == list(range(0, n, step))
    assert length / n * plan.step >= LABEL_PX
    assert (plan.note == "") == (step == 1)
    if step > 1:
        assert f"{n} in {length} px" in plan.note


def test_token_bar_plan_keeps_the_selected_token_among_the_top():
    out = np.linspace(1, 0, 100)
    plan = plan_token_bars(out / out.sum(), None, 99, 360, legend=False, top_n=10)
    assert plan.orientation == "horizontal"
    assert len(plan.positions) == 10 and 99 in plan.positions
    assert plan.positions[:9] == list(range(9))
    assert "Top 10 of 100" in plan.note
    with pytest.raises(ValueError):
        plan_token_bars(out, None, None, 360, legend=False, top_n=0)


def test_bar_plot_leaves_the_legend_its_room():
    assert bar_plot_width(272, legend=True) == 272 - BAR_AXIS_PX - LEGEND_PX
    assert bar_plot_width(272, legend=False) == 272 - BAR_AXIS_PX
    assert bar_plot_width(100, legend=True) == MIN_PLOT_PX


@pytest.mark.parametrize("legend", [True, False])
def test_vertical_token_bars_keep_a_label_width_each_beside_the_legend(legend):
    # The Attention page's column: the most tokens that still get LABEL_PX each are vertical,
    # one more turns the bars horizontal, with or without the legend's room taken out.
    column = 272
    fits = bar_plot_width(column, legend=legend) // LABEL_PX
    flat = np.full(fits + 1, 1.0)
    assert plan_token_bars(flat[:fits], None, 0, column, legend=legend).orientation == "vertical"
    assert plan_token_bars(flat, None, 0, column, legend=legend).orientation == "horizontal"
    # A legend beside the bars costs the page's column 7 vertical labels.
    assert fits == (10 if legend else 17)
    with pytest.raises(ValueError):
        plan_token_bars(flat, None, 0, 0, legend=False)
