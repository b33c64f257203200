"""Parts of the Long context page: the head map, the needle explorer and the ablation check.

The computations are `core.sink_profile`, `core.retrieval_scores` (one depth at a time, so
that Stop keeps the depths done) and `core.ablation_controls`, `core.ablate_answer` and
`core.ablate_heads`; here they are stored in the shared result store per (inputs, settings),
admitted by the cost `core.costs` declares for them (a needle run on a real model is heavy
work), drawn, and exported with their provenance. Which paper each measure follows and where
it departs: docs/long-context.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

import core
from core import AtlasError, LoadedModel, ModelKind
from core.charts._common import PAD, point_selection
from core.corpus import BUNDLED_CORPORA, bundled_corpus
from core.costs import ABLATION, NEEDLE_DEPTH, SINK_PROFILE
from core.export import csv_with_provenance, json_with_provenance
from core.families import SELF
from core.retrieval import needle_input
from ui import cache, stoppable
from ui.cache import Inputs
from ui.head_grid import opened_head
from ui.layout import PAGE_PX
from ui.page import Page, open_head
from ui.state import MAX_ABLATE_K, MAX_HAYSTACK_TOKENS, MAX_SINK_WINDOW, MIN_HAYSTACK_TOKENS
from ui.text import plain
from ui.widgets import bound, export_buttons, file_stem, label_from, show_chart, show_error

T = TypeVar("T")
NEEDLE_CONTROL = "needle"
"""Names the needle run's Stop and Continue buttons (`ui.stoppable`)."""
ABLATION_CONTROL = "ablation"
MEASURE_LABELS = {
    "first_token_share": "First-token share",
    "is_sink": "Sink head (first-token share > ε)",
    "local_share": "Local share (last window keys)",
    "entropy_without_first": "Entropy without the first token (bits)",
    "retrieval": "Retrieval score (mean over depths)",
}
HAYSTACK_LABELS = {
    **{name: f"Bundled corpus ({name.capitalize()})" for name in BUNDLED_CORPORA},
    "text": "The sidebar's text",
}
DEPTH_CHOICES = tuple(round(step / 10, 1) for step in range(11))
SHORT_TEXT = 64
"""Below this many tokens even an evenly spread head has a large first-token share
(docs/long-context.md): the page says so."""
TOP_HEADS = 16
"""Heads drawn in the heads × depths chart (the export has every head)."""
ROW_PX = 22
"""A row of a chart with a label per row: Vega hides labels closer than about 20 px."""
SETS = {
    "retrieval": "top retrieval heads",
    "random": "random heads (same layers)",
    "sinks": "sink heads",
}
"""The ablation's three head sets (`core.ablation_controls`), as the page names them."""
YOUR_TEXT = "your text"
HEAD_MAP_KEY = "head_map"
OPEN_HEAD = "open_head"
"""The head map's click selection (a Vega-Lite point parameter): the head it names opens on
the Attention page, as a click on the overview's grid does."""
LEGEND_PX = 150
"""Room a chart keeps on its right for a legend with its title."""
PLOT_PX = PAGE_PX - LEGEND_PX - 60
"""Plot width of a chart with an axis on its left and a legend on its right: the whole chart
stays inside the page's column at 1024 px (the e2e layout test measures it)."""


def _stored(key: tuple[Hashable, ...], compute: Callable[[], T], weigh: cache.Weigh | None) -> T:
    """`compute()` once per key in the shared store, admitted by its weight (`ui.cache`)."""
    return cache.result_store().get(key, functools.partial(cache.admitted, compute, weigh))


@contextlib.contextmanager
def _with_stop(name: str, request: Hashable, note: str) -> Iterator[None]:
    """A Stop button (`ui.stoppable`) shown while the body computes, gone once it is done."""
    slot = st.empty()
    with slot:
        stoppable.stop_button(name, request, help=note)
    yield
    slot.empty()


def is_causal(model: LoadedModel) -> bool:
    return model.kind is ModelKind.CAUSAL_LM


def not_causal_notice(page: Page, what: str) -> None:
    st.info(
        f"{what} needs a causal language model answering a question; {plain(page.model.name)} "
        f"is a{'n' if page.model.kind.value[0] in 'aeiou' else ''} {page.model.kind.value} "
        "model. Type a causal model's Hub id or folder in the sidebar (GPT-2, Llama, Qwen2.5, "
        "Gemma …); the head map above reads every model."
    )


# ------------------------------------------------------------------ head map
def profile(inputs: Inputs, epsilon: float, window: int) -> pd.DataFrame:
    """`core.sink_profile` of the text's self-attention (one row per head)."""
    result = cache.attention(inputs)
    n = len(result.tokens)
    passes = SINK_PROFILE.passes(n, result.pieces(SELF).num_layers)
    return _stored(
        cache.store_key("sink_profile", inputs, epsilon, window),
        lambda: core.sink_profile(cache.attention(inputs), epsilon, window),
        cache.passes_of(inputs, passes, n),
    )


def head_map_panel(page: Page, needle: Needle | None) -> pd.DataFrame | None:
    """The head map of the sidebar's text, coloured by the measure chosen (the retrieval score
    once `needle`'s search is done); its profile."""
    st.subheader("Head map: sinks, local and retrieval heads")
    view = page.view
    retrieval = needle_done(needle) if needle is not None else None
    measures = [m for m in MEASURE_LABELS if m != "retrieval" or retrieval is not None]
    chosen = view.sink_measure if view.sink_measure in measures else measures[0]
    pick, threshold, width = st.columns([1.6, 1.2, 1.2], vertical_alignment="bottom")
    with pick:
        measure = bound(
            st.selectbox,
            "Colour heads by",
            "sink_measure",
            value=chosen,
            options=measures,
            format_func=label_from(MEASURE_LABELS),
            help="Gu et al. 2024's first-token share α₁ and sink heads, the share of the recent "
            "window (StreamingLLM, DuoAttention's streaming heads), the entropy off the first "
            "token, and Wu et al. 2024's retrieval score once the needle search below has run.",
        )
    with threshold:
        epsilon = bound(
            st.number_input,
            "Sink threshold ε",
            "sink_epsilon",
            min_value=0.0,
            max_value=0.99,
            step=0.05,
            help="A head is a sink head when its first-token share exceeds ε (Gu et al.: 0.3).",
        )
    with width:
        window = bound(
            st.number_input,
            "Local window",
            "sink_window",
            min_value=1,
            max_value=MAX_SINK_WINDOW,
            step=16,
            help="Keys t − window + 1 … t count as local to query t.",
        )
    if view.sink_measure != measure:
        st.caption("The retrieval score appears here once the needle search below has run.")
    try:
        with st.spinner("Measuring every head…"):
            table = profile(page.inputs, float(epsilon), int(window))
    except AtlasError as error:
        show_error(str(error))
        return None
    shown = with_retrieval(table, retrieval)
    event = show_chart(
        head_map_chart(shown, measure, float(epsilon)),
        theme="streamlit",
        width="content",
        on_select="rerun",
        key=HEAD_MAP_KEY,
    )
    opened = clicked_head(event, table)
    if opened is not None:
        open_head(*opened)
    n = len(page.result.tokens)
    sinks = int(table["is_sink"].sum())
    st.caption(
        f"{sinks} of {len(table)} heads are sink heads (first-token share > ε = {epsilon:.2f}) "
        f"on this {n:,}-token text; local share over the last {int(window)} keys; rows are "
        "layers, columns heads, both counted from 0. Hover a head for all its measures; click "
        "it to open it on the Attention page."
    )
    if n < SHORT_TEXT:
        st.info(
            f"This text has {n} tokens: on short texts even a head that spreads its weight "
            f"evenly has a large first-token share (0.41 at 6 tokens, 0.07 at 64), so read sink "
            f"heads on a text of at least {SHORT_TEXT} tokens (paste one in the sidebar)."
        )
    settings = {"epsilon": float(epsilon), "window": int(window)}
    export_buttons(
        "Head measures",
        csv=functools.partial(_profile_export, page.inputs, settings, needle, "csv"),
        json=functools.partial(_profile_export, page.inputs, settings, needle, "json"),
        stem=file_stem("sink_profile", _short(page.model.name), f"eps{epsilon:g}", f"w{window}"),
    )
    return table


def clicked_head(event: Any, table: pd.DataFrame) -> tuple[int, int] | None:
    """`(layer, head)` the visitor clicked on the head map of `table` (`st.altair_chart`'s
    selection `event`), else None: an empty selection, or anything that is no head of the map
    (`ui.head_grid.opened_head`, the overview grid's rule), opens nothing."""
    picked = (getattr(event, "selection", None) or {}).get(OPEN_HEAD)
    if not isinstance(picked, list) or len(picked) != 1:
        return None
    layers, heads = int(table["layer"].max()) + 1, int(table["head"].max()) + 1
    return opened_head(picked[0], layers, heads)


def with_retrieval(table: pd.DataFrame, retrieval: pd.DataFrame | None) -> pd.DataFrame:
    """The profile with a `retrieval` column (mean score over depths) when there is a run."""
    if retrieval is None:
        return table
    mean = retrieval.groupby(["layer", "head"], as_index=False)["score"].mean()
    merged = table.merge(mean.rename(columns={"score": "retrieval"}), on=["layer", "head"])
    merged.attrs = {}
    return merged


def head_map_chart(table: pd.DataFrame, measure: str, epsilon: float) -> alt.Chart:
    """Layers × heads, one cell per head coloured by `measure` (a column of `table`)."""
    layers, heads = int(table["layer"].max()) + 1, int(table["head"].max()) + 1
    cell = max(8, min(36, (PAGE_PX - LEGEND_PX - 40) // heads))
    data = table.copy()
    data.attrs = {}
    data["sink"] = np.where(data["is_sink"], "sink", "not a sink")
    if measure == "is_sink":
        color = alt.Color(
            "sink:N",
            title=f"first-token share > {epsilon:.2f}",
            scale=alt.Scale(domain=["sink", "not a sink"], scheme="tableau10"),
            legend=alt.Legend(orient="right"),
        )
    else:
        domain = None if measure == "entropy_without_first" else [0, 1]
        color = alt.Color(
            f"{measure}:Q",
            title=MEASURE_LABELS[measure].split(" (")[0],
            scale=alt.Scale(scheme="viridis", domain=domain),
            legend=alt.Legend(orient="right", gradientLength=min(160, cell * layers)),
        )
    tooltip = [
        alt.Tooltip("layer:O"),
        alt.Tooltip("head:O"),
        alt.Tooltip("first_token_share:Q", format=".3f", title="first-token share"),
        alt.Tooltip("sink:N"),
        alt.Tooltip("local_share:Q", format=".3f", title="local share"),
        alt.Tooltip("entropy_without_first:Q", format=".2f", title="entropy without first"),
    ]
    if "retrieval" in data:
        tooltip.append(alt.Tooltip("retrieval:Q", format=".3f", title="retrieval score"))
    return (
        alt.Chart(data, title=MEASURE_LABELS[measure])
        .mark_rect(cursor="pointer")
        .encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("layer:O", title="layer"),
            color=color,
            tooltip=tooltip,
        )
        .add_params(point_selection(OPEN_HEAD, ["layer", "head"]))
        .properties(autosize=PAD, width=cell * heads, height=cell * layers)
    )


# ------------------------------------------------------------------ the needle
@dataclass(frozen=True)
class Needle:
    """One needle search: what `core.retrieval_scores` reads (small, hashable)."""

    model: str
    haystack: str
    needle: str
    question: str
    depths: tuple[float, ...]

    def key(self, depth: float) -> tuple[Hashable, ...]:
        return cache.store_key(
            "needle", Inputs(self.model, self.haystack), self.needle, self.question, depth
        )

    def settings(self) -> dict[str, Any]:
        return {
            "needle": self.needle,
            "question": self.question,
            "depths": list(self.depths),
            "haystack_sha256": hashlib.sha256(self.haystack.encode()).hexdigest(),
        }


def haystack_text(model: LoadedModel, source: str, text: str, tokens: int) -> str:
    """The haystack: the sidebar's `text`, or the first sentences of a bundled corpus making
    about `tokens` tokens (whole sentences, at least one)."""
    if source not in BUNDLED_CORPORA:
        return text

    def build() -> str:
        taken, count = [], 0
        for sentence in bundled_corpus(source):
            if taken and count >= tokens:
                break
            taken.append(sentence)
            count += len(model.tokenizer(" " + sentence, add_special_tokens=False)["input_ids"])
        return " ".join(taken)

    return _stored(cache.store_key("haystack", Inputs(model.name, ""), source, tokens), build, None)


def needle_depth(needle: Needle, depth: float, progress: Any = None) -> pd.DataFrame:
    """`core.retrieval_scores` at one depth, stored on its own (Stop keeps the depths done)."""
    model = cache.cached_model(needle.model)

    def weigh() -> float:
        entry = needle_input(model, needle.haystack, needle.needle, needle.question, depth)
        n = len(entry["input_ids"])
        passes = NEEDLE_DEPTH.passes(n, model.num_layers)
        return cache.passes_of(Inputs(needle.model, needle.haystack), passes, n)()

    def compute() -> pd.DataFrame:
        return core.retrieval_scores(
            model, needle.haystack, needle.needle, needle.question, (depth,), progress=progress
        )

    return _stored(needle.key(depth), compute, weigh)


def needle_done(needle: Needle, complete: bool = True) -> pd.DataFrame | None:
    """The depths stored so far as one table (their inputs in `attrs`); None if none is, or
    (`complete`) if some is missing."""
    store = cache.result_store()
    parts = [needle_depth(needle, d) for d in needle.depths if needle.key(d) in store]
    if not parts or (complete and len(parts) < len(needle.depths)):
        return None
    table = pd.concat(parts, ignore_index=True)
    table.attrs["inputs"] = [entry for part in parts for entry in part.attrs["inputs"]]
    return table


def needle_controls(page: Page) -> Needle | None:
    """The haystack, needle, question and depths controls; the search they ask for."""
    view = page.view
    source = bound(
        st.radio,
        "Haystack",
        "haystack",
        options=list(HAYSTACK_LABELS),
        format_func=label_from(HAYSTACK_LABELS),
        horizontal=True,
        help="The text the needle is hidden in: the first sentences of the bundled corpus, "
        "or your own text from the sidebar.",
    )
    if source in BUNDLED_CORPORA:
        bound(
            st.number_input,
            "Haystack length (tokens, whole sentences)",
            "haystack_tokens",
            min_value=MIN_HAYSTACK_TOKENS,
            max_value=MAX_HAYSTACK_TOKENS,
            step=100,
            help=f"{page.model.name} reads at most {page.model.max_length:,} tokens: haystack, "
            "needle, question and the answer together.",
        )
    bound(st.text_input, "Needle (a sentence hidden in the haystack)", "needle")
    bound(st.text_input, "Question (asked after the haystack)", "question")
    depths = bound(
        st.multiselect,
        "Depths (share of the haystack before the needle)",
        "depths",
        value=list(page.view.depths),
        options=sorted(set(DEPTH_CHOICES) | set(view.depths)),
        help="0 puts the needle first, 1 last; each depth is one input and one forward pass.",
    )
    if not depths:
        st.info("Choose at least one depth.")
        return None
    view = page.view
    try:
        haystack = haystack_text(page.model, view.haystack, view.text, view.haystack_tokens)
    except AtlasError as error:
        show_error(str(error))
        return None
    return Needle(page.model.name, haystack, view.needle, view.question, tuple(depths))


def needle_panel(page: Page) -> Needle | None:
    """The needle explorer: controls, the run (progress, Stop) and its charts; the search,
    once every depth of it is done (`needle_done` has its scores), else None."""
    st.subheader("Needle in a haystack: retrieval heads")
    if not is_causal(page.model):
        not_causal_notice(page, "The needle search")
        return None
    needle = needle_controls(page)
    if needle is None:
        return None
    if needle.needle.strip() and needle.needle.strip() in needle.haystack:
        st.warning(
            "The needle's sentence already occurs in the haystack: only copies from the "
            "inserted needle count, but the model may answer from the other one."
        )
    run = bound(
        st.toggle,
        "Find the retrieval heads",
        "needle_run",
        help="One capturing forward pass per depth over haystack + needle + question + the "
        "needle again as the answer (teacher-forced). A head copies an answer token when its "
        "largest weight falls on that token in the needle (Wu et al. 2024).",
    )
    if not run:
        st.caption(
            "Hides the needle at each depth of the haystack, asks the question, and scores "
            "every head by the share of the answer's tokens it copies from the needle; it also "
            "shows where the needle sits and how probable the answer is at each depth."
        )
        return None
    try:
        _run_needle(page, needle)
        table = needle_done(needle, complete=False)
    except AtlasError as error:
        show_error(str(error))
        return None
    if table is None:
        return None
    needle_results(page, needle, table)
    return needle if len(table.attrs["inputs"]) == len(needle.depths) else None


def _run_needle(page: Page, needle: Needle) -> None:
    """Every missing depth, each stored as it finishes, under one progress bar with Stop."""
    store = cache.result_store()
    missing = [d for d in needle.depths if needle.key(d) not in store]
    if not missing:
        return
    if stoppable.stopped(NEEDLE_CONTROL, needle):
        done = len(needle.depths) - len(missing)
        st.info(f"Stopped: {done} of {len(needle.depths)} depths done; they are shown below.")
        return
    # Checked before any pass: a haystack too long for the model is said at once.
    longest = max(
        len(
            needle_input(page.model, needle.haystack, needle.needle, needle.question, d)[
                "input_ids"
            ]
        )
        for d in missing
    )
    if longest > page.model.max_length:
        raise core.InputTooLongError(
            f"Haystack, needle, question and answer come to {longest:,} tokens, but "
            f"{page.model.name} reads at most {page.model.max_length:,}: use a shorter haystack."
        )
    note = "Stops after the depth being computed and keeps the depths done."
    with _with_stop(NEEDLE_CONTROL, needle, note):
        bar = stoppable.ProgressBar("the needle search", 2 * len(missing), unit="steps")
        for depth in missing:
            step = f"depth {depth:g}, {needle.depths.index(depth) + 1} of {len(needle.depths)}"
            needle_depth(needle, depth, bar.part(2, step=step))
        bar.close()


def needle_results(page: Page, needle: Needle, table: pd.DataFrame) -> None:
    """Heads × depths, the needle's place in each input, the answer's probability per depth."""
    show_chart(top_heads_chart(table), theme="streamlit", width="content")
    st.caption(
        f"The {min(TOP_HEADS, table.groupby(['layer', 'head']).ngroups)} heads with the best "
        "retrieval score averaged over the depths (L = layer, H = head): the share of the "
        "answer's tokens each copies from the needle. Wu et al. call a head a retrieval head "
        "from 0.1 on, averaged over many needles; the export holds every head."
    )
    inputs = pd.DataFrame(_input_rows(table.attrs["inputs"]))
    show_chart(position_chart(table.attrs["inputs"]), theme="streamlit", width="content")
    show_chart(probability_chart(inputs), theme="streamlit", width="content")
    st.caption(
        "Answer probability: the geometric mean probability of the answer's tokens, each given "
        "everything before it (teacher-forced). A dip in the middle depths is “lost in the "
        "middle”."
    )
    st.dataframe(inputs, hide_index=True, width="stretch")
    export_buttons(
        "Retrieval scores",
        csv=functools.partial(_needle_export, needle, "csv"),
        json=functools.partial(_needle_export, needle, "json"),
        stem=file_stem("retrieval_scores", _short(page.model.name)),
    )


def _input_rows(entries: list[dict]) -> list[dict[str, Any]]:
    """One row per depth: where the needle is and how probable the answer is."""
    return [
        {
            "depth": entry["depth"],
            "depth reached": entry["haystack_before"] / max(1, entry["haystack_tokens"]),
            "input tokens": len(entry["input_ids"]),
            "needle tokens": f"{entry['needle'][0]}–{entry['needle'][1] - 1}",
            "answer tokens": f"{entry['answer'][0]}–{entry['answer'][1] - 1}",
            "answer probability": entry.get("answer_probability", math.nan),
        }
        for entry in entries
    ]


def top_heads_chart(table: pd.DataFrame) -> alt.Chart:
    """The best heads (mean score over depths) × depths, coloured by retrieval score."""
    mean = table.groupby(["layer", "head"], as_index=False)["score"].mean()
    top = mean.sort_values(["score", "layer", "head"], ascending=[False, True, True]).head(
        TOP_HEADS
    )
    data = table.merge(top[["layer", "head"]], on=["layer", "head"])
    data.attrs = {}
    data["label"] = "L" + data["layer"].astype(str) + " H" + data["head"].astype(str)
    order = ["L" + str(layer) + " H" + str(head) for layer, head in top[["layer", "head"]].values]
    depths = data["depth"].nunique()
    return (
        alt.Chart(data, title="Retrieval score: best heads × depths")
        .mark_rect()
        .encode(
            x=alt.X("depth:O", title="depth", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("label:N", title="head", sort=order, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "score:Q",
                title="retrieval score",
                scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                legend=alt.Legend(orient="right", gradientLength=min(160, ROW_PX * len(order))),
            ),
            tooltip=[
                alt.Tooltip("label:N", title="head"),
                alt.Tooltip("depth:Q"),
                alt.Tooltip("score:Q", format=".3f", title="retrieval score"),
            ],
        )
        .properties(
            autosize=PAD,
            width=min(PAGE_PX - LEGEND_PX - 60, 56 * depths),
            height=ROW_PX * len(order),
        )
    )


PARTS = ("haystack", "needle", "question", "answer")


def position_chart(entries: list[dict]) -> alt.Chart:
    """Each depth's input as a bar of its tokens: haystack, needle, question, answer."""
    rows = []
    for entry in entries:
        start, end = entry["needle"]
        answer_start, answer_end = entry["answer"]
        question_start = end + entry["haystack_tokens"] - entry["haystack_before"]
        spans = [
            ("haystack", 0, start),
            ("needle", start, end),
            ("haystack", end, question_start),
            ("question", question_start, answer_start),
            ("answer", answer_start, answer_end),
        ]
        rows += [
            {"depth": entry["depth"], "part": part, "start": a, "end": b}
            for part, a, b in spans
            if b > a
        ]
    data = pd.DataFrame(rows)
    return (
        alt.Chart(data, title="Where the needle is in each input")
        .mark_bar(height={"band": 0.7})
        .encode(
            x=alt.X("start:Q", title="token position"),
            x2="end:Q",
            y=alt.Y("depth:O", title="depth"),
            color=alt.Color(
                "part:N",
                title="part",
                scale=alt.Scale(domain=list(PARTS), scheme="tableau10"),
                legend=alt.Legend(orient="right"),
            ),
            tooltip=["depth:Q", "part:N", "start:Q", alt.Tooltip("end:Q", title="end (excl.)")],
        )
        .properties(autosize=PAD, width=PLOT_PX, height=max(60, 26 * len(entries)))
    )


def probability_chart(inputs: pd.DataFrame) -> alt.Chart:
    """The answer's probability at each depth."""
    base = alt.Chart(inputs).encode(
        x=alt.X("depth:Q", title="depth (share of the haystack before the needle)").scale(
            domain=[0, 1]
        ),
        y=alt.Y("answer probability:Q", title="answer probability"),
        tooltip=[
            "depth:Q",
            alt.Tooltip("answer probability:Q", format=".4f"),
            "needle tokens:N",
        ],
    )
    return (base.mark_line() + base.mark_point(filled=True, size=60)).properties(
        title="Answer probability per depth", width=PLOT_PX, height=180, autosize=PAD
    )


# ------------------------------------------------------------------ ablation
def ablated(
    needle: Needle, inputs: Inputs, kind: str, heads: tuple[tuple[int, int], ...]
) -> pd.DataFrame:
    """One ablation, stored: "answer" (`core.ablate_answer` over the needle's depths) or
    "text" (`core.ablate_heads` on the sidebar's text, its next token)."""
    model = cache.cached_model(inputs.model)
    if kind == "answer":
        key = cache.store_key("ablate_answer", Inputs(needle.model, needle.haystack), needle, heads)

        def compute() -> pd.DataFrame:
            entries = needle_done(needle).attrs["inputs"]
            return core.ablate_answer(model, entries, heads)

        tokens = max(len(e["input_ids"]) for e in needle_done(needle).attrs["inputs"])
        passes = ABLATION.passes(tokens, model.num_layers) * len(needle.depths)
        weigh = cache.passes_of(Inputs(needle.model, needle.haystack), passes, tokens)
    else:
        key = cache.store_key("ablate_heads", inputs, heads)

        def compute() -> pd.DataFrame:
            return core.ablate_heads(model, inputs.text, heads)

        weigh = cache.passes_of(inputs, ABLATION.passes(1, model.num_layers))
    return _stored(key, compute, weigh)


def ablation_panel(page: Page, needle: Needle | None, table: pd.DataFrame | None) -> None:
    """The erasure check: the three head sets of `core.ablation_controls` (from `needle`'s
    search and the head map's sink `table`) zeroed, their effects side by side."""
    st.subheader("Ablation: do these heads matter?")
    if not is_causal(page.model):
        not_causal_notice(page, "The ablation")
        return
    retrieval = needle_done(needle) if needle is not None else None
    if retrieval is None or table is None or needle is None:
        st.info(
            "Run the needle search above first (all its depths): the top retrieval heads and "
            "their random controls come from it."
        )
        return
    k_column, _ = st.columns([1, 2])
    with k_column:
        k = bound(
            st.number_input,
            "Heads per set (k)",
            "ablate_k",
            min_value=1,
            max_value=MAX_ABLATE_K,
            step=1,
            help="The k best retrieval heads, and as many random heads of the same layers.",
        )
    controls = core.ablation_controls(retrieval, table, k=int(k), seed=0)
    for name, label in SETS.items():
        heads = controls[name]
        named = ", ".join(f"L{layer} H{head}" for layer, head in heads) or "none"
        st.caption(f"**{label.capitalize()}** ({len(heads)}): {named}")
    run = bound(
        st.toggle,
        "Ablate the three head sets",
        "ablate",
        help="Zeroes each set's heads (their slice of the input to the output projection) and "
        "measures the answer's probability at each depth and the next token's on your text.",
    )
    if not run:
        st.caption(
            "Wu et al. 2024: zeroing the top retrieval heads breaks needle retrieval, zeroing "
            "as many random heads of the same layers does not. The sink heads (from the head "
            "map, ε above) are the third set."
        )
        return
    sets = {name: tuple(map(tuple, controls[name])) for name in SETS}
    try:
        _run_ablation(page, needle, sets)
        effects = ablation_effects(needle, page.inputs, sets)
    except AtlasError as error:
        show_error(str(error))
        return
    if effects is None:
        return
    show_chart(effects_chart(effects), theme="streamlit", width="content")
    st.caption(
        "Change in probability when each set is zeroed: at each depth, the answer's "
        "(geometric mean per token, teacher-forced); on your text, the probability of the "
        "token the model predicts after it. A set with no heads changes nothing."
    )
    st.dataframe(effects.drop(columns="heads"), hide_index=True, width="stretch")
    export_buttons(
        "Ablation effects",
        csv=functools.partial(_ablation_export, needle, page.inputs, sets, "csv"),
        json=functools.partial(_ablation_export, needle, page.inputs, sets, "json"),
        stem=file_stem("ablation", _short(page.model.name), f"k{k}"),
    )


def _pieces(sets: dict[str, tuple]) -> list[tuple[str, str]]:
    """(set, kind) of every ablation to compute; sets with no heads need none."""
    return [(name, kind) for name, heads in sets.items() if heads for kind in ("answer", "text")]


def _is_stored(needle: Needle, inputs: Inputs, kind: str, heads: tuple) -> bool:
    if kind == "answer":
        key = cache.store_key("ablate_answer", Inputs(needle.model, needle.haystack), needle, heads)
    else:
        key = cache.store_key("ablate_heads", inputs, heads)
    return key in cache.result_store()


def _run_ablation(page: Page, needle: Needle, sets: dict[str, tuple]) -> None:
    pieces = _pieces(sets)
    missing = [(n, k) for n, k in pieces if not _is_stored(needle, page.inputs, k, sets[n])]
    if not missing:
        return
    request = (needle, page.inputs, tuple(sets.items()))
    if stoppable.stopped(ABLATION_CONTROL, request):
        st.info(f"Stopped: {len(pieces) - len(missing)} of {len(pieces)} ablations done.")
        return
    note = "Stops after the ablation being computed and keeps those done."
    with _with_stop(ABLATION_CONTROL, request, note):
        bar = stoppable.ProgressBar("the ablations", len(missing), unit="ablations")
        for name, kind in missing:
            bar.part(1, what=f"{SETS[name]}, {'each depth' if kind == 'answer' else YOUR_TEXT}")
            ablated(needle, page.inputs, kind, sets[name])
        bar.close()


def ablation_effects(needle: Needle, inputs: Inputs, sets: dict[str, tuple]) -> pd.DataFrame | None:
    """One row per (set, input) computed: probability before and after, and the change."""
    rows = []
    for name, heads in sets.items():
        if heads and not all(_is_stored(needle, inputs, k, heads) for k in ("answer", "text")):
            continue  # stopped before this set: shown once it is done
        answer = ablated(needle, inputs, "answer", heads) if heads else None
        text = ablated(needle, inputs, "text", heads) if heads else None
        for index, depth in enumerate(needle.depths):
            before = answer["answer_probability"][index] if answer is not None else math.nan
            after = answer["answer_probability_ablated"][index] if answer is not None else math.nan
            rows.append(_effect(name, len(heads), f"depth {depth:g}", before, after))
        before = text["probability"][0] if text is not None else math.nan
        after = text["probability_ablated"][0] if text is not None else math.nan
        rows.append(_effect(name, len(heads), YOUR_TEXT, before, after))
    return pd.DataFrame(rows) if rows else None


def _effect(name: str, heads: int, where: str, before: float, after: float) -> dict[str, Any]:
    return {
        "set": SETS[name],
        "heads": heads,
        "input": where,
        "probability": float(before),
        "probability ablated": float(after),
        "change": float(after - before) if heads else 0.0,
    }


def effects_chart(effects: pd.DataFrame) -> alt.Chart:
    """The change each set makes, side by side at each input."""
    order = list(dict.fromkeys(effects["input"]))
    return (
        alt.Chart(effects, title="Effect of zeroing each head set")
        .mark_bar()
        .encode(
            x=alt.X("input:N", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("set:N", sort=list(SETS.values())),
            y=alt.Y("change:Q", title="change in probability"),
            color=alt.Color(
                "set:N",
                title="zeroed",
                sort=list(SETS.values()),
                scale=alt.Scale(scheme="tableau10"),
                legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=280),
            ),
            tooltip=[
                "set:N",
                "heads:Q",
                "input:N",
                alt.Tooltip("probability:Q", format=".4f"),
                alt.Tooltip("probability ablated:Q", format=".4f"),
                alt.Tooltip("change:Q", format="+.4f"),
            ],
        )
        .properties(autosize=PAD, width=PLOT_PX + 60, height=220)
    )


# ------------------------------------------------------------------ exports
def _short(model: str) -> str:
    return model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def _provenance(model: str, text: str, what: str, settings: dict[str, Any]) -> core.Provenance:
    """The export's provenance; its settings in the method field, so the CSV header says them."""
    described = ", ".join(f"{key}={value}" for key, value in settings.items())
    return core.Provenance(model=model, text=text, method=f"{what} ({described})")


def _written(frame: pd.DataFrame, prov: core.Provenance, settings: dict, fmt: str) -> str:
    frame = frame.copy()
    frame.attrs = {}
    if fmt == "csv":
        return csv_with_provenance(frame.to_csv(index=False), prov)
    rows = frame.to_dict(orient="records")
    return json_with_provenance({"settings": settings, "rows": rows}, prov)


def _profile_export(inputs: Inputs, settings: dict, needle: Needle | None, fmt: str) -> str:
    table = profile(inputs, settings["epsilon"], settings["window"])
    if needle is not None:
        table = with_retrieval(table, needle_done(needle))
        settings = {**settings, **needle.settings()}
    prov = _provenance(inputs.model, inputs.text, "sink_profile", settings)
    return _written(table, prov, settings, fmt)


def _needle_export(needle: Needle, fmt: str) -> str:
    table = needle_done(needle)
    settings = needle.settings()
    prov = _provenance(needle.model, needle.haystack, "retrieval_scores", settings)
    if fmt == "csv":
        return _written(table, prov, settings, fmt)
    entries = [{k: v for k, v in e.items() if k != "input_ids"} for e in table.attrs["inputs"]]
    payload = {"settings": settings, "inputs": entries, "rows": table.to_dict(orient="records")}
    return json_with_provenance(payload, prov)


def _ablation_export(needle: Needle, inputs: Inputs, sets: dict[str, tuple], fmt: str) -> str:
    settings = {
        **needle.settings(),
        **{f"{name}_heads": [list(h) for h in heads] for name, heads in sets.items()},
    }
    prov = _provenance(inputs.model, inputs.text, "head ablation", settings)
    return _written(ablation_effects(needle, inputs, sets), prov, settings, fmt)
