"""Vega-Lite chart builders for attention data.

Pure functions: numpy arrays and label lists in, charts out. Most return Altair charts; the
attention heatmap, which the Attention page redraws on every change of layer, head or token,
returns its Vega-Lite spec as a plain dict (`Spec`), built without Altair's object model. No
Streamlit here; the pages render both kinds with ``ui.widgets.show_chart``.

Conventions shared by every builder:

* Layout: a builder given ``column_width`` (px of the page column) sizes itself to fit it,
  labels every token that has `core.chart_layout.LABEL_PX` px, thins the rest evenly, and says
  so in its subtitle; :func:`chart_notes` returns those notes for a caption. Colour (and bar
  length) scales are ``scale="chart" | "shared" | "fixed"`` (see `core.scales`), named in
  the legend or axis title.

* Tokens are identified by integer position, never by their text, so duplicate tokens stay
  apart. Per-cell data holds only numbers; the token texts travel once per chart as the value
  of a variable parameter (a JSON array of strings named ``tok_<hash>``) that axis
  ``labelExpr`` and tooltip ``calculate`` transforms index with a position. Token text is
  therefore data, never spliced into a Vega expression, so HTML, quotes or ``${...}`` in
  user-typed tokens are shown literally.
* Values are rounded to 5 significant digits (float64, so the JSON is short and exact-looking);
  tooltips show 4 decimals.
* No colours for text or backgrounds are fixed: marks use Vega schemes or the theme's colours
  so the charts read in light and dark themes.
* Data frames are passed to Altair as-is, so inside Streamlit they travel as typed Arrow tables.
  Altair's default data transformer refuses more than 5000 rows, so outside Streamlit (tests,
  exports) serialise with :func:`spec_dict`.
"""

from core.charts._common import Spec, chart_notes, round_sig, spec_dict
from core.charts.bars import attention_bars, prediction_bars
from core.charts.corpus import global_view_chart
from core.charts.graph import contribution_graph_chart, graph_layout
from core.charts.grid import head_grid, largest_thumbnail
from core.charts.heatmaps import attention_heatmap, causal_mask, layer_head_profile
from core.charts.lens import logit_lens_chart
from core.charts.lines import head_view_lines, prune_edges
from core.charts.neuron import neuron_view_chart

__all__ = [
    "Spec",
    "attention_bars",
    "attention_heatmap",
    "causal_mask",
    "chart_notes",
    "contribution_graph_chart",
    "global_view_chart",
    "graph_layout",
    "head_grid",
    "head_view_lines",
    "largest_thumbnail",
    "layer_head_profile",
    "logit_lens_chart",
    "neuron_view_chart",
    "prediction_bars",
    "prune_edges",
    "round_sig",
    "spec_dict",
]
