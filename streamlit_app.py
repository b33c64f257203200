"""Attention Atlas: the router and the sidebar every page shares."""

import streamlit as st

from server import idle
from ui import cache, runtime, session, sidebar

PAGE_FILES = {
    "attention": "pages/attention.py",
    "overview": "pages/overview.py",
    "masked": "pages/masked.py",
    "compare": "pages/compare.py",
    "explain": "pages/explain.py",
    "corpus": "pages/corpus.py",
    "long_context": "pages/long_context.py",
}


def main() -> None:
    st.set_page_config(page_title="Attention Atlas", page_icon="🔭", layout="wide")
    # Runs first on every page, before any model or result is allocated.
    runtime.tune_process()
    # Memory: cyclic garbage (Altair's caught errors keep a page's result alive through their
    # frames) is collected once no page has run for a while, not after every run (130-240 ms
    # each); `server.idle` says why and what it measured.
    idle.start_collecting()
    with idle.COLLECTOR.page_running():
        run_page()


def run_page() -> None:
    session.view()  # reads the link on a session's first run
    sidebar.render()
    navigation = st.navigation(
        [
            st.Page(
                PAGE_FILES["attention"],
                title="Attention",
                icon="🔍",
                url_path="attention",
                default=True,
            ),
            st.Page(PAGE_FILES["overview"], title="Model overview", icon="🗺️", url_path="overview"),
            st.Page(PAGE_FILES["masked"], title="Masked prediction", icon="🎭", url_path="masked"),
            st.Page(PAGE_FILES["compare"], title="Compare", icon="⚖️", url_path="compare"),
            st.Page(
                PAGE_FILES["explain"], title="Explain a prediction", icon="🧭", url_path="explain"
            ),
            st.Page(PAGE_FILES["corpus"], title="Corpus", icon="📚", url_path="corpus"),
            st.Page(
                PAGE_FILES["long_context"],
                title="Long context",
                icon="🧵",
                url_path="long_context",
            ),
        ]
    )
    opened = sidebar.page_to_open()
    if opened in PAGE_FILES:
        st.switch_page(PAGE_FILES[opened])
    with cache.page_slot(session.view()):  # a heavy view waits its turn as a whole
        navigation.run()
    session.write_url(session.view())


main()
