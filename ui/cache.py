"""Models and results, cached once per server process with one key builder.

Models live in `st.cache_resource` (two at most). Everything computed from a text lives in one
byte-bounded `ResultStore` shared by every session, under a key built by `store_key` from the
`Inputs` of a view (model, text, pair, target) and the few settings the computation reads. The
functions here take those small, hashable values only, never a result: download buttons and
callbacks that call them hold strings, so a session that is kept after its visitor left pins
no arrays (issue 12: results stay collectable).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

import core
from core import AttentionResult, LoadedModel, MethodRequest, MethodResult
from core.agreement import LEAVE_ONE_OUT, agreement_table, method_attribution, part_passes
from core.corpus import CorpusResult
from core.costs import ATTENTION, ROUTE_CONTRIBUTIONS, forward_multiply_adds
from core.display_matrix import (
    blank_causal,
    causal_display_mask,
    prepare_cross_display,
    prepare_display,
)
from core.exact import DENSE_BUDGET_BYTES
from core.families import CROSS, SELF
from core.images import gallery_zip
from core.long_views import (
    Detail,
    Overview,
    Reduce,
    detail_window,
    pooled_overview,
    query_row,
    whole_fits,
)
from core.pooling import pool_matrix
from core.tokens import token_labels
from server import admission
from server.errors import ServerBusyError
from server.settings import DeployPolicy
from ui.deploy import client_address, deploy_policy
from ui.state import ViewState
from ui.store import ResultStore

T = TypeVar("T")
WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")


def corpus_work() -> float:
    """A corpus computation runs the model over many sentences: always heavy."""
    return admission.HEAVY_MULTIPLY_ADDS


STORE_MEGABYTES_PUBLIC = 128
STORE_MEGABYTES_PRIVATE = 640
WHOLE_ATTENTION_BYTES = DENSE_BUDGET_BYTES
"""Largest whole `[layers, heads, n, n]` array a result builds; longer inputs are read in
pieces (`core.long_views`)."""


@dataclass(frozen=True)
class Inputs:
    """What a forward pass reads: the model's name and the texts (target "" = generate)."""

    model: str
    text: str
    pair: str = ""
    target: str = ""


def inputs_of(view: ViewState, model: LoadedModel | None = None) -> Inputs:
    """The `Inputs` of `view` (on `model`, when given: only encoder-decoders read a target).

    Other models ignore a target, so it must not split their cache entries; a blank target
    means "generate greedily", the same entry as "".
    """
    target = view.target if view.target.strip() else ""
    if model is not None and model.kind is not core.ModelKind.ENCODER_DECODER:
        target = ""
    return Inputs(
        model=model.name if model else view.model, text=view.text, pair=view.pair, target=target
    )


def store_key(kind: str, inputs: Inputs, *settings: Hashable) -> tuple[Hashable, ...]:
    """The one key builder of the result store: what, for which inputs, with which settings."""
    return (kind, inputs, *settings)


# Two models at most (the compare page shows two side by side): the two largest presets take
# ≈1.2 GB resident, half of a 2.7 GB Community Cloud machine (bench/preset_memory.py).
def cached_model(name: str) -> LoadedModel:
    """Model `name` under this visitor's policy (`_cached_model`)."""
    return _cached_model(name, deploy_policy())


@st.cache_resource(max_entries=2, show_spinner=False)
def _cached_model(name: str, policy: DeployPolicy) -> LoadedModel:
    from server.policy import load_model_for

    # Every page loads through here, so the deployment's allowlist, size cap, weight format and
    # token cap hold for all of them; a refused name raises and is never cached. The policy is
    # part of the key: a visitor on this machine (private mode) and one from the network
    # (public by default) must not share a model loaded without the public token cap.
    model = load_model_for(policy, name)
    _loaded.add((name, policy))
    return model


_loaded: set[tuple[str, DeployPolicy]] = set()
"""(name, policy) of the models `_cached_model` has loaded (possibly evicted since: then
`cached_model` loads it again, which `page_slot` accepts)."""


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """One store per server process for attention results and what is derived from them.

    A 512-token result of a 12 × 12 model is 151 MB: the private budget keeps about four. A
    public deployment reads at most 256 tokens (≤ 38 MB per result) and shares a 2.7 GB
    machine with two cached models (≈1.2 GB); its budget is small enough that the store is
    full within the first minute of traffic, so memory plateaus early (bench/soak.py).
    """
    megabytes = STORE_MEGABYTES_PUBLIC if deploy_policy().public else STORE_MEGABYTES_PRIVATE
    return ResultStore(max_bytes=megabytes * 2**20, ttl_seconds=3600)


Weigh = Callable[[], float]
"""Multiply-adds a computation will take, worked out only when it is not stored yet."""


def _stored(key: tuple[Hashable, ...], compute: Callable[[], T], weigh: Weigh | None = None) -> T:
    return result_store().get(key, functools.partial(admitted, compute, weigh))


def admitted(compute: Callable[[], T], weigh: Weigh | None = None) -> T:
    """`compute()` inside a slot of the process-wide admission limit (`server.admission`).

    `weigh()` gives its multiply-adds (`passes_of`), from which the limiter tells heavy work
    from ordinary: heavy work waits in its own line, one request per visitor, so an ordinary
    page never waits behind it. Only work that is not stored yet waits for a slot, so a
    visitor reopening a computed view never queues; one who has to wait is told where.
    """
    notice = st.empty()

    def queued(place: admission.Place) -> None:
        notice.info(waiting_message(place))

    heavy = weigh is not None and admission.is_heavy(weigh())
    slot = admission.slot("computation", queued, heavy=heavy, visitor=visitor())
    try:
        # Each admitted request gets its share of the cores; flow's solver would take two.
        with slot, core.flow.solver_threads(admission.threads_per_slot()):
            return compute()
    finally:
        notice.empty()


@contextlib.contextmanager
def page_slot(view: ViewState) -> Iterator[None]:
    """The whole page run in one heavy slot when the view's attention is heavy as a whole
    (`admission.is_heavy_page`): its drawing and exports, not only its computations, then
    wait their turn in the heavy line, one per visitor, and ordinary pages never wait for it.
    Other views run as ordinary work (`admission.ordinary_work`: heavy work pauses for them;
    their computations take their own slots)."""
    cells = 0.0
    # Only a model loaded already is weighed: a first load shows its own spinner on the page.
    with contextlib.suppress(Exception):  # a model that cannot load: the page says why
        if (view.model, deploy_policy()) not in _loaded:
            raise LookupError(view.model)
        model = cached_model(view.model)
        inputs = inputs_of(view, model)
        if is_attention_stored(inputs):
            n = len(attention(inputs).tokens)  # exact once tokenized
        else:
            n = estimated_tokens(inputs, model.max_length)
        cells = float(model.num_layers * model.num_heads * n * n)
    if not admission.is_heavy_page(cells):
        with admission.ordinary_work():  # heavy work pauses while it runs
            yield
        return
    notice = st.empty()

    def queued(place: admission.Place) -> None:
        notice.info(waiting_message(place))

    held = contextlib.ExitStack()
    try:
        held.enter_context(admission.slot("page", queued, heavy=True, visitor=visitor()))
    except ServerBusyError as error:  # waited too long: say so instead of drawing the page
        notice.error(str(error))
        st.stop()
    with held:
        notice.empty()
        _heavy_page.active = True
        try:
            yield
        finally:
            _heavy_page.active = False


_heavy_page = threading.local()
"""`active` while this thread runs a heavy page (`page_slot`), so its downloads are heavy too."""


def in_heavy_page() -> bool:
    """Whether the current page run is a heavy one (`page_slot`)."""
    return getattr(_heavy_page, "active", False)


def admitted_export(build: Callable[[], T], cells: int, from_heavy_page: bool = False) -> T:
    """A download's file, built in a heavy slot when it holds a heavy page's worth of cells or
    was offered by a heavy page (Streamlit builds it in a worker thread when the button is
    clicked): a heavy visitor's many downloads then wait their turn like its pages."""
    if not (from_heavy_page or admission.is_heavy_page(cells)):
        return build()
    with admission.slot("download", heavy=True, visitor=visitor()):
        return build()


def waiting_message(place: admission.Place) -> str:
    """Where a waiting visitor stands, in words."""
    if not place.heavy:
        ahead = "1 request" if place.position == 1 else f"{place.position} requests"
        return f"This shared server is busy: {ahead} ahead of yours. It starts shortly…"
    if place.own_in_flight:
        return (
            "Your other heavy computation (another tab, or an earlier click) is still running; "
            "this one starts when it is done. Ordinary pages are not held up meanwhile."
        )
    ahead = "1 from another visitor" if place.position == 1 else f"{place.position} from others"
    return (
        f"This is heavy work, which this shared server runs a few at a time so that everyone's "
        f"pages stay quick: {ahead} ahead of yours. It starts when a place frees up…"
    )


def visitor() -> tuple[Hashable, ...]:
    """Who is asking: this session, and the client's address where the host passes one
    (Streamlit gives None for a visitor on this machine)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    address = client_address()
    return (
        ("session", context.session_id if context is not None else None),
        ("address", address) if address else None,
    )


def passes_of(inputs: Inputs, passes: float, tokens: int | None = None) -> Weigh:
    """A `Weigh` of `passes` forward passes of `inputs`' model over its text (`tokens`, or
    an estimate from the text's words when it has not been tokenized yet)."""

    def weigh() -> float:
        model = cached_model(inputs.model)
        n = tokens if tokens is not None else estimated_tokens(inputs, model.max_length)
        return passes * forward_multiply_adds(model.model.config, n)

    return weigh


def estimated_tokens(inputs: Inputs, cap: int) -> int:
    """Tokens of `inputs`' texts before tokenizing: words and punctuation marks, a third
    more for words cut into pieces, plus special tokens; at most `cap`."""
    pieces = sum(len(WORD_OR_MARK.findall(text)) for text in (inputs.text, inputs.pair))
    return min(cap, math.ceil(1.3 * pieces) + 3)


def _tokens_of(inputs: Inputs) -> int:
    return len(attention(inputs).tokens)


def _quietly(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # Truncation is reported on the result (`dropped_tokens`) and shown by the page.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.TruncationWarning)
        return function(*args, **kwargs)


def attention(inputs: Inputs) -> AttentionResult:
    """`run_attention` for `inputs`, shared by every session (read-only arrays)."""
    return _stored(
        store_key("attention", inputs),
        lambda: _quietly(
            core.run_attention,
            cached_model(inputs.model),
            inputs.text,
            inputs.pair or None,
            target_text=inputs.target or None,
            top_k=10,
            budget=WHOLE_ATTENTION_BYTES,
        ),
        passes_of(inputs, ATTENTION.passes(1, 1)),
    )


def is_attention_stored(inputs: Inputs) -> bool:
    """Whether `attention(inputs)` would answer at once."""
    return store_key("attention", inputs) in result_store()


def overview(inputs: Inputs, layer: int, head: int | None, reduce: Reduce) -> Overview:
    """`core.long_views.pooled_overview` of the self stack (head None: mean of heads)."""
    return _stored(
        store_key("overview", inputs, layer, head, reduce),
        lambda: pooled_overview(attention(inputs), layer, head, reduce=reduce),
    )


def detail(inputs: Inputs, layer: int, head: int | None, row: int, col: int) -> Detail:
    """`core.long_views.detail_window` of the self stack from rows `row`, columns `col`."""
    return _stored(
        store_key("detail", inputs, layer, head, row, col),
        lambda: detail_window(attention(inputs), layer, head, row, col),
    )


def row(inputs: Inputs, layer: int, head: int | None, query: int) -> np.ndarray:
    """`core.long_views.query_row` of the self stack: float32 `[keys]`, NaN not computed."""
    return _stored(
        store_key("row", inputs, layer, head, query),
        lambda: query_row(attention(inputs), layer, head, query),
    )


def method_settings(
    method: str, layer: int | None, rows: tuple[int, ...] | None
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """The (layers, rows) a method's computation reads, from its registry parameters.

    Methods that are cheap for all layers and rows declare neither, so one entry serves every
    layer; flow declares both and is computed (and stored) per layer and row set. `layer`
    None asks for every layer (a contribution graph reads them all).
    """
    declared = {parameter.name for parameter in core.get_method(method).parameters}
    return (
        (layer,) if "layers" in declared and layer is not None else None,
        rows if "rows" in declared else None,
    )


def method_result(
    inputs: Inputs,
    method: str,
    stack: str = SELF,
    layer: int | None = 0,
    rows: tuple[int, ...] | None = None,
    progress: core.methods.Progress | None = None,
) -> MethodResult:
    """Method `method` (a registry name) for one stack of `inputs`' result (`layer` and
    `rows` as in `method_settings`)."""
    layers, rows = method_settings(method, layer, rows)
    model = None
    if core.get_method(method).needs is not core.methods.Needs.ATTENTIONS:
        model = cached_model(inputs.model)

    def compute() -> MethodResult:
        request = MethodRequest(
            result=attention(inputs),
            model=model,
            stack=stack,
            layers=layers,
            rows=rows,
            progress=progress,
        )
        return core.run_method(method, request)

    def weigh() -> float:
        n = _tokens_of(inputs)
        total = attention(inputs).pieces(stack).num_layers  # never the whole array
        own = core.get_method(method).cost.passes(
            n,
            total,
            rows=None if rows is None else len(rows),
            layers=None if layers is None else len(layers),
        )
        return passes_of(inputs, 1 + own, n)()

    return _stored(store_key("method", inputs, method, stack, layers, rows), compute, weigh)


def method_rows(
    inputs: Inputs,
    method: str,
    layer: int,
    rows: tuple[int, ...],
    progress: core.methods.Progress | None = None,
) -> np.ndarray:
    """Rows of `method`'s `layer` read in pieces at any length (its registry entry's
    `rows_at_length`, e.g. rollout), self stack: float64 `[len(rows), n]`."""
    entry = core.get_method(method)
    assert entry.rows_at_length is not None  # the page asks only methods that have it
    return _stored(
        store_key("method_rows", inputs, method, layer, rows),
        lambda: entry.rows_at_length(attention(inputs), rows, layer, progress),
    )


def is_stored(
    inputs: Inputs, method: str, stack: str, layer: int | None, rows: tuple[int, ...] | None
) -> bool:
    """Whether `method_result` would answer at once (no computation, no progress bar)."""
    layers, rows = method_settings(method, layer, rows)
    return store_key("method", inputs, method, stack, layers, rows) in result_store()


def head_stats(inputs: Inputs, stack: str = SELF) -> pd.DataFrame:
    """`head_statistics` of one self-attention stack, a row per head."""

    def compute() -> pd.DataFrame:
        result = attention(inputs)
        # The whole array where it fits (the grid builds it anyway), else read in pieces.
        held = result.stack(stack)[0] if whole_fits(result, stack) else result.pieces(stack)
        return core.head_statistics(held, result.stack_tokens(stack)[0])

    return _stored(store_key("head_stats", inputs, stack), compute)


def thumbnails(
    inputs: Inputs, stack: str, size: int, hide_special: bool = False, merge_words: bool = False
) -> np.ndarray:
    """Every head of one stack block-averaged to at most `size` × `size`: `[layers, heads, s, s']`.

    The display options hold as on the other pages: hidden tokens are left out and word pieces
    merged before the averaging. Cells a causal stack cannot see stay empty (NaN) in the block
    means too. A stack whose whole array is beyond the result's budget is pooled exactly in
    pieces (`CapturedStack.pooled_heads`), without the display options (the page says so).
    """

    def compute() -> np.ndarray:
        result = attention(inputs)
        if not whole_fits(result, stack):
            return result.pieces(stack).pooled_heads(size)[0]
        attentions, queries, keys = result.stack(stack)
        if result.is_causal(stack):
            attentions = blank_causal(attentions)
        if not (hide_special or merge_words):
            return pool_matrix(attentions, size)
        options = {"hide_special": hide_special, "merge_words": merge_words}
        if stack == CROSS:
            shown = prepare_cross_display(attentions, queries, keys, **options)
        else:
            shown = prepare_display(attentions, queries, **options)
        matrix = shown.matrix
        if result.is_causal(stack):  # the options filled the blanked cells with zeros
            matrix = np.where(causal_display_mask(shown.groups, shown.key_groups), np.nan, matrix)
        return pool_matrix(matrix, size)

    key = store_key("thumbnails", inputs, stack, size, hide_special, merge_words)
    return _stored(key, compute)


def comparison(inputs: Inputs, word: int, replacement: str) -> core.Comparison:
    """`compare_replacement` of the text's word `word` (two results: kept in the store)."""
    return _stored(
        store_key("comparison", inputs, word, replacement),
        lambda: core.compare_replacement(
            cached_model(inputs.model), inputs.text, word, replacement
        ),
        passes_of(inputs, 2),  # the text and the text with the word replaced
    )


def neuron_view(inputs: Inputs, layer: int, head: int, query: int) -> core.NeuronView:
    """Query and key vectors of one head for one query token (self-attention).

    Read from the queries and keys `attention(inputs)` captured (`core.neuron_view_of`): no
    forward pass of its own, so none is weighed here (`attention` weighs its pass). A result
    holding its attention as weights has no vectors to read; then a capturing pass runs.
    """

    def view() -> core.NeuronView:
        try:
            return core.neuron_view_of(attention(inputs), layer, head, query)
        except core.NeuronViewUnsupportedError:
            return _quietly(
                core.neuron_view,
                cached_model(inputs.model),
                inputs.text,
                layer,
                head,
                query,
                inputs.pair or None,
            )

    return _stored(store_key("neuron", inputs, layer, head, query), view)


def logit_lens(inputs: Inputs, position: int, top_k: int) -> pd.DataFrame:
    """`core.logit_lens` at `position`: every layer's top-`top_k` tokens there."""
    return _stored(
        store_key("logit_lens", inputs, position, top_k),
        lambda: core.logit_lens(cached_model(inputs.model), inputs.text, position, top_k),
        passes_of(inputs, 1),
    )


def route_contributions(
    inputs: Inputs, progress: core.methods.Progress | None = None
) -> core.RouteContributions:
    """`core.route_contributions`: every block's contributions, for the contribution graph
    at any position and threshold. Heavy work by its declared cost (`ROUTE_CONTRIBUTIONS`)."""
    model = cached_model(inputs.model)

    def weigh() -> float:
        n = _tokens_of(inputs)
        own = ROUTE_CONTRIBUTIONS.passes(n, model.num_layers, model.num_heads)
        return passes_of(inputs, 1 + own, n)()

    return _stored(
        store_key("route_contributions", inputs),
        lambda: _quietly(
            core.route_contributions, model, inputs.text, inputs.pair or None, progress
        ),
        weigh,
    )


def is_route_contributions_stored(inputs: Inputs) -> bool:
    """Whether `route_contributions` would answer at once (no computation, no progress bar)."""
    return store_key("route_contributions", inputs) in result_store()


def agreement_parts(inputs: Inputs) -> list[str]:
    """The parts of the agreement table, in order: leave-one-out, then every method."""
    return [LEAVE_ONE_OUT, *core.list_methods(cached_model(inputs.model))]


def agreement_part(
    inputs: Inputs,
    position: int,
    part: str,
    progress: core.methods.Progress | None = None,
) -> Any:
    """One part of the agreement table at `position`, stored on its own so that a stopped
    table keeps the parts done: the leave-one-out table (`core.leave_one_out`) or a method's
    (scores, description) (`method_attribution`)."""
    model = cached_model(inputs.model)
    if part == LEAVE_ONE_OUT:
        compute = functools.partial(core.leave_one_out, model, inputs.text, position, progress)
    else:
        compute = functools.partial(
            method_attribution, model, inputs.text, position, part, progress
        )

    def weigh() -> float:
        n = _tokens_of(inputs)
        return passes_of(inputs, part_passes(model, part, n), n)()

    return _stored(store_key("agreement_part", inputs, position, part), compute, weigh)


def is_agreement_part_stored(inputs: Inputs, position: int, part: str) -> bool:
    """Whether `agreement_part` would answer at once (no computation, no progress bar)."""
    return store_key("agreement_part", inputs, position, part) in result_store()


def agreement(inputs: Inputs, position: int, done_only: bool = False) -> pd.DataFrame | None:
    """Every method against leave-one-out at `position` (`agreement_table`).

    `done_only`: from the parts stored so far (None without the leave-one-out part); else
    every part, computing those missing.
    """
    parts = agreement_parts(inputs)
    if done_only:
        parts = [p for p in parts if is_agreement_part_stored(inputs, position, p)]
        if LEAVE_ONE_OUT not in parts:
            return None
    truth = agreement_part(inputs, position, LEAVE_ONE_OUT)
    attributions = {
        part: agreement_part(inputs, position, part) for part in parts if part != LEAVE_ONE_OUT
    }
    return agreement_table(truth, attributions)


def predictions_at(inputs: Inputs, position: int, top_k: int) -> list[list[core.Prediction]]:
    """Masked-word predictions with the token at `position` masked."""
    return _stored(
        store_key("predict_at", inputs, position, top_k),
        lambda: core.predict_masked(
            cached_model(inputs.model), inputs.text, top_k, position=position
        ),
        passes_of(inputs, 1),
    )


def gallery(
    inputs: Inputs,
    palette: str = "blue",
    raw_labels: bool = False,
    provenance: core.Provenance | None = None,
) -> bytes:
    """Every head of the text's self-attention as full-resolution PNGs in one ZIP.

    `palette` "blue" (each head to its own maximum) or "cs50" (the exercise's absolute grey);
    `raw_labels` draws the tokenizer's own pieces (``Ġsat``, ``##ding``) instead of marked text.
    """

    def compute() -> bytes:
        result = attention(inputs)
        labels = token_labels(result.tokens, "raw" if raw_labels else "marked")
        return gallery_zip(
            result.attentions,
            labels,
            model_name=inputs.model,
            palette=palette,  # type: ignore[arg-type]  # checked by gallery_zip
            provenance=provenance,
        )

    return _stored(store_key("gallery", inputs, palette, raw_labels, provenance), compute)


def generation(inputs: Inputs, count: int) -> AttentionResult:
    """A causal model's greedy continuation of the text (≤ 20 tokens), with its attention."""
    return _stored(
        store_key("generation", inputs, count),
        lambda: _quietly(
            core.generate_with_attention, cached_model(inputs.model), inputs.text, count
        ),
        passes_of(inputs, 1 + count),  # one pass per new token, and the text's own
    )


def corpus_global_view(
    result: CorpusResult, layer: int, head: int, method: str, max_points: int
) -> pd.DataFrame:
    """`core.corpus.global_view` of one head over the sentences of a stored corpus run (kept
    under its run id, which is the visitor's own for a visitor's own corpus)."""

    def compute() -> pd.DataFrame:
        from core.corpus import global_view

        return global_view(
            cached_model(result.model_name),
            result.sentences(),
            layer,
            head,
            method=method,
            max_tokens=result.max_tokens,
            max_points=max_points,
        )

    settings = (result.run_id, layer, head, method, result.max_tokens, max_points)
    inputs = Inputs(result.model_name, "")
    return _stored(store_key("corpus_global_view", inputs, *settings), compute, corpus_work)


def is_encoder_decoder(name: str) -> bool:
    """Whether model `name` is encoder-decoder, from its preset or its config (a few KB).

    The sidebar asks before the page has loaded the model. A name that cannot be read (refused,
    missing, offline) answers False; the page reports the problem when it loads the model.
    """
    preset = core.PRESETS.get(name)
    if preset is not None:
        return preset.kind is core.ModelKind.ENCODER_DECODER
    return config_is_encoder_decoder(name)


# Failures are cached too (as False), for a short while: an unreachable Hub id would otherwise
# cost the sidebar the loader's network timeout on every rerun.
@st.cache_data(max_entries=32, ttl="10m", show_spinner=False)
def config_is_encoder_decoder(name: str) -> bool:
    from core.models import detect_kind, load_config
    from server.policy import check_model_allowed

    try:
        check_model_allowed(deploy_policy(), name)
        return detect_kind(load_config(name)) is core.ModelKind.ENCODER_DECODER
    except Exception:  # any failure is the page's to report, with the loader's message
        return False
