"""Corpus atlas: what each head does over many sentences, with intervals, examples and the
joint embedding of its queries and keys."""

import streamlit as st

from core.corpus import BUNDLED_CORPORA
from ui import corpus
from ui import page as pages

ABOUT = (
    "What a head does is a property of the head across text, not of one sentence. This page "
    "runs the sidebar's model over many sentences and measures every head's statistics on "
    "each: the table shows their means with a 95 % interval, and labels heads whose means pass "
    "a rule (previous-token, [CLS]/[SEP] sink, broad, …; the rules are listed below). "
    "*Clark et al. (2019)* mode uses the conventions of “What does BERT look at?” so its "
    "numbers compare with the paper. Results are kept in a DuckDB file: a finished run "
    "reopens at once, a stopped one resumes where it stopped. **Examples** lists the "
    "sentences where a head's behaviour is strongest; the **global view** embeds the head's "
    "query and key vectors of many tokens in one plane (AttentionViz, Yeh et al. 2023)."
)


def render(page: pages.Page) -> None:
    corpus.privacy_controls()
    sentences = corpus.corpus_sentences(page.view)
    if not sentences:
        return
    tokens, count = corpus.run_settings(page.view, page.model, len(sentences))
    view = page.view
    shared = view.corpus in BUNDLED_CORPORA
    run = corpus.Run(page.model.name, tuple(sentences[:count]), tokens, view.corpus_mode, shared)
    result, running = corpus.run_controls(run, corpus.stored_result(run))
    if result is None or result.done == 0:
        corpus.continue_run(run, page.model, running)
        return

    st.subheader(f"Heads over {result.done:,} sentences")
    corpus.truncation_note(result)
    corpus.head_table(result)
    corpus.rules(result)

    st.subheader("One head")
    layer, head = corpus.choose_head(result, page.view)
    corpus.open_typical(result, layer, head)
    examples, global_view = st.tabs(["Examples behind a claim", "Global view"])
    with examples:
        corpus.examples(result, page.model, layer, head)
    with global_view:
        corpus.global_view(result, layer, head)
    # Last, so that the results above stay on screen while the next chunk is measured.
    corpus.continue_run(run, page.model, running)


pages.run("corpus", render, title="Corpus", about=ABOUT)
