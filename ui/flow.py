"""Methods with a cost per row (flow): chosen rows, a progress bar in tokens, and Stop.

A costly method is computed in chunks of rows, each kept in the result store as it finishes:
Stop (or any other click, which interrupts the run) keeps every finished chunk, and the page
draws the rows computed so far. Methods without a "rows" parameter are computed at once.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

import core
from core import MethodResult
from core.deploy import check_flow_request, flow_progress_with_budget
from ui import cache, session
from ui.cache import Inputs
from ui.deploy import deploy_policy
from ui.widgets import bound, label_from, show_error

CHOSEN_BY_DEFAULT_ABOVE = core.flow.FULL_FLOW_DEFAULT_MAX_TOKENS
"""Longer inputs compute flow for the chosen tokens only unless asked for all: up to here the
full matrix meets the speed target at every layer (bench/RESULTS.md, flow)."""
CHUNK_ROWS = 8
"""Rows computed between two chances to stop; each chunk is kept once done."""
STOPPED_KEY = "atlas_stopped"


def has_rows(method: str) -> bool:
    return any(p.name == "rows" for p in core.get_method(method).parameters)


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
        help="Flow solves one maximum-flow problem per token pair; limiting rows is faster.",
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
    inputs: Inputs, method: str, stack: str, layer: int, rows: tuple[int, ...] | None, n: int
) -> MethodResult | None:
    """`method` for one layer and `rows` (None: all), computed in stoppable chunks.

    Returns the scores with every computed row (others NaN), or None when nothing is computed
    or the computation was refused or failed (the page then shows why).
    """
    try:
        return _scores(inputs, method, stack, layer, rows, n)
    except core.AtlasError as error:  # a budget, a busy server, a method the model refuses
        show_error(str(error))
        return None


def _scores(
    inputs: Inputs, method: str, stack: str, layer: int, rows: tuple[int, ...] | None, n: int
) -> MethodResult | None:
    if not has_rows(method):
        return cache.method_result(inputs, method, stack, layer)
    wanted = tuple(range(n)) if rows is None else rows
    if not wanted:
        st.info("Choose at least one token.")
        return None
    check_flow_request(deploy_policy(), n, None if rows is None else len(wanted))
    chunks = [wanted[i : i + CHUNK_ROWS] for i in range(0, len(wanted), CHUNK_ROWS)]
    missing = [c for c in chunks if not cache.is_stored(inputs, method, stack, layer, c)]
    request = (inputs, method, stack, layer, wanted)
    if missing and st.session_state.get(STOPPED_KEY) == request:
        if not st.button("Continue computing", key="flow_continue"):
            st.info(f"Stopped: {len(wanted) - _rows_in(missing)} of {len(wanted)} tokens done.")
            return _merge(inputs, method, stack, layer, chunks, missing)
        st.session_state.pop(STOPPED_KEY)
    if missing:
        # A click interrupts this run at its next Streamlit call; the chunks done stay stored.
        st.button(
            "Stop",
            key="flow_stop",
            on_click=_mark_stopped,
            args=(request,),
            help="Stops after the tokens being computed and keeps what is done.",
        )
        _compute(inputs, method, stack, layer, missing)
    return _merge(inputs, method, stack, layer, chunks, [])


def _mark_stopped(request: tuple) -> None:
    st.session_state[STOPPED_KEY] = request


def _rows_in(chunks: list[tuple[int, ...]]) -> int:
    return sum(len(chunk) for chunk in chunks)


def _compute(
    inputs: Inputs, method: str, stack: str, layer: int, missing: list[tuple[int, ...]]
) -> None:
    total_rows = _rows_in(missing)
    bar = st.progress(0.0, text=f"Computing {method}…")
    started = time.monotonic()
    # One time budget for the whole request (public mode), across its chunks.
    within_budget = flow_progress_with_budget(deploy_policy())
    done_rows = 0
    for chunk in missing:

        def progress(done: int, total: int, before: int = done_rows, size: int = len(chunk)):
            within_budget(done, total)
            rows_done = before + size * done / max(total, 1)
            elapsed = time.monotonic() - started
            left = elapsed / rows_done * (total_rows - rows_done) if rows_done else None
            estimate = f", about {left:.0f} s left" if left is not None else ""
            bar.progress(
                min(rows_done / total_rows, 1.0),
                text=f"{method}: {rows_done:.0f} of {total_rows} tokens done{estimate}",
            )
            return True

        cache.method_result(inputs, method, stack, layer, chunk, progress)
        done_rows += len(chunk)
    bar.empty()


def _merge(
    inputs: Inputs,
    method: str,
    stack: str,
    layer: int,
    chunks: list[tuple[int, ...]],
    missing: list[tuple[int, ...]],
) -> MethodResult | None:
    """One result whose layer holds every finished chunk's rows (the rest NaN)."""
    done = [c for c in chunks if c not in missing]
    if not done:
        return None
    parts = [cache.method_result(inputs, method, stack, layer, c) for c in done]
    if len(parts) == 1 and len(chunks) == 1:
        return parts[0]
    per_layer = np.full_like(parts[0].per_layer, np.nan)
    for chunk, part in zip(done, parts, strict=True):
        rows = list(chunk)
        per_layer[layer, rows] = part.per_layer[layer, rows]
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
