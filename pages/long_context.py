"""Long context: attention sinks, local and retrieval heads, the needle explorer, ablation."""

import streamlit as st

from ui import long_context
from ui import page as pages

ABOUT = (
    "Most heads of a trained decoder park much of their weight on the first token (an "
    "**attention sink**, Xiao et al. 2024; Gu et al. 2024), some read only a recent window, "
    "and a few **copy** facts from far back (retrieval heads, Wu et al. 2024). The **head "
    "map** colours every layer × head of the sidebar's text by one of these measures; click a "
    "head to open it on the Attention page. The "
    "**needle search** hides a sentence at several depths of a haystack, asks a question "
    "whose answer is that sentence, and scores each head by how much of the answer it copies "
    "from the needle; it shows where the needle sits and how probable the answer is at each "
    "depth. The **ablation** zeroes the top retrieval heads, as many random heads of the same "
    "layers, and the sink heads, and shows the three effects side by side. Definitions, and "
    "where they depart from the papers: docs/long-context.md."
)


def render(page: pages.Page) -> None:
    # The needle search runs first, below the head map, so that the map can show its scores.
    head_map, search, ablation = st.container(), st.container(), st.container()
    with search:
        needle = long_context.needle_panel(page)
    with head_map:
        profile = long_context.head_map_panel(page, needle)
    with ablation:
        long_context.ablation_panel(page, needle, profile)


pages.run("long_context", render, title="Long context", about=ABOUT)
