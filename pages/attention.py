"""Attention page: one layer's heads (or rollout / flow) as heatmap, line view and bars."""

import warnings

import numpy as np
import streamlit as st

import core
from core import charts
from core.views import causal_display_mask, prepare_cross_display, prepare_display
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

**Models.** Encoder-decoder models (BART, T5) have three stacks: the encoder's self-attention
over the text, the decoder's self-attention over the target and the cross attention from the
target to the text. Causal models (GPT-2) and the decoder only look back: the cells of later
tokens are left empty, since the model never computed them.
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

target = shared.current_target(model)
stack_name = views.stack_selector(result)
cross = stack_name == "cross"
# Rows are the stack's queries: the text's tokens, or the target's for decoder and cross.
attentions, tokens, key_tokens = result.stack(stack_name)
causal = result.is_causal(stack_name)
n = len(tokens)
layer_count, head_count = attentions.shape[:2]
methods = ["raw"] if cross else list(shared.METHODS)
fell_back = st.session_state["method"] not in methods
if fell_back:
    st.session_state["method"] = "raw"
shared.clamp_state("layer", layer_count)
shared.clamp_state("token", n)
head_options = ["mean", "all", *range(head_count)]
head_value = st.session_state["head"]
if str(head_value) not in [str(h) for h in head_options]:
    # The head may come from a link: escaped, so Markdown in it cannot draw an image.
    st.warning(
        f"Head {shared.plain(str(head_value))} does not exist here; showing the mean of heads "
        "instead."
    )
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
    method = shared.bound(st.segmented_control, "Method", "method", options=methods)
    if method not in methods:  # clicking the active segment clears it
        method = st.session_state["method"] = "raw"
with controls[3]:
    token = shared.bound(
        st.selectbox,
        "Selected token",
        "token",
        options=list(range(n)),
        format_func=lambda i: f"{i}: {tokens[i].text}",
    )
if cross:
    (st.info if fell_back else st.caption)(views.CROSS_NO_ROLLOUT)


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
    key = ("flow", model.name, result.text, result.text_pair, target, stack_name, layer)
    key += (tuple(rows or ()),)
    bar = None

    def compute() -> np.ndarray:
        nonlocal bar
        bar = st.progress(0.0, text="Computing attention flow…")

        def progress(done: int, total: int) -> bool:
            bar.progress(done / max(total, 1), text=f"Attention flow: {done} of {total}")
            return True

        return core.attention_flow(attentions, layer=layer, rows=rows, progress=progress)

    # In the shared store: a reload, a shared link or another visitor reuses the seconds of
    # max-flow work a 512-token row costs.
    flow = shared.result_store().get(key, compute)
    if bar is not None:
        bar.empty()
    return flow


if method == "raw":
    if head == "mean":
        matrix, stack, stack_heads = attentions[layer].mean(0), None, None
        what = f"layer {layer}, mean of {head_count} heads"
    elif head == "all":
        matrix = attentions[layer].mean(0)
        stack, stack_heads = attentions[layer], list(range(head_count))
        what = f"layer {layer}, all heads (heatmap shows their mean)"
    else:
        matrix, stack, stack_heads = attentions[layer, head], None, None
        what = f"layer {layer}, head {head}"
elif method == "rollout":
    matrix = shared.cached_rollout(
        model.name, st.session_state["text"], st.session_state["pair"], target, stack_name
    )[layer]
    stack, stack_heads = None, None
    what = f"attention rollout after layer {layer}"
else:
    matrix = flow_matrix()
    if matrix is None:
        st.stop()
    stack, stack_heads = None, None
    what = f"attention flow after layer {layer}"

if len(result.stacks) > 1:
    what = f"{result.stack_spec(stack_name).label.lower()} {what}"
display_options = {
    "hide_special": st.session_state["hide_special"],
    "merge_words": st.session_state["merge_words"],
}
if cross:
    view = prepare_cross_display(matrix, tokens, key_tokens, **display_options)
else:
    view = prepare_display(matrix, tokens, **display_options)
# Keys after the query are masked in a causal stack: left empty, not drawn as zeros.
empty = causal_display_mask(view.groups) if causal else None
selected_unit = view.unit_of(token)
caption = [f"{shared.plain(model.name)} · {what} · {len(view.labels)} tokens."]
if cross:
    caption = [
        f"{shared.plain(model.name)} · {what} · {len(view.labels)} × {len(view.column_labels)} "
        "tokens."
    ]
if causal:
    caption.append("Empty cells: later tokens, which a causal model cannot attend to.")
caption += view.notes
if selected_unit is None:
    caption.append(f"The selected token '{shared.plain(tokens[token].text)}' is hidden.")


# A view is a few hundred kB (n × d products); bounded by count and size like every cache here.
@st.cache_data(max_entries=32, max_size="64MB", ttl="1h", show_spinner=False)
def cached_neuron_view(
    model_name: str, text: str, pair: str, layer: int, head: int, query: int
) -> core.NeuronView:
    with warnings.catch_warnings():
        # Truncation is already reported above the page's charts.
        warnings.simplefilter("ignore", core.TruncationWarning)
        return core.neuron_view(
            shared.cached_model(model_name), text, layer, head, query, pair or None
        )


def show_neuron_view() -> None:
    """Query and key vectors, their products, scores and softmax for the selected head and token."""
    if stack_name != core.families.SELF:
        st.info(
            "The neuron view reads the encoder's self-attention: choose the Encoder stack above."
        )
        return
    if not isinstance(head, int):
        st.info("Choose one head (not the mean or all heads) to see its query and key vectors.")
        return
    try:
        with st.spinner("Reading the query and key vectors…"):
            found = cached_neuron_view(
                model.name,
                st.session_state["text"],
                st.session_state["pair"],
                layer,
                head,
                token,
            )
    except core.NeuronViewUnsupportedError as error:
        st.info(shared.plain(str(error)))
        return
    except core.AtlasError as error:
        shared.show_error(str(error))
        return
    shared.show_chart(
        charts.neuron_view_chart(
            found.query_vector,
            found.key_vectors,
            found.products,
            found.scores,
            found.weights,
            found.labels,
            query=found.query,
            masked=found.masked,
        ),
        theme="streamlit",
        width="content",
    )
    bias = " + T5's relative position bias" if np.any(found.bias) else ""
    st.caption(
        f"Layer {layer}, head {head}, query token {token} '{shared.plain(found.labels[token])}' "
        f"({found.head_dim} dimensions). Each row of products sums to q·k; "
        f"score = q·k × {found.scale:.4g}{bias}; the softmax of the scores is this head's "
        "attention row."
        + (" Later tokens, masked for this query, are left out." if found.masked.any() else "")
        + " Shows every input token, whatever the display options."
    )


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
    title=f"{what} (rows: {'target' if cross else 'from'}, columns: {'source' if cross else 'to'})",
    selected=selected_unit,
    key_labels=view.key_labels,
    on_pick=select_row,
    empty_mask=empty,
)
st.caption(" ".join(caption))

left, right = st.columns([1, 1])
with left:
    st.subheader("Line view")
    if cross:
        st.caption(
            "The line view joins one token list to itself; for cross attention (target → "
            "source) read the heatmap and the bars."
        )
    else:
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
        shared.show_chart(
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
        incoming = None if cross else view.matrix[:, selected_unit]
        if empty is not None:
            # The selected token cannot see later tokens, nor earlier ones see it: no bars.
            outgoing = np.where(empty[selected_unit], np.nan, outgoing)
            incoming = np.where(empty[:, selected_unit], np.nan, incoming)
        shared.show_chart(
            charts.attention_bars(
                outgoing, incoming, view.column_labels, None if cross else selected_unit
            ),
            theme="streamlit",
        )
        if cross:
            st.caption(
                f"'{shared.plain(view.labels[selected_unit])}' (target): the attention it pays "
                "to each source token."
            )
        else:
            st.caption(
                f"'{shared.plain(view.labels[selected_unit])}': the attention it pays to each "
                "token, and the attention each token pays to it."
            )

neuron_box = st.expander("Neuron view (query · key)", key="neuron_open", on_change="rerun")
with neuron_box:
    if neuron_box.open:
        show_neuron_view()
    else:
        st.caption("Open to compute the query and key vectors behind one head's attention.")

st.subheader("Export")
export_left, export_right = st.columns(2)
if method == "raw":
    export_array, export_layers = attentions[layer : layer + 1], [layer]
    export_heads = list(range(head_count))
else:
    export_array, export_layers, export_heads = matrix[None, None], [layer], [0]
# Cross attention exports its target tokens as rows and its source tokens as keys.
export_labels = [t.text for t in tokens]
export_keys = [t.text for t in key_tokens] if cross else None
file_stem = "attention" if stack_name == core.families.SELF else f"attention_{stack_name}"
file_stem = f"{file_stem}_{method}"
with export_left:
    st.download_button(
        f"Layer {layer} as JSON",
        data=lambda: core.attention_json(
            export_labels,
            export_array,
            layer_ids=export_layers,
            head_ids=export_heads,
            method=method,
            key_labels=export_keys,
        ),
        file_name=f"{file_stem}_layer{layer}.json",
        mime="application/json",
        on_click="ignore",
    )
with export_right:
    st.download_button(
        f"Layer {layer} as CSV",
        data=lambda: core.attention_csv(
            export_labels,
            export_array,
            layer_ids=export_layers,
            head_ids=export_heads,
            key_labels=export_keys,
        ),
        file_name=f"{file_stem}_layer{layer}.csv",
        mime="text/csv",
        on_click="ignore",
    )
if method == "raw":
    views.export_buttons(
        "All layers and heads",
        csv=lambda: core.attention_csv(export_labels, attentions, key_labels=export_keys),
        json=lambda: core.attention_json(export_labels, attentions, key_labels=export_keys),
        cells=attentions.size,
    )
