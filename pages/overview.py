"""Model overview: every layer × head as a thumbnail, and a sortable table of head statistics."""

import streamlit as st

import core
from core import charts
from core.head_stats import STAT_DESCRIPTIONS
from core.views import pad_square, thumbnail_size
from pages import _shared as shared
from pages import _views as views

shared.ensure_router()

GRID_WIDTH = 640
"""px for the heads of one layer side by side; Streamlit does not shrink charts to fit."""
THUMBNAIL_PIXELS = 250_000
"""The thumbnails are PNG images: 144 heads of 40 × 40 cells stay under 0.5 MB."""


st.title("Model overview")
with st.expander("What am I looking at?"):
    st.markdown(
        "Each small square is one attention head: rows are queries, columns are keys, as on the "
        "Attention page. Heads with a diagonal stripe just below the diagonal look at the "
        "previous token; a bright first column means attention parked on [CLS]. Click a head "
        "(or pick it below) to open it on the Attention page. The table measures the same "
        "patterns per head; click a column header to sort."
    )

model = shared.load_current_model()
if model is None:
    st.stop()
result = shared.current_result(model)
if result is None:
    st.stop()

target = shared.current_target(model)
stack_name = views.stack_selector(result)
cross = stack_name == "cross"
attentions, query_tokens, key_tokens = result.stack(stack_name)
layer_count, head_count = attentions.shape[:2]
n = max(len(query_tokens), len(key_tokens))
size = thumbnail_size(layer_count, head_count, n, budget=THUMBNAIL_PIXELS, largest=40)
thumbnails = shared.cached_thumbnails(
    model.name, st.session_state["text"], st.session_state["pair"], target, stack_name, size
)
if cross:
    # Target rows × source columns; the grid's thumbnails are square, the rest stays empty.
    thumbnails = pad_square(thumbnails)
    st.caption(
        f"Each thumbnail: {len(query_tokens)} target tokens (rows) × {len(key_tokens)} source "
        "tokens (columns); the grey rest of the square is padding."
    )
if n > size:
    st.caption(f"{n} tokens: each thumbnail is averaged down to {size}×{size} blocks.")
current = (st.session_state.get("layer", 0), st.session_state.get("head"))
selected = current if isinstance(current[1], int) else None


def open_head(layer: int, head: int) -> None:
    st.session_state["layer"] = int(layer)
    st.session_state["head"] = int(head)
    st.session_state["method"] = "raw"
    st.switch_page("pages/attention.py")


# The grid takes the page's width (twelve heads side by side); the table goes below it.
grid, table = st.container(), st.container()
with grid:
    event = shared.show_chart(
        charts.head_grid(thumbnails, selected=selected, max_width=GRID_WIDTH),
        theme="streamlit",
        width="content",
        on_select="rerun",
        key="head_grid",
    )
    picked = (event or {}).get("selection", {}).get("head") or []
    if picked:
        open_head(picked[0]["layer"], picked[0]["head"])
    pick_layer, pick_head, go = st.columns([1, 1, 1], vertical_alignment="bottom")
    layer = pick_layer.selectbox("Layer", range(layer_count), key="overview_layer")
    head = pick_head.selectbox("Head", range(head_count), key="overview_head")
    if go.button("Open on the Attention page"):
        open_head(layer, head)

with table:
    if cross:
        st.info(
            "The head statistics describe self-attention (distance, previous and next token, "
            "itself); cross attention relates two different texts. Choose Encoder or Decoder."
        )
    else:
        stats = shared.cached_head_stats(
            model.name, st.session_state["text"], st.session_state["pair"], target, stack_name
        )
        st.dataframe(
            stats,
            hide_index=True,
            column_config={
                name: st.column_config.NumberColumn(
                    name.replace("_", " "), help=text, format="%.3f"
                )
                for name, text in STAT_DESCRIPTIONS.items()
            },
            height=520,
        )
        st.caption(
            "Averaged over the query rows of the words (special-token rows left out). "
            "Sort by 'to previous' to find previous-token heads."
        )
        views.export_buttons(
            "Head statistics",
            csv=lambda: stats.to_csv(index=False),
            json=lambda: stats.to_json(orient="records"),
        )
    # Cross attention exports its target tokens as rows and its source tokens as keys.
    row_labels = [t.text for t in query_tokens]
    key_labels = [t.text for t in key_tokens] if cross else None
    views.export_buttons(
        "All heads",
        csv=lambda: core.attention_csv(row_labels, attentions, key_labels=key_labels),
        json=lambda: core.attention_json(row_labels, attentions, key_labels=key_labels),
        cells=attentions.size,
    )
