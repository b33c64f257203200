"""Attribution methods behind one registry: raw attention, rollout, flow, and more.

Every method is one `Method` entry (`core.methods.base`), registered by the module that
implements it; the controls, links, caches, help texts and exports of the app all read the
registry. Adding a method is one module that calls `register`, an import below, and its tests
(tests/core/methods/).

    from core import load_model, compute_method, EMBEDDED_MODEL
    scores = compute_method(load_model(EMBEDDED_MODEL), "The cat sat.", "rollout")
    scores.per_layer.shape  # [layers, n, n]
"""

from __future__ import annotations

import warnings

from core.attention import run_attention
from core.errors import TruncationWarning
from core.families import SELF

# Importing a method module registers it; the order of these imports is the display order.
# isort: off
from core.methods import attention_only  # noqa: F401  (raw, rollout, flow)
from core.methods import attention_norm  # noqa: F401
from core.methods import alti  # noqa: F401
from core.methods import value_zeroing  # noqa: F401
from core.methods import grad_attention  # noqa: F401

# isort: on
from core.methods.base import (
    Method,
    MethodRequest,
    MethodResult,
    Needs,
    Parameter,
    Progress,
)
from core.methods.registry import (
    available_methods,
    get_method,
    list_methods,
    method_names,
    register,
    run_method,
)
from core.models import LoadedModel


def compute_method(
    model: LoadedModel,
    text: str,
    method: str,
    *,
    text_pair: str | None = None,
    target: int | None = None,
    stack: str = SELF,
    target_text: str | None = None,
    layers: tuple[int, ...] | None = None,
    rows: tuple[int, ...] | None = None,
    progress: Progress | None = None,
) -> MethodResult:
    """Run `text` through `model` and compute `method` (a registry name) on it.

    `target` is the position a gradient-based method explains; `target_text` an
    encoder-decoder model's decoder input; `layers` / `rows` restrict costly methods (flow).
    Truncation of a long text is warned about by `run_attention` as usual.
    """
    get_method(method)  # an unknown name fails before the forward pass
    with warnings.catch_warnings():
        warnings.simplefilter("default", TruncationWarning)
        result = run_attention(model, text, text_pair, target_text=target_text)
    request = MethodRequest(
        result=result,
        model=model,
        stack=stack,
        layers=layers,
        rows=rows,
        target=target,
        progress=progress,
    )
    return run_method(method, request)


__all__ = [
    "Method",
    "MethodRequest",
    "MethodResult",
    "Needs",
    "Parameter",
    "Progress",
    "available_methods",
    "compute_method",
    "get_method",
    "list_methods",
    "method_names",
    "register",
    "run_method",
]
