"""Attention page: one layer's heads (or rollout / flow) as heatmap, line view and bars."""

import numpy as np
import streamlit as st

import core
from core import charts
from core.views import prepare_display
from pages import _shared as shared
from pages import _views as views

shared.ensure_router()

HELP = """
**Rows are queries, columns are keys.** Row *i* shows how the token on the left spreads its
attention over every token of the input: each row sums to 1. The line view draws the same
numbers as lines from the token on the left to the tokens on the right (darker = stronger).

**Methods.** *raw* is the weights one head computes. *rollout* follows attention down through
all layers to the input, modelling the residual connection as half of each layer
(Abnar & Zuidema 2020): row *i* of layer *l* says which input tokens position *i* is made of
after layer *l*. *flow* treats the layers as a network of pipes with the attention weights as
capacities and measures how much can flow from a position to each input token (maximum flow),
normalised per row.
"""

st.title("Attention")
with st.expander("What am I looking at?"):
    st.markdown(HELP)

model = shared.load_current_model()
if model is None:
    st.stop()
result = shared.current_result(model)
if result is None:
    st.stop()

tokens = result.tokens
n = len(tokens)
layer_count, head_count = result.num_layers, result.num_heads
shared.clamp_state("layer", layer_count)
shared.clamp_state("token", n)
head_options = ["mean", "all", *range(head_count)]
head_value = st.session_state["head"]
if str(head_value) not in [str(h) for h in head_options]:
    st.warning(f"Head {head_value} does not exist here; showing the mean of heads instead.")
    head_value = "mean"
st.session_state["head"] = next(h for h in head_options if str(h) == str(head_value))

controls = st.columns([1, 1, 1.2, 2])
with controls[0]:
    layer = shared.bound(st.selectbox, "Layer", "layer", options=list(range(layer_count)))
with controls[1]:
    head = shared.bound(
        st.selectbox,
        "Head",
        "head",
        options=head_options,
        format_func=lambda h: {"mean": "mean of heads", "all": "all heads (lines)"}.get(h, str(h)),
        disabled=st.session_state["method"] != "raw",
        help="Rollout and flow combine all heads of every layer.",
    )
with controls[2]:
    method = shared.bound(st.segmented_control, "Method", "method", options=list(shared.METHODS))
    if method not in shared.METHODS:  # clicking the active segment clears it
        method = st.session_state["method"] = "raw"
with controls[3]:
    token = shared.bound(
        st.selectbox,
        "Selected token",
        "token",
        options=list(range(n)),
        format_func=lambda i: f"{i}: {tokens[i].text}",
    )


def flow_matrix() -> np.ndarray | None:
    """Flow at the chosen layer, for all rows or only chosen ones, with a progress bar."""
    limit_default = n > 64
    only_some = st.toggle(
        "Compute flow only for chosen tokens",
        value=limit_default,
        help="Flow solves one maximum-flow problem per token pair; limiting rows is faster.",
    )
    rows = None
    if only_some:
        rows = st.multiselect(
            "Tokens to compute flow for",
            options=list(range(n)),
            default=[token],
            format_func=lambda i: f"{i}: {tokens[i].text}",
        )
        if not rows:
            st.info("Choose at least one token.")
            return None
    cache = shared.session_lru("flow_cache")
    key = (model.name, result.text, result.text_pair, layer, tuple(rows or ()))
    if key not in cache:
        bar = st.progress(0.0, text="Computing attention flow…")

        def progress(done: int, total: int) -> bool:
            bar.progress(done / max(total, 1), text=f"Attention flow: {done} of {total}")
            return True

        cache.put(
            key, core.attention_flow(result.attentions, layer=layer, rows=rows, progress=progress)
        )
        bar.empty()
    return cache[key]


if method == "raw":
    if head == "mean":
        matrix, stack, stack_heads = result.attentions[layer].mean(0), None, None
        what = f"layer {layer}, mean of {head_count} heads"
    elif head == "all":
        matrix = result.attentions[layer].mean(0)
        stack, stack_heads = result.attentions[layer], list(range(head_count))
        what = f"layer {layer}, all heads (heatmap shows their mean)"
    else:
        matrix, stack, stack_heads = result.attentions[layer, head], None, None
        what = f"layer {layer}, head {head}"
elif method == "rollout":
    matrix = shared.cached_rollout(model.name, st.session_state["text"], st.session_state["pair"])[
        layer
    ]
    stack, stack_heads = None, None
    what = f"attention rollout after layer {layer}"
else:
    matrix = flow_matrix()
    if matrix is None:
        st.stop()
    stack, stack_heads = None, None
    what = f"attention flow after layer {layer}"

view = prepare_display(
    matrix,
    tokens,
    hide_special=st.session_state["hide_special"],
    merge_words=st.session_state["merge_words"],
)
selected_unit = view.unit_of(token)
caption = [f"{model.name} · {what} · {len(view.labels)} tokens."]
caption += view.notes
if selected_unit is None:
    caption.append(f"The selected token '{tokens[token].text}' is hidden.")

st.subheader("Matrix")


def select_row(row: int) -> None:
    """A click on a heatmap cell selects its row's token in every view."""
    groups = st.session_state.get("_heatmap_groups", [])
    if 0 <= row < len(groups):
        st.session_state["token"] = groups[row][0]


st.session_state["_heatmap_groups"] = view.groups
shown_rows = views.show_matrix(
    view.matrix,
    view.labels,
    key="heatmap",
    title=f"{what} (rows: from, columns: to)",
    selected=selected_unit,
    on_pick=select_row,
)
st.caption(" ".join(caption))

left, right = st.columns([1, 1])
with left:
    st.subheader("Line view")
    long_input = len(view.labels) > views.DETAIL_LIMIT
    top_k = st.slider("Strongest edges per token", 1, 20, value=3 if long_input else 20)
    threshold = st.slider("Minimum weight", 0.0, 0.5, 0.0, 0.01)
    if stack is not None:
        lines_view = prepare_display(
            stack,
            tokens,
            hide_special=st.session_state["hide_special"],
            merge_words=st.session_state["merge_words"],
        )
        weights, ids = lines_view.matrix, stack_heads
    else:
        weights, ids = view.matrix[None], [head if isinstance(head, int) else 0]
    line_labels = view.labels
    line_selected = selected_unit
    window_note = ""
    if shown_rows is not None:
        # A long input draws the detail window's tokens only: thousands of rows of text
        # would not be readable anyway.
        start, stop = shown_rows
        weights = weights[:, start:stop, start:stop]
        line_labels = [f"{i}·{view.labels[i]}" for i in range(start, stop)]
        in_window = selected_unit is not None and start <= selected_unit < stop
        line_selected = selected_unit - start if in_window else None
        window_note = f" Tokens {start}–{stop - 1} (the detail window) only."
    edges = charts.prune_edges(weights, top_k=top_k, threshold=threshold, head_ids=ids)
    st.altair_chart(
        charts.head_view_lines(
            weights, line_labels, ids, top_k=top_k, threshold=threshold, selected=line_selected
        ),
        theme="streamlit",
        width="content",
    )
    st.caption(
        f"{len(edges)} lines: the {top_k} strongest per token with weight ≥ {threshold:.2f}."
        f"{window_note} Hover or click a token on the left to keep only its lines."
    )
with right:
    st.subheader("Selected token")
    if selected_unit is None:
        st.info("Pick a token that is shown (it is hidden by the display options).")
    else:
        outgoing = view.matrix[selected_unit]
        incoming = view.matrix[:, selected_unit]
        st.altair_chart(
            charts.attention_bars(outgoing, incoming, view.labels, selected_unit),
            theme="streamlit",
        )
        st.caption(
            f"'{view.labels[selected_unit]}': the attention it pays to each token, and the "
            "attention each token pays to it."
        )

st.subheader("Export")
export_left, export_right = st.columns(2)
if method == "raw":
    export_array, export_layers = result.attentions[layer : layer + 1], [layer]
    export_heads = list(range(head_count))
else:
    export_array, export_layers, export_heads = matrix[None, None], [layer], [0]
with export_left:
    st.download_button(
        f"Layer {layer} as JSON",
        data=lambda: core.attention_json(
            result.labels,
            export_array,
            layer_ids=export_layers,
            head_ids=export_heads,
            method=method,
        ),
        file_name=f"attention_{method}_layer{layer}.json",
        mime="application/json",
        on_click="ignore",
    )
with export_right:
    st.download_button(
        f"Layer {layer} as CSV",
        data=lambda: core.attention_csv(
            result.labels, export_array, layer_ids=export_layers, head_ids=export_heads
        ),
        file_name=f"attention_{method}_layer{layer}.csv",
        mime="text/csv",
        on_click="ignore",
    )
if method == "raw":
    views.export_buttons(
        "All layers and heads",
        csv=lambda: core.attention_csv(result.labels, result.attentions),
        json=lambda: core.attention_json(result.labels, result.attentions),
        cells=result.attentions.size,
    )
