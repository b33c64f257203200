"""Controls and panels of the attention views: stack, layer/head/method/token, line view,
token bars, neuron view and exports. Each reads the registry or `core.layer_views` for what it
shows; none keeps a result beyond the run."""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable

import numpy as np
import streamlit as st

import core
from core import charts
from core.display_matrix import DisplayMatrix
from core.families import CROSS, SELF
from core.layer_views import layer_view, token_bars
from core.methods import MethodResult
from core.neuron import strongest_keys
from core.scales import ScaleMode
from core.selection import segment_b_start
from core.tokens import is_continuation
from ui import cache, exports, session
from ui.explorer import build_payload, change_in_callback, explorer, model_max
from ui.explorer.payload import outside_window
from ui.head_view import head_view
from ui.head_view.component import NOT_CLICKED, clicked_in_callback
from ui.layout import COLUMN_PX
from ui.page import Page
from ui.state import HEADS, MAX_EDGES, MAX_THRESHOLD
from ui.text import plain
from ui.widgets import bound, export_buttons, label_from, show_chart, show_error

LONG_INPUT = 80
"""Inputs with more display units than this get fewer line-view edges by default."""
HEAD_LABELS = {"mean": "mean of heads", "all": "all heads (lines)"}
HEAD_VIEW_HEIGHT = 640
"""px the head view of a long input is capped at (it scrolls)."""
UNFOCUSED_KEY = "atlas_head_view_unfocused"
"""Session: the token whose focus the visitor cleared in the head view (a second click or
Escape): the line view then draws every line until another token is selected. Otherwise it
opens on the selected token's lines, from a click, a control or a link alike."""
EXPLORER_KEY = "explorer"
HEADS_LATER_CELLS = 1_000_000
"""A layer of at least this many cells (every head and the mean: 278 tokens at 13 matrices)
sends its shown matrix first and the codes after the page (`ui.explorer.explorer`); a smaller
one travels in one message (at 128 tokens 0.25 MB, where a second message cost a
control-started run 30–50 ms: bench/RESULTS.md)."""
SCALE_NAMES = {"shared": "shared across the model's heads and layers", "fixed": "fixed scale"}
"""What the line view's full opacity is, per colour scale (`scale_top`)."""


def stack_selector(page: Page) -> str:
    """Encoder / Decoder / Cross control for models with several stacks; the stack shown."""
    result = page.result
    if len(result.stacks) < 2:
        return SELF
    labels = {name: result.stack_spec(name).label for name in result.stacks}
    choice = bound(
        st.segmented_control,
        "Attention stack",
        "stack",
        options=list(result.stacks),
        format_func=label_from(labels),
        required=True,
        help="Encoder-decoder models attend three ways: within the source (encoder), within "
        "the target (decoder) and from the target to the source (cross).",
    )
    st.caption(result.stack_spec(choice).description)
    return choice


def unavailable_note(page: Page, stack: str) -> str | None:
    """One line saying which of the registry's methods are not offered for `stack`, and why
    (methods sharing a reason share its clause); None when every method is offered."""
    spec = page.result.stack_spec(stack)
    by_reason: dict[str, list[str]] = {}
    for method in map(core.get_method, core.method_names()):
        why = method.why_unavailable(page.model, spec)
        if why is not None:
            by_reason.setdefault(why, []).append(method.label)
    if not by_reason:
        return None
    clauses = [
        f"{_listed(labels)} {'is' if len(labels) == 1 else 'are'} not offered for "
        f"{spec.label.lower()} attention: {why}"
        for why, labels in by_reason.items()
    ]
    return " ".join(clauses)


def _listed(labels: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def controls(page: Page, stack: str, units: list[list[int]], unit_texts: list[str]) -> None:
    """Layer, head, method and selected-token controls, bound to the view.

    The token box lists the display units drawn (`units`: each unit's input positions, e.g.
    a merged word's pieces; `unit_texts` their labels), each by its first position: the view's
    `token` stays an input position (a link's ``token`` names a piece), and the box shows the
    unit that holds it."""
    layers, heads, _, _ = page.result.pieces(stack).shape
    methods = core.list_methods(page.model, stack)
    method = core.get_method(session.view().method)
    method_help = " ".join(
        f"{core.get_method(m).label}: {core.get_method(m).help}" for m in methods
    )
    # Method gets a row of its own: beside three other controls a 1024 px window cut its
    # options off ("rollout", "flow").
    layer_column, head_column, token_column = st.columns([1, 1.3, 2])
    method_column = st.container()
    with layer_column:
        bound(st.selectbox, "Layer", "layer", options=list(range(layers)))
    with head_column:
        bound(
            st.selectbox,
            "Head",
            "head",
            options=[*HEADS, *range(heads)],
            # A method without heads has one matrix: the box says so, not "all heads".
            format_func=functools.partial(_head_label)
            if method.has_heads
            else functools.partial(_no_heads_label, method.label),
            disabled=not method.has_heads,
            help="Methods without heads combine all heads of every layer.",
        )
    with method_column:
        bound(
            st.segmented_control,
            "Method",
            "method",
            options=methods,
            format_func=label_from({m: core.get_method(m).label for m in methods}),
            required=True,
            help=method_help,
        )
    with token_column:
        firsts = [unit[0] for unit in units]
        texts = dict(zip(firsts, unit_texts, strict=True))
        token = page.view.token
        bound(
            st.selectbox,
            "Selected token",
            "token",
            value=next((unit[0] for unit in units if token in unit), token),
            options=firsts,
            format_func=label_from({f: f"{f}: {t}" for f, t in texts.items()}),
        )


def _head_label(head: int | str) -> str:
    return HEAD_LABELS.get(head, str(head)) if isinstance(head, str) else str(head)


def _no_heads_label(method_label: str, _head: int | str) -> str:
    return f"— ({method_label} has no heads)"


def head_view_weights(scores: MethodResult, layer: int) -> tuple[np.ndarray, list[int]]:
    """`([h, q, k], head ids)` the head view ships for `layer`: every head of the layer when
    the method has heads (the legend toggles them in the browser), else its one matrix."""
    if scores.per_head is not None:
        return scores.per_head[layer], list(range(scores.per_head.shape[1]))
    return scores.layer_matrix(layer)[None], [0]


def continuation_marks(tokens: list[core.Token], groups: list[list[int]]) -> list[bool]:
    """Per display unit: a single word piece continuing the previous token's word."""
    return [len(group) == 1 and is_continuation(tokens, group[0]) for group in groups]


def line_view(
    page: Page,
    scores: MethodResult,
    display: DisplayMatrix,
    selected: int | None,
    stack: str,
) -> None:
    """BertViz-style lines in the browser; a click on a token selects it everywhere.

    Hover, the head legend and isolating a head run in the browser without a rerun. The
    chosen head is shown at first (all heads for "all" and "mean"); cross attention draws
    target tokens on the left and source tokens on the right.
    """
    current = page.view
    result = page.result
    tokens, key_tokens = result.stack_tokens(stack)
    spec = result.stack_spec(stack)
    cross = stack == CROSS
    top_k, threshold = _line_settings(current.edges, current.threshold, len(display.labels))
    weights, head_ids = head_view_weights(scores, current.layer)
    # Rows a stopped flow has not computed (NaN) draw no lines. Checked first: the copy is
    # 12.6 MB for a layer at 512 tokens, and most methods leave nothing to replace.
    if not np.isfinite(weights).all():
        weights = np.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)
    # Plain unit texts: the component marks word pieces itself (`piece_marks`).
    shown = displayed(page, weights, stack, like=display)
    if cross:
        key_groups = shown.key_groups or []
        right: list[str] | None = shown.key_labels
        marks: list[bool] | tuple[list[bool], list[bool]] = (
            continuation_marks(tokens, shown.groups),
            continuation_marks(key_tokens, key_groups),
        )
    else:
        right = None
        marks = continuation_marks(tokens, shown.groups)
    first = (
        list(range(len(head_ids)))
        if not isinstance(current.head, int) or len(head_ids) == 1
        else [head_ids.index(current.head)]
    )
    unfocused = st.session_state.get(UNFOCUSED_KEY) == current.token
    focused = None if unfocused else selected
    clicked = head_view(
        shown.matrix,
        shown.labels,
        right,
        heads=first,
        selected=focused,
        key="head_view",
        height=HEAD_VIEW_HEIGHT if len(shown.labels) > LONG_INPUT else None,
        causal=spec.causal,
        segment_b_start=None if cross else segment_b_start(tokens, shown.groups),
        piece_marks=marks,
        top_k=top_k,
        threshold=threshold,
        # A method without heads (rollout, flow…) has one matrix: no head legend for it.
        single=None
        if scores.per_head is not None
        else f"{core.get_method(scores.method).label}, one matrix per layer",
        # Opacity from the weight on the page's scale (BertViz: the absolute weight), not
        # from this layer's maximum, so flat attention looks faint, as it is.
        colour_scale_max=scale_top(page, scores),
        colour_scale_name=SCALE_NAMES.get(current.colour_scale(), "fixed scale"),
        on_select=functools.partial(_select_clicked_unit, tuple(g[0] for g in shown.groups)),
    )
    if clicked != focused:
        # Defensive: `_select_clicked_unit` applies every click before the run; a click that
        # reached the page without it is applied here and the views redrawn.
        _apply_click(clicked, tuple(g[0] for g in shown.groups))
        st.rerun()
    # The component says how many lines it draws and how to use it; only the sides are new.
    if cross:
        st.caption("Left: target tokens, right: source tokens.")


def _line_settings(edges: int | None, threshold: float, units: int) -> tuple[int, float]:
    """The line view's strongest lines per token and minimum weight: two sliders in a popover
    whose button names both. The browser draws a popover's content when it opens, so the first
    view does not wait for Streamlit's slider and number-format code."""
    top_k = edges or (3 if units > LONG_INPUT else MAX_EDGES)
    with st.popover(f"Lines: the strongest {top_k} per token, minimum weight {threshold:.2f}"):
        top_k = bound(
            st.slider,
            "Strongest lines per token",
            "edges",
            value=top_k,
            min_value=1,
            max_value=MAX_EDGES,
        )
        threshold = bound(
            st.slider,
            "Minimum weight",
            "threshold",
            min_value=0.0,
            max_value=MAX_THRESHOLD,
            step=0.01,
        )
    return top_k, threshold


def scale_top(page: Page, scores: MethodResult) -> float | None:
    """The value drawn at full strength under the view's colour scale: the model's maximum
    over heads and layers ("shared"), 1 ("fixed"), or None (each chart its own)."""
    scale = page.view.colour_scale()
    if scale == "fixed":
        return 1.0
    return scores_max(scores) if scale == "shared" else None


_MAXIMA: dict[int, tuple[weakref.ref, float]] = {}
"""`model_max` of a method's scores by the id of their array, while that array lives: the
result store hands every run the same arrays, and 38 M scores at 512 tokens take a pass each."""


def scores_max(scores: MethodResult) -> float:
    """`ui.explorer.model_max` of `scores`, computed once per scores array."""
    values = scores.per_head if scores.per_head is not None else scores.per_layer
    known = _MAXIMA.get(id(values))
    if known is not None and known[0]() is values:
        return known[1]
    top = model_max(scores.per_head, scores.per_layer)
    key = id(values)
    _MAXIMA[key] = (weakref.ref(values, lambda _, key=key: _MAXIMA.pop(key, None)), top)
    return top


def displayed(
    page: Page, matrices: np.ndarray, stack: str, like: DisplayMatrix | None = None
) -> DisplayMatrix:
    """`matrices` ``[m, q, k]`` (one layer's) under the view's display options
    (`core.display_matrix.prepare_display`, or `prepare_cross_display` for `stack` CROSS).

    With no option set and no NaN, preparing changes nothing but the dtype (float64, 27 MB
    for a layer at 512 tokens): the layer's own values are kept (every component reads them
    as float32 anyway), with the labels and groups of `like` (the page's display of the same
    tokens and options) or, without it, of the first matrix prepared."""
    view = page.view
    options = {"hide_special": view.hide_special, "merge_words": view.merge_words}
    tokens, key_tokens = page.result.stack_tokens(stack)
    cross = stack == CROSS

    def prepare(values: np.ndarray) -> DisplayMatrix:
        if cross:
            return core.display_matrix.prepare_cross_display(values, tokens, key_tokens, **options)
        return core.display_matrix.prepare_display(values, tokens, **options)

    floating = np.issubdtype(matrices.dtype, np.floating)
    if any(options.values()) or not floating or np.isnan(matrices).any():
        return prepare(matrices)
    return dataclasses.replace(prepare(matrices[:1]) if like is None else like, matrix=matrices)


def matrix_explorer(
    page: Page,
    scores: MethodResult,
    stack: str,
    selected: int | None,
    labels: tuple[list[str], list[str] | None],
    empty: np.ndarray | None,
    like: DisplayMatrix | None = None,
) -> Callable[[], None]:
    """Every head of the layer (and their mean) as one canvas explorer; head, token, hover and
    the legend change in the browser, and the view reaches the controls and the link after.

    `labels` are the rows' and (cross attention) the columns' marked labels; `empty` bool
    `[q, k]` the cells the model never computes (causal future; a sliding window's outside);
    `like` the page's display of the tokens (`displayed`).

    A large layer's shown matrix goes first (`HEADS_LATER_CELLS`); the returned function sends
    the other matrices: call it at the end of the page, so they follow every other view.
    """
    view = page.view
    tokens, _ = page.result.stack_tokens(stack)
    cross = stack == CROSS
    has_heads = scores.per_head is not None
    # The browser names the head it shows; the title says the rest.
    what = f"layer {view.layer}" if has_heads else layer_view(scores, view.layer, 0).what
    if len(page.result.stacks) > 1:
        what = f"{page.result.stack_spec(stack).label} attention, {what}"
    sides = "rows: target, columns: source" if cross else "rows: from, columns: to"
    title = f"{what} ({sides})"
    # Heads and mean prepared apart (each matrix is prepared on its own): `build_payload`
    # stacks them, the one copy of the layer a run makes.
    shown = displayed(page, scores.per_layer[view.layer][None], stack, like)
    mean = None
    if has_heads:
        mean = shown.matrix[0]
        shown = displayed(page, scores.per_head[view.layer], stack, like)
    window = _sliding_window(page, stack, view.layer, scores)
    if window is not None:
        # Keys outside a sliding-window layer's window are never computed: empty, not zero.
        outside = outside_window(shown.groups, window, causal=page.result.is_causal(stack))
        empty = outside if empty is None else empty | outside
    light = {
        "row_labels": labels[0],
        "column_labels": labels[1],
        "head": view.head if has_heads else 0,
        "selected": selected,
        "layer": view.layer,
        "layers": scores.per_layer.shape[0],
        "empty": empty,
        "scale": view.colour_scale(),
        # Offered by the legend whatever the page's scale, so it is always shipped.
        "shared_max": scores_max(scores),
        "segment_b_start": None if cross else segment_b_start(tokens, shown.groups),
        "title": title[0].upper() + title[1:],
        "value_label": "attention" if view.method == "raw" else core.get_method(view.method).label,
        "log": view.log_scale,
        "drop_first": view.without_first,
    }
    cells = shown.matrix.size + (0 if mean is None else mean.size)
    payload = build_payload(
        shown.matrix,
        mean=mean,
        heads_later=cells >= HEADS_LATER_CELLS,
        **light,
    )
    apply_change = functools.partial(
        _apply_explorer_change, tuple(g[0] for g in shown.groups), has_heads
    )
    send_heads = explorer(payload, key=EXPLORER_KEY, on_change=apply_change)
    if apply_change():
        # Defensive: the callback applies every change before the run; one that reached the
        # page without it is applied here and the views redrawn.
        st.rerun()
    return send_heads


def _sliding_window(page: Page, stack: str, layer: int, scores: MethodResult) -> int | None:
    """The sliding window of self-attention layer `layer` (its architecture adapter says), for
    methods that read one layer; None for global layers, chained methods and other stacks."""
    architecture = page.model.architecture
    if stack != SELF or scores.accumulated or architecture is None:
        return None
    if not 0 <= layer < len(architecture.layers):
        return None
    return architecture.layers[layer].window


def _apply_explorer_change(first_tokens: tuple[int, ...], has_heads: bool) -> bool:
    """The explorer's `on_change`: its head, token (a display row) and layer become the
    view's before the run, so every control, the line view and the link follow. Returns
    whether the view changed."""
    change = change_in_callback(EXPLORER_KEY)
    if change is None:
        return False
    current = session.view()
    updates: dict = {}
    row = change.get("token")
    if row is not None and row < len(first_tokens) and first_tokens[row] != current.token:
        updates["token"] = first_tokens[row]
        st.session_state.pop(UNFOCUSED_KEY, None)
    head = change.get("head")
    # The explorer's "mean" is the heatmap of "all heads" too: keep the line view's choice.
    if has_heads and head is not None and not (head == "mean" and current.head == "all"):
        updates["head"] = head
    if "layer" in change:
        updates["layer"] = change["layer"]
    updates = {field: value for field, value in updates.items() if getattr(current, field) != value}
    if updates:
        session.update(**updates)
    return bool(updates)


def _select_clicked_unit(first_tokens: tuple[int, ...]) -> None:
    """The head view's `on_select`: the clicked token becomes the page's selection before the
    run draws anything (box, heatmap row, bars, link), so one run shows it everywhere."""
    clicked = clicked_in_callback("head_view")
    if clicked is not NOT_CLICKED:
        _apply_click(clicked, first_tokens)


def _apply_click(clicked: int | None, first_tokens: tuple[int, ...]) -> None:
    # A click on the selected token clears the focus, and every line shows again.
    if clicked is None:
        st.session_state[UNFOCUSED_KEY] = session.view().token
    else:
        st.session_state.pop(UNFOCUSED_KEY, None)
    if clicked is not None and 0 <= clicked < len(first_tokens):
        session.update(token=first_tokens[clicked])


def selected_token(
    view: DisplayMatrix,
    selected: int | None,
    empty: np.ndarray | None,
    cross: bool,
    scale: ScaleMode = "chart",
) -> None:
    """The selected token's attention out (its row) and in (its column) as bars."""
    if selected is None:
        st.info("Pick a token that is shown (it is hidden by the display options).")
        return
    outgoing, incoming = token_bars(view.matrix, selected, empty, square=not cross)
    chart = charts.attention_bars(
        outgoing,
        incoming,
        view.column_labels,
        None if cross else selected,
        column_width=COLUMN_PX,
        scale=scale if scale != "shared" else "chart",
    )
    show_chart(chart, theme="streamlit")
    label = plain(view.labels[selected])
    st.caption(
        " ".join(
            [
                f"'{label}' (target): the attention it pays to each source token."
                if cross
                else f"'{label}': the attention it pays to each token, and the attention each "
                "token pays to it.",
                *map(plain, charts.chart_notes(chart)),
            ]
        )
    )


def neuron_view(page: Page, stack: str, keys: int | None = None) -> None:
    """Query and key vectors, their products, scores and softmax for one head and token; of
    the `keys` keys the query weighs most (and its own) when given (long inputs), else all."""
    view = page.view
    if stack != SELF:
        st.info("The neuron view reads the self-attention: choose the Encoder stack above.")
        return
    if not isinstance(view.head, int):
        st.info("Choose one head (not the mean or all heads) to see its query and key vectors.")
        return
    try:
        with st.spinner("Reading the query and key vectors…"):
            found = cache.neuron_view(page.inputs, view.layer, view.head, view.token)
    except core.NeuronViewUnsupportedError as error:
        st.info(plain(str(error)))
        return
    except core.AtlasError as error:
        show_error(str(error))
        return
    shown = np.arange(len(found.tokens)) if keys is None else strongest_keys(found, keys)
    labels = found.labels if keys is None else [f"{i} {found.labels[i]}" for i in shown]
    show_chart(
        charts.neuron_view_chart(
            found.query_vector,
            found.key_vectors[shown],
            found.products[shown],
            found.scores[shown],
            found.weights[shown],
            labels,
            query=int(np.searchsorted(shown, found.query)),
            masked=found.masked[shown],
        ),
        theme="streamlit",
        width="content",
    )
    bias = " + T5's relative position bias" if np.any(found.bias) else ""
    st.caption(
        f"Layer {view.layer}, head {view.head}, query token {view.token} "
        f"'{plain(found.labels[view.token])}' ({found.head_dim} dimensions). Each row of "
        f"products sums to q·k; score = q·k × {found.scale:.4g}{bias}; the softmax of the "
        "scores is this head's attention row."
        + (" Later tokens, masked for this query, are left out." if found.masked.any() else "")
        + (
            " Shows every input token, whatever the display options."
            if keys is None
            else f" Shows the {len(shown) - 1} keys it weighs most of {len(found.tokens):,}, "
            "and itself."
        )
    )


def neuron_panel(page: Page, stack: str, keys: int | None = None) -> None:
    box = st.expander(
        "Neuron view (query · key)",
        key=session.widget_key("neuron"),
        on_change=session.sync,
        args=("neuron",),
    )
    with box:
        if box.open:
            neuron_view(page, stack, keys)
        else:
            st.caption("Open to compute the query and key vectors behind one head's attention.")


def exports_panel(page: Page, stack: str, rows: tuple[int, ...] | None, cells: int) -> None:
    """One layer (every head, or the method's matrix) and, for raw weights, everything.

    Every file carries its provenance (model, text, options, layer, head, method) and is
    named after it (`core.export_file_name`). The buttons are in a popover, drawn when it
    opens: the first view does not wait for the download button's code."""
    with st.popover("CSV and JSON downloads"):
        _export_buttons(page, stack, rows, cells)


def _export_buttons(page: Page, stack: str, rows: tuple[int, ...] | None, cells: int) -> None:
    view = page.view
    has_heads = core.get_method(view.method).has_heads
    layer_prov = exports.provenance(
        view,
        page.inputs,
        method=view.method,
        layer=view.layer,
        head=None if has_heads else "mean",
        stack=stack,
    )
    layer_data = functools.partial(
        exports.layer_data, page.inputs, stack, view.method, view.layer, rows, layer_prov
    )
    export_buttons(
        f"Layer {view.layer}",
        csv=functools.partial(layer_data, "csv"),
        json=functools.partial(layer_data, "json"),
        stem=exports.stem(layer_prov),
    )
    if has_heads:
        all_prov = exports.provenance(view, page.inputs, stack=stack)
        export_buttons(
            "All layers and heads",
            csv=functools.partial(exports.stack_data, page.inputs, stack, all_prov, "csv"),
            json=functools.partial(exports.stack_data, page.inputs, stack, all_prov, "json"),
            cells=cells,
            stem=exports.stem(all_prov),
        )
