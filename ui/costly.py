"""Costly methods: chosen rows, a progress bar in tokens, and Stop.

A method that declares a "layers" parameter costs enough per layer that the page computes the
one layer shown, with a progress bar and Stop (`ui.stoppable`). Flow also declares "rows": it
is computed in chunks of rows, each kept in the result store as it finishes, so Stop (or any
other click, which interrupts the run) keeps every finished chunk, and the page draws the rows
computed so far. Value zeroing is one piece (each zeroed token moves every row, and rows are
normalised once all are known): Stop keeps nothing half-made, and Continue starts it again.
The Explain page's contribution graph asks for every layer at once (`layer=None`) through the
same path. Other methods are computed at once.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core import MethodResult
from server.policy import check_method_request, method_progress
from ui import cache, session, stoppable
from ui.cache import Inputs
from ui.deploy import deploy_policy
from ui.widgets import bound, label_from, show_error

CHOSEN_BY_DEFAULT_ABOVE = core.flow.FULL_FLOW_DEFAULT_MAX_TOKENS
"""Longer inputs compute flow for the chosen tokens only unless asked for all: up to here the
full matrix meets the speed target at every layer (bench/RESULTS.md, flow)."""
CHUNK_ROWS = 8
"""Rows computed between two chances to stop; each chunk is kept once done."""
CONTROL = "method"
"""Names the Stop and Continue buttons of the Attention page's method (`ui.stoppable`)."""


def has_rows(method: str) -> bool:
    return any(p.name == "rows" for p in core.get_method(method).parameters)


def per_layer_cost(method: str) -> bool:
    """Whether `method` is computed one layer at a time, with progress and Stop."""
    return any(p.name == "layers" for p in core.get_method(method).parameters)


def check_budget(method: str, n: int, rows: tuple[int, ...] | None, layers: int) -> None:
    """The deployment's budget for `method` on `layers` layers of an `n`-token text, by the
    kind of cost its registry entry declares, checked before it starts."""
    check_method_request(
        deploy_policy(), core.get_method(method), n, None if rows is None else len(rows), layers
    )


def cost_note(method: str, n: int, rows: int, layers: int, total_layers: int) -> str:
    """ "About … forward passes" for a request, from the cost the registry declares."""
    passes = core.get_method(method).cost.passes(n, total_layers, rows=rows, layers=layers)
    return f"about {passes:,.0f} forward passes of the model" if passes >= 2 else ""


def chosen_rows(method: str, labels: list[str], token: int) -> tuple[int, ...] | None:
    """The row controls of a costly method: None for all rows, else the rows chosen."""
    if not has_rows(method):
        return None
    view = session.view()
    n = len(labels)
    # A public deployment computes a few rows per request: longer texts default to chosen
    # tokens there, so a link alone never asks for a full flow it would refuse.
    budget = deploy_policy().max_flow_rows
    above = CHOSEN_BY_DEFAULT_ABOVE if budget is None else min(CHOSEN_BY_DEFAULT_ABOVE, budget)
    only_some = bound(
        st.toggle,
        f"Compute {core.get_method(method).label} only for chosen tokens",
        "flow_chosen",
        value=view.flow_chosen if view.flow_chosen is not None else n > above,
        help="Its work grows with every token computed (one maximum-flow problem per token "
        "pair for flow); limiting rows is faster.",
    )
    if not only_some:
        return None
    rows = bound(
        st.multiselect,
        "Tokens to compute it for",
        "rows",
        value=list(view.rows if view.rows is not None else (token,)),
        options=list(range(n)),
        format_func=label_from([f"{i}: {label}" for i, label in enumerate(labels)]),
    )
    return tuple(sorted(rows))


def scores(
    inputs: Inputs,
    method: str,
    stack: str,
    layer: int | None,
    rows: tuple[int, ...] | None,
    n: int,
) -> MethodResult | None:
    """`method` for one layer (None: every layer) and `rows` (None: all), computed in
    stoppable chunks.

    Returns the scores with every computed row (others NaN), or None when nothing is computed
    or the computation was refused or failed (the page then shows why).
    """
    try:
        return _scores(inputs, method, stack, layer, rows, n)
    except core.AtlasError as error:  # a budget, a busy server, a method the model refuses
        show_error(str(error))
        return None


def _scores(
    inputs: Inputs,
    method: str,
    stack: str,
    layer: int | None,
    rows: tuple[int, ...] | None,
    n: int,
) -> MethodResult | None:
    if not per_layer_cost(method):
        return cache.method_result(inputs, method, stack, layer)
    if has_rows(method):
        wanted = tuple(range(n)) if rows is None else rows
        if not wanted:
            st.info("Choose at least one token.")
            return None
        chunks: list[tuple[int, ...] | None] = [
            wanted[i : i + CHUNK_ROWS] for i in range(0, len(wanted), CHUNK_ROWS)
        ]
    else:
        wanted, chunks = tuple(range(n)), [None]  # one piece: every row of the layer
    check_budget(method, n, rows, _layers(inputs, stack, layer))
    missing = [c for c in chunks if not cache.is_stored(inputs, method, stack, layer, c)]
    request = (inputs, method, stack, layer, wanted)
    if missing and stoppable.stopped(CONTROL, request):
        done = len(wanted) - _rows_in(missing, n)
        whole = "" if has_rows(method) else " It is computed in one piece: nothing was kept."
        st.info(f"Stopped: {done} of {len(wanted)} tokens done.{whole}")
        return _merge(inputs, method, stack, layer, chunks, missing)
    if missing:
        # A click interrupts this run at its next Streamlit call; the chunks done stay stored.
        stoppable.stop_button(
            CONTROL,
            request,
            help="Stops after the tokens being computed and keeps what is done."
            if has_rows(method)
            else "Stops now; it is computed in one piece, so nothing of it is kept.",
        )
        _compute(inputs, method, stack, layer, missing, n)
    return _merge(inputs, method, stack, layer, chunks, [])


def _layers(inputs: Inputs, stack: str, layer: int | None) -> int:
    """How many layers a request computes: one, or (`layer` None) all of the stack's."""
    return 1 if layer is not None else cache.attention(inputs).pieces(stack).num_layers


def _rows_in(chunks: list[tuple[int, ...] | None], n: int) -> int:
    return sum(n if chunk is None else len(chunk) for chunk in chunks)


def _compute(
    inputs: Inputs,
    method: str,
    stack: str,
    layer: int | None,
    missing: list[tuple[int, ...] | None],
    n: int,
) -> None:
    entry = core.get_method(method)
    # Every layer: the work is each token in each layer, and the bar counts both.
    layers = _layers(inputs, stack, layer)
    unit = "tokens" if layers == 1 else "tokens × layers"
    rows = _rows_in(missing, n)
    note = cost_note(method, n, rows, layers, cache.attention(inputs).pieces(stack).num_layers)
    if note:
        st.caption(f"This request of {entry.label} is {note}.")
    bar = stoppable.ProgressBar(entry.label, rows * layers, unit=unit)
    # One time budget for the whole request across its chunks, where the registry says the
    # method's cost is per row (public mode).
    within_budget = method_progress(deploy_policy(), entry)
    for chunk in missing:
        size = (n if chunk is None else len(chunk)) * layers
        progress = bar.part(size, check=within_budget)
        cache.method_result(inputs, method, stack, layer, chunk, progress)
    bar.close()


def _merge(
    inputs: Inputs,
    method: str,
    stack: str,
    layer: int | None,
    chunks: list[tuple[int, ...] | None],
    missing: list[tuple[int, ...] | None],
) -> MethodResult | None:
    """One result whose layer holds every finished chunk's rows (the rest NaN)."""
    done = [c for c in chunks if c not in missing]
    if not done:
        return None
    parts = [cache.method_result(inputs, method, stack, layer, c) for c in done]
    if len(parts) == 1 and len(chunks) == 1:
        return parts[0]
    per_layer = np.full_like(parts[0].per_layer, np.nan)
    layers = slice(None) if layer is None else layer
    for chunk, part in zip(done, parts, strict=True):
        rows = list(chunk or ())
        per_layer[layers, rows] = part.per_layer[layers, rows]
    first = parts[0]
    return MethodResult(
        method=first.method,
        stack=first.stack,
        tokens=first.tokens,
        key_tokens=first.key_tokens,
        per_layer=per_layer,
        rollout=per_layer,
        layers_computed=first.layers_computed,
        accumulated=first.accumulated,
        notes=first.notes,
    )
