"""Parts of the Explain page: which position, the logit lens, the agreement table, the graph.

The computations are `core.logit_lens`, the parts of `core.explanation_agreement` and
`core.route_contributions` (drawn by `core.information_flow_graph`); here they are cached per
(inputs, position, settings) in the shared store, refused where the deployment's budget says
so, and drawn. The agreement table is computed part by part (leave-one-out, then each method)
with a progress bar and Stop (`ui.stoppable`): a stopped table keeps the parts done and shows
the methods ranked so far. The graph's contributions (heavy work: a part per token and head in
every layer) are computed layer by layer under a progress bar with Stop too.
"""

from __future__ import annotations

import functools

import streamlit as st

import core
from core import AtlasError, ModelKind, charts
from core.agreement import part_passes
from core.tokens import token_labels
from server.policy import check_agreement_request
from ui import cache, stoppable
from ui.agreement_view import show_agreement
from ui.cache import LEAVE_ONE_OUT, Inputs
from ui.deploy import deploy_policy
from ui.layout import PAGE_PX
from ui.page import Page
from ui.state import DEFAULT
from ui.widgets import bound, export_buttons, file_stem, label_from, show_chart, show_error

PREDICTING_KINDS = (ModelKind.MASKED_LM, ModelKind.CAUSAL_LM)
AGREEMENT_CONTROL = "agreement"
"""Names the agreement table's Stop and Continue buttons (`ui.stoppable`)."""
GRAPH_CONTROL = "graph"
"""Names the contribution graph's Stop and Continue buttons (`ui.stoppable`)."""


def default_position(page: Page) -> int:
    """The position explained when the visitor has not chosen one: the first mask of a masked
    LM's text, the last token of a causal LM's (whose next token is predicted)."""
    result = page.result
    if page.model.kind is ModelKind.CAUSAL_LM:
        return len(result.tokens) - 1
    return result.mask_positions[0] if result.mask_positions else 1


def position_picker(page: Page) -> int:
    """The position whose prediction is explained (bound to the selected token)."""
    tokens = page.result.tokens
    chosen = page.view.token
    # The default first token ([CLS], or a causal LM's first word) is rarely the prediction
    # a visitor came to explain: start from the mask or the last token instead.
    if chosen == DEFAULT.token or tokens[chosen].is_special:
        chosen = default_position(page)
    labels = [f"{i}: {label}" for i, label in enumerate(token_labels(tokens, "marked"))]
    what = "next token after" if page.model.kind is ModelKind.CAUSAL_LM else "prediction at"
    return bound(
        st.selectbox,
        f"Explain the {what}",
        "token",
        value=chosen,
        options=list(range(len(tokens))),
        format_func=label_from(labels),
        help="A masked LM predicts the token at a [MASK] (or the word that is there); a causal "
        "LM predicts the token after the chosen position.",
    )


def logit_lens_panel(page: Page, position: int) -> None:
    st.subheader("Logit lens")
    try:
        table = cache.logit_lens(page.inputs, position, page.view.top_k)
    except AtlasError as error:
        show_error(str(error))
        return
    show_chart(
        charts.logit_lens_chart(table, max_width=PAGE_PX), theme="streamlit", width="content"
    )
    st.caption(
        "What each layer's residual stream would predict at this position, read through the "
        "final norm and the output embedding (layer 0: the embeddings; the last row is the "
        "model's own prediction)."
    )
    export_buttons(
        "Logit lens",
        csv=functools.partial(_export, page.inputs, "lens", position, page.view.top_k, "csv"),
        json=functools.partial(_export, page.inputs, "lens", position, page.view.top_k, "json"),
        stem=file_stem("logit_lens", page.model.name, f"pos{position}"),
    )


def part_label(part: str) -> str:
    return "Leave-one-out" if part == LEAVE_ONE_OUT else core.get_method(part).label


def agreement_panel(page: Page, position: int) -> None:
    st.subheader("Which explanation agrees with the model?")
    try:
        check_agreement_request(deploy_policy(), len(page.result.tokens))
    except AtlasError as error:
        st.info(str(error))
        return
    if not st.toggle("Rank every method against leave-one-out", key="explain_agreement"):
        st.caption(
            "Leave-one-out masks (masked LM) or removes (causal LM) each token in turn and "
            "measures how much the predicted token's probability drops; each method's input "
            "attribution is then ranked against those drops (Spearman ρ, top-k overlap)."
        )
        return
    inputs = page.inputs
    try:
        parts = cache.agreement_parts(inputs)
        missing = [p for p in parts if not cache.is_agreement_part_stored(inputs, position, p)]
        request = (inputs, position)
        if missing and stoppable.stopped(AGREEMENT_CONTROL, request):
            st.info(
                f"Stopped: {len(parts) - len(missing)} of {len(parts)} steps done "
                "(leave-one-out, then each method); the methods done so far are ranked below."
            )
        elif missing:
            stop = st.empty()  # emptied when the steps are done: no Stop is left behind
            with stop:
                stoppable.stop_button(
                    AGREEMENT_CONTROL,
                    request,
                    help="Stops after the step being computed and keeps the steps done.",
                )
            _compute_agreement(page, position, parts, missing)
            stop.empty()
        table = cache.agreement(inputs, position, done_only=True)
    except AtlasError as error:
        show_error(str(error))
        return
    if table is None:
        return
    st.caption(f"Explaining the prediction '{table.attrs.get('predicted', '?')}'.")
    show_agreement(table)
    if len(table) < len(parts) - 1:
        return  # a stopped table: exported once every method is in it
    export_buttons(
        "Agreement table",
        csv=functools.partial(_export, inputs, "agreement", position, 0, "csv"),
        json=functools.partial(_export, inputs, "agreement", position, 0, "json"),
        stem=file_stem("agreement", page.model.name, f"pos{position}"),
    )


def _compute_agreement(page: Page, position: int, parts: list[str], missing: list[str]) -> None:
    """Every missing part, each stored as it finishes, under one progress bar."""
    n = len(page.result.tokens)
    costs = {part: part_passes(page.model, part, n) for part in missing}
    bar = stoppable.ProgressBar("the agreement table", sum(costs.values()), unit="passes")
    for part in missing:
        step = f"step {parts.index(part) + 1} of {len(parts)}"
        progress = bar.part(costs[part], what=part_label(part), step=step)
        cache.agreement_part(page.inputs, position, part, progress)
    bar.close()


def graph_panel(page: Page, position: int) -> None:
    st.subheader("Contribution graph")
    threshold = bound(
        st.slider,
        "Smallest contribution drawn",
        "graph_threshold",
        min_value=0.0,
        max_value=1.0,
        step=0.01,
        help="Each block's parts (a token through one head, the residual, the feed-forward "
        "block) at or below this share are dropped and the rest renormalised, as Ferrando & "
        "Voita's tool does; the routes are what remains.",
    )
    try:
        contributions = _routes(page)
        if contributions is None:
            return
        graph = core.information_flow_graph(contributions, position, threshold)
    except AtlasError as error:
        show_error(str(error))
        return
    labels = token_labels(page.result.tokens, "marked")
    show_chart(
        charts.contribution_graph_chart(graph, labels, max_width=PAGE_PX, fill=True),
        theme="streamlit",
        width="stretch",
    )
    st.caption(
        f"{graph.number_of_edges()} edges: the information-flow routes into position "
        f"{position} at the last layer (Ferrando & Voita 2024). Per layer, diamonds are the "
        "residual stream after attention, squares the feed-forward blocks and circles the "
        f"layer's output; a part is kept when its share is above {threshold:.2f}."
    )


def _routes(page: Page) -> core.RouteContributions | None:
    """The routes' contributions, computed layer by layer under a progress bar with Stop; None
    while the visitor has stopped them (they are one piece: nothing half-made is kept)."""
    inputs = page.inputs
    if cache.is_route_contributions_stored(inputs):
        return cache.route_contributions(inputs)
    if stoppable.stopped(GRAPH_CONTROL, inputs):
        st.info("Stopped: the routes are computed in one piece, so nothing of them was kept.")
        return None
    stop = st.empty()  # emptied when the routes are done: no Stop is left behind
    with stop:
        stoppable.stop_button(
            GRAPH_CONTROL, inputs, help="Stops now; the routes are computed in one piece."
        )
    layers = page.model.num_layers
    bar = stoppable.ProgressBar("the routes", layers, unit="layers")
    contributions = cache.route_contributions(inputs, bar.part(layers))
    bar.close()
    stop.empty()
    return contributions


def _export(inputs: Inputs, kind: str, position: int, top_k: int, form: str) -> str:
    if kind == "lens":
        table = cache.logit_lens(inputs, position, top_k)
    else:
        table = cache.agreement(inputs, position)
    return table.to_csv(index=False) if form == "csv" else table.to_json(orient="records")


def no_prediction_notice(page: Page) -> bool:
    """Say so and return True when the model predicts nothing this page could explain."""
    if page.model.kind in PREDICTING_KINDS:
        return False
    if page.model.kind is ModelKind.ENCODER_DECODER:
        st.info(
            f"{page.model.name} is an encoder-decoder model: it predicts the target's tokens in "
            "its decoder. This page's logit lens and leave-one-out read masked-LM and causal "
            "models only (a decoder's logit lens through its cross attention is not "
            "implemented yet); on the Attention page, gradient × attention explains this "
            "model's next target token on each of its three stacks."
        )
        return True
    st.info(
        f"{page.model.name} is an {page.model.kind.value} model: it predicts no token, so "
        "there is no prediction to explain. Pick a masked-LM or causal model in the sidebar; "
        "the Attention page offers every method for this one."
    )
    return True
