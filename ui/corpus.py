"""The Corpus page's parts: the sentences, a run in stoppable chunks, the head table, the
examples behind a claim and the global view.

A run is measured in chunks of about `CHUNK_SECONDS`, one per script run, each inside an
admission slot and saved to the corpus store (`core.corpus`) before the next: the page redraws
the table after every chunk and reruns itself until the corpus is done. Stop (or any click,
which interrupts the chunk) keeps every measured batch, and the store resumes the run by its key
(model, corpus, max tokens, mode) whenever it is started again, in this session or another.

Which store handle a run uses is `ui.store.corpus_store`'s policy: in public mode a visitor's
own corpus is theirs alone (an owner token per session), expires, and is deleted when they ask.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit import config as streamlit_config
from streamlit.delta_generator import DeltaGenerator

from core import AtlasError, LoadedModel
from core.charts import global_view_chart
from core.corpus import (
    BUNDLED_CORPORA,
    FILE_TYPES,
    MODES,
    TOP_K,
    CorpusResult,
    CorpusStore,
    available_projections,
    bundled_corpus,
    label_rules,
    open_corpus,
    read_sentences,
    run_corpus,
)
from core.corpus.inputs import parse_txt
from core.corpus.run import encode_sentence
from core.corpus.tables import corpus_example_rows, corpus_head_rows
from ui import cache, session
from ui import store as stores
from ui.deploy import deploy_policy
from ui.layout import table_height
from ui.state import MAX_CORPUS_SENTENCES, MAX_CORPUS_TOKENS, MIN_CORPUS_TOKENS, ViewState
from ui.text import plain
from ui.widgets import bound, label_from, show_chart, show_error

CHUNK_SECONDS = 4.0
"""A chunk of a run lasts about this long: the table refreshes, Stop answers and other
visitors get the admission slot at least this often."""
BATCH_SIZE = 8
RUNNING_KEY = "atlas_corpus_running"
"""The `Run.key` of the run this session is measuring, while it runs."""
OWNER_KEY = "atlas_corpus_owner"
"""This session's owner token: in public mode its own corpora's runs are stored under it."""
DELETED_KEY = "atlas_corpus_deleted"
"""How many runs "Delete my corpus runs" removed (or why it could not), shown once."""
SOURCE_LABELS = {
    **{name: f"{name.capitalize()} (bundled)" for name in BUNDLED_CORPORA},
    "paste": "Paste sentences",
    "upload": "Upload a file",
}
MODE_LABELS = {"default": "Default", "clark": "Clark et al."}
EXAMPLES_SHOWN = 10
PINNED_SHARE = 0.6
"""Streamlit's `st.dataframe` pins no column when its pinned columns take more than this share
of the table's width (its frontend's rule)."""
TIE_DECIMALS = 3
"""Examples whose values agree to this many decimals (as shown) tie."""
GLOBAL_POINTS = 1200


@dataclass(frozen=True)
class Run:
    """What a run measures: the model, the sentences and the settings (its store key)."""

    model: str
    sentences: tuple[str, ...]
    max_tokens: int
    mode: str
    shared: bool = True
    """Whether the sentences are a bundled corpus, whose runs every visitor shares."""

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.model, hash(self.sentences), self.max_tokens, self.mode)


# ---------------------------------------------------------------- the store and privacy
def session_owner() -> str:
    """This session's owner token (random, made once per session, never shown or logged)."""
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = secrets.token_urlsafe(24)
    return st.session_state[OWNER_KEY]


def store_cap() -> int | None:
    """The corpus store's size cap: `ATLAS_MAX_CORPUS_STORE_BYTES` (`server.settings`). A value
    that cannot be read gives the strict public policy, so a typo never lifts the cap."""
    return deploy_policy().max_corpus_store_bytes


def store_for(run: Run) -> CorpusStore:
    """The store handle `run` is kept in (see `ui.store.corpus_store`)."""
    return stores.corpus_store(
        public=deploy_policy().public,
        shared=run.shared,
        owner=session_owner(),
        max_bytes=store_cap(),
    )


def _delete_own_runs() -> None:
    _stop()
    try:
        store = stores.corpus_store(
            public=True, shared=False, owner=session_owner(), max_bytes=store_cap()
        )
        st.session_state[DELETED_KEY] = store.delete_runs()
    except AtlasError as error:
        st.session_state[DELETED_KEY] = str(error)


def privacy_controls() -> None:
    """In public mode: how long a visitor's own corpus is kept, and a button deleting it."""
    if not deploy_policy().public:
        return
    deleted = st.session_state.pop(DELETED_KEY, None)
    if isinstance(deleted, str):
        show_error(deleted)
    elif deleted is not None:
        runs = "run" if deleted == 1 else "runs"
        st.success(f"Deleted {deleted} corpus {runs} of yours and their sentences from the server.")
    hours = stores.PUBLIC_CORPUS_RUN_SECONDS // 3600
    text, button = st.columns([4, 1], vertical_alignment="center")
    text.caption(
        "Sentences you paste or upload are measured for this session only: nobody else can "
        f"open their results, and they are deleted from the server after {hours} hours, or now."
    )
    button.button(
        "Delete my corpus runs",
        key="corpus_delete",
        on_click=_delete_own_runs,
        help="Deletes the runs of the sentences you pasted or uploaded in this session, and "
        "the sentences; the bundled corpora's runs are shared and stay.",
    )


# ---------------------------------------------------------------- choosing the sentences
def upload_megabytes() -> int:
    """The server's upload limit (`server.maxUploadSize` in .streamlit/config.toml), in MB."""
    return int(streamlit_config.get_option("server.maxUploadSize"))


def corpus_sentences(view: ViewState) -> list[str] | None:
    """The corpus the visitor chose (all of it), or None with a message or a prompt shown."""
    bound(
        st.segmented_control,
        "Sentences",
        "corpus",
        options=list(SOURCE_LABELS),
        format_func=label_from(SOURCE_LABELS),
        required=True,
    )
    if view.corpus in BUNDLED_CORPORA:
        st.caption(plain(BUNDLED_CORPORA[view.corpus]))
        return bundled_corpus(view.corpus)
    if view.corpus == "paste":
        text = st.text_area(
            "Sentences, one per line",
            key="corpus_paste",
            height=140,
            max_chars=deploy_policy().max_chars,
            placeholder="The cat sat on the mat.\nIt was tired.",
        )
        sentences = parse_txt(text)
        if not sentences:
            st.info("Paste a few sentences, one per line.")
        return sentences or None
    limit = upload_megabytes()
    uploaded = st.file_uploader(
        f"A .txt (one sentence per line), .csv (a 'text' column) or .jsonl file, up to {limit} MB",
        type=[suffix.lstrip(".") for suffix in FILE_TYPES],
        key="corpus_upload",
        max_upload_size=limit,
    )
    if uploaded is None:
        return None
    try:
        return read_sentences(uploaded.getvalue(), uploaded.name)
    except AtlasError as error:
        show_error(str(error))
        return None


def run_settings(view: ViewState, model: LoadedModel, available: int) -> tuple[int, int]:
    """Max tokens and how many sentences, within the model's and the deployment's limits."""
    policy = deploy_policy()
    token_limit = min(MAX_CORPUS_TOKENS, model.max_length)
    sentence_limit = min(available, MAX_CORPUS_SENTENCES)
    if policy.max_corpus_sentences is not None:
        sentence_limit = min(sentence_limit, policy.max_corpus_sentences)
    tokens_column, mode_column, count_column = st.columns([1, 1.2, 1])
    with tokens_column:
        tokens = bound(
            st.number_input,
            "Max tokens per sentence",
            "corpus_tokens",
            value=min(max(view.corpus_tokens, MIN_CORPUS_TOKENS), token_limit),
            min_value=min(MIN_CORPUS_TOKENS, token_limit),
            max_value=token_limit,
            step=16,
            help="Longer sentences are cut (special tokens included); the count is shown.",
        )
    with mode_column:
        bound(
            st.segmented_control,
            "Statistics",
            "corpus_mode",
            options=list(MODES),
            format_func=label_from(MODE_LABELS),
            required=True,
            help="Clark-compatible: every query row counts, [CLS] and [SEP] apart, entropy "
            'in nats, only "." and "," as punctuation; so numbers compare with the paper.',
        )
    with count_column:
        count = bound(
            st.number_input,
            f"Sentences (of {available:,})",
            "corpus_sentences",
            value=min(view.corpus_sentences, sentence_limit),
            min_value=1,
            max_value=sentence_limit,
            help="The first this many sentences of the corpus are measured.",
        )
    if policy.public:
        st.caption(
            f"This public deployment measures at most {sentence_limit:,} sentences of at most "
            f"{token_limit} tokens per run. Run `python -m core.corpus` on your own machine "
            "for larger corpora."
        )
    return int(tokens), int(count)


# ---------------------------------------------------------------- running
def is_running(run: Run) -> bool:
    return st.session_state.get(RUNNING_KEY) == run.key


def _start(key: tuple) -> None:
    st.session_state[RUNNING_KEY] = key


def _stop() -> None:
    st.session_state.pop(RUNNING_KEY, None)


def stored_result(run: Run) -> CorpusResult | None:
    """The stored run (finished or stopped) for these settings, instantly; None if new."""
    try:
        return open_corpus(
            run.model,
            run.sentences,
            max_tokens=run.max_tokens,
            mode=run.mode,
            store=store_for(run),
        )
    except AtlasError as error:
        show_error(str(error))
        return None


def run_controls(
    run: Run, result: CorpusResult | None
) -> tuple[CorpusResult | None, DeltaGenerator | None]:
    """Run / Stop / Resume: the stored result, and the progress bar while the run is on.

    The page draws the stored result first and calls `continue_run` with the bar last, so the
    table stays on screen while the next chunk is measured.
    """
    if result is not None and result.finished:
        st.caption(
            f"Measured {result.total:,} sentences in {result.seconds:.0f} s; stored, so it "
            "reopens at once."
        )
        return result, None
    if not is_running(run):
        label = "Run" if result is None or result.done == 0 else "Resume"
        if result is not None and result.done:
            st.info(f"Stopped after {result.done:,} of {result.total:,} sentences.")
        st.button(label, type="primary", on_click=_start, args=(run.key,), key="corpus_start")
        return result, None
    st.button(
        "Stop",
        on_click=_stop,
        key="corpus_stop",
        help="Stops after the batch being measured and keeps everything measured so far.",
    )
    done = 0 if result is None else result.done
    total = len(run.sentences)
    bar = st.progress(done / total, text=f"{done:,} of {total:,} sentences · measuring…")
    return result, bar


def continue_run(run: Run, model: LoadedModel, bar: DeltaGenerator | None) -> None:
    """Measure the next chunk of a running run, then rerun the page to show it."""
    if bar is None:
        return
    try:
        cache.admitted(functools.partial(_chunk, run, model, bar), cache.corpus_work)
    except AtlasError as error:
        _stop()
        show_error(str(error))
        return
    stored = stored_result(run)
    if stored is None or stored.finished:
        _stop()
    st.rerun()


def _chunk(run: Run, model: LoadedModel, bar: DeltaGenerator) -> CorpusResult:
    """About `CHUNK_SECONDS` of the run (at least one batch), saved to the store."""
    deadline = time.monotonic() + CHUNK_SECONDS

    def progress(done: int, total: int, rate: float, left: float) -> bool:
        estimate = f", about {left:.0f} s left" if left < float("inf") else ""
        bar.progress(
            done / total,
            text=f"{done:,} of {total:,} sentences · {rate:.1f} per second{estimate}",
        )
        return time.monotonic() < deadline

    return run_corpus(
        model,
        list(run.sentences),
        max_tokens=run.max_tokens,
        mode=run.mode,
        progress=progress,
        batch_size=BATCH_SIZE,
        store=store_for(run),
    )


# ---------------------------------------------------------------- results
def open_on_attention(result: CorpusResult, layer: int, head: int, sentence: int, token: int):
    """Show sentence `sentence` of the corpus on the Attention page at one head and token."""
    session.update(
        model=result.model_name,
        text=result.sentence(sentence),
        pair="",
        target="",
        layer=int(layer),
        head=int(head),
        method="raw",
        token=max(int(token), 0),
        page="attention",
    )
    st.switch_page("pages/attention.py")


def head_table(result: CorpusResult) -> None:
    """The sortable per-head table; selecting a row opens the head with its typical sentence."""
    statistics = list(result.statistics)
    rows = corpus_head_rows(result.head_table, statistics)
    config = head_table_config(result.statistics)
    event = st.dataframe(
        rows,
        hide_index=True,
        column_config=config,
        height=table_height(len(rows), most=420),
        on_select="rerun",
        selection_mode="single-row",
        key="corpus_heads",
    )
    st.caption(
        f"Means over {result.done:,} sentences with the half-width of their 95 % interval "
        "(the ±95 % columns). "
        "Click a column header to sort; select a row to open that head on the Attention page "
        "with its most typical sentence."
    )
    selected = (event or {}).get("selection", {}).get("rows") or []
    if selected:
        layer, head = (int(v) for v in rows.iloc[selected[0]][["layer", "head"]])
        typical = result.typical_sentence(layer, head)
        if typical is not None:
            open_on_attention(result, layer, head, typical[0], 0)


def head_table_config(statistics: dict[str, str]) -> dict[str, Any]:
    """`st.dataframe` column settings of `corpus_head_rows`: layer and head pinned (they stay
    in view while the many number columns scroll), the labels beside them wide enough for three
    rule names ("previous-token, same word / duplicate token"), every statistic named, its
    interval column after it naming it too.

    The labels are not pinned: Streamlit pins nothing when the pinned columns take more than
    `PINNED_SHARE` of the table's width, and with them the pinned columns took 362 of the 560 px
    a 1024 px window gives the table, so nothing stayed in view as it scrolled."""
    config: dict[str, Any] = {
        "layer": st.column_config.NumberColumn("layer", pinned=True, width=48),
        "head": st.column_config.NumberColumn("head", pinned=True, width=44),
        "labels": st.column_config.TextColumn(
            "labels", width=270, help="The rules the head's means pass."
        ),
        "sentences": st.column_config.NumberColumn("sentences", help="Sentences measured."),
    }
    for name, text in statistics.items():
        readable = name.replace("_", " ")
        config[name] = st.column_config.NumberColumn(readable, help=text, format="%.3f")
        config[f"{name} ±"] = st.column_config.NumberColumn(
            f"{readable} ±95 %",
            help=f"Half-width of the 95 % confidence interval of the corpus mean of {readable}.",
            format="%.3f",
        )
    return config


def rules(result: CorpusResult) -> None:
    with st.expander("Label rules and thresholds"):
        st.table(label_rules(result.mode).set_index("label"))
        st.caption("Each rule reads a head's corpus means; a head can carry several labels.")


def choose_head(result: CorpusResult, view: ViewState) -> tuple[int, int]:
    """The head the examples and the global view are about (the view's layer and head)."""
    layer_column, head_column = st.columns(2)
    with layer_column:
        layer = bound(st.selectbox, "Layer", "layer", options=list(range(result.num_layers)))
    with head_column:
        head = bound(
            st.selectbox,
            "Head",
            "head",
            value=view.head if isinstance(view.head, int) else 0,
            options=list(range(result.num_heads)),
        )
    return int(layer), int(head)


def examples(result: CorpusResult, model: LoadedModel, layer: int, head: int) -> None:
    """The sentences where a statistic of the head is strongest; a row opens on Attention."""
    names = list(result.statistics)
    statistic = st.selectbox(
        "Behaviour",
        names,
        index=names.index("to_previous") if "to_previous" in names else 0,
        key="corpus_statistic",
        format_func=label_from({s: s.replace("_", " ") for s in result.statistics}),
    )
    # Every stored example (not only those shown): ties are ordered, and counted, over all.
    found = result.examples(layer, head, statistic, TOP_K)
    if found.empty:
        st.info("No example yet: run the corpus first.")
        return
    tokens = [
        [t.text for t in encode_sentence(model, text, result.max_tokens).tokens]
        for text in found["sentence"]
    ]
    values = found["value"].to_numpy()
    order = tie_order(values, [len(t) for t in tokens])
    note = tie_note(values, name=statistic.replace("_", " "))
    found = found.iloc[order[:EXAMPLES_SHOWN]].reset_index(drop=True)
    shown_tokens = [tokens[i] for i in order[:EXAMPLES_SHOWN]]
    rows = corpus_example_rows(found, shown_tokens)
    st.caption(
        f"Strongest first; the number is {statistic.replace('_', ' ')} on that sentence. {note}"
    )
    every_row = all_rows_tie(statistic)
    for index, row in enumerate(rows.itertuples(index=False)):
        value, text, button = st.columns([1.3, 9, 2], vertical_alignment="center")
        value.markdown(f"**{row.value:.3f}**")
        text.markdown(plain(row.sentence))
        if every_row and round(row.value, TIE_DECIMALS) >= 1:
            text.caption(
                f"Every query row reaches {row.value:.3f} ({len(shown_tokens[index])} tokens): "
                "no single pair stands out."
            )
        elif row.pair:
            text.caption(plain(f"strongest pair (query → key): {row.pair}"))
        if button.button("Open", key=f"corpus_example_{index}", help="On the Attention page"):
            chosen = found.iloc[index]
            open_on_attention(
                result, layer, head, int(chosen["sentence_index"]), int(chosen["query"])
            )


def tie_order(values: Sequence[float], lengths: Sequence[int]) -> list[int]:
    """Indices of examples strongest first; values equal to `TIE_DECIMALS` decimals (a tie,
    as shown) longest sentence first: the same score over more tokens is more evidence."""
    rounded = [round(float(v), TIE_DECIMALS) for v in values]
    return sorted(range(len(rounded)), key=lambda i: (-rounded[i], -int(lengths[i]), i))


def tie_note(values: Sequence[float], name: str) -> str:
    """What the caption says about the stored examples (`values`, strongest first; the store
    keeps at most `TOP_K` per head and statistic) that tie with the strongest."""
    rounded = [round(float(v), TIE_DECIMALS) for v in values]
    if not rounded:
        return ""
    top = max(rounded)
    tied = rounded.count(top)
    if tied <= 1:
        return ""
    order = "listed longest sentence first: the same score over more tokens is more evidence."
    if tied == len(rounded) >= TOP_K:
        return (
            f"At least {tied} sentences tie at {name} {top:.3f} (the store keeps the "
            f"{TOP_K} strongest), {order}"
        )
    return f"{tied} sentences tie at {name} {top:.3f}, {order}"


def all_rows_tie(statistic: str) -> bool:
    """Whether a sentence value of 1 for `statistic` means every row it averages is 1 (a mean of
    shares: then no row, and no pair, is stronger than another)."""
    return "to_" in statistic


def open_typical(result: CorpusResult, layer: int, head: int) -> None:
    """A button opening the head on the Attention page with its most typical sentence."""
    if st.button("Open on the Attention page with its most typical sentence", key="corpus_open"):
        typical = result.typical_sentence(layer, head)
        if typical is None:
            st.info("No sentence measured yet.")
        else:
            open_on_attention(result, layer, head, typical[0], 0)


def global_view(result: CorpusResult, layer: int, head: int) -> None:
    """The joint 2-D embedding of the head's queries and keys over a sample of the corpus."""
    method_column, colour_column = st.columns(2)
    method = method_column.selectbox(
        "Embedding", available_projections(), key="corpus_projection", format_func=str.upper
    )
    colour = colour_column.segmented_control(
        "Colour by",
        ["role", "position"],
        default="role",
        required=True,
        key="corpus_colour",
        format_func=label_from({"role": "query / key", "position": "position"}),
    )
    try:
        frame = cache.corpus_global_view(result, layer, head, method, GLOBAL_POINTS)
    except AtlasError as error:
        show_error(str(error))
        return
    show_chart(global_view_chart(frame, colour=colour), theme="streamlit", width="stretch")
    st.caption(
        "Queries and keys scaled to the same mean norm and centred together (this changes no "
        "attention weight), so a query lies near the keys it attends to. Hover a point for its "
        f"token and sentence; scroll to zoom. At most {GLOBAL_POINTS // 2:,} tokens are sampled."
    )


def truncation_note(result: CorpusResult) -> None:
    if result.truncated:
        st.caption(
            f"{result.truncated:,} of {result.done:,} sentences were longer than "
            f"{result.max_tokens} tokens and were cut."
        )
