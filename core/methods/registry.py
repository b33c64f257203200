"""The method registry: one entry per method, read by controls, links, caches and exports."""

from __future__ import annotations

import math

from core.attention import AttentionResult
from core.costs import METHOD_BUDGET_BYTES
from core.errors import MethodTooLongError, MethodUnsupportedError
from core.families import SELF
from core.methods.base import Method, MethodRequest, MethodResult, Needs
from core.models import LoadedModel

_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to the registry (in display order); returns it, so modules can keep it."""
    if method.name in _REGISTRY:
        raise ValueError(f"A method named '{method.name}' is registered already.")
    _REGISTRY[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    """Every registered method's name, in display order."""
    return tuple(_REGISTRY)


def get_method(name: str) -> Method:
    """The registry entry called `name`; `MethodUnsupportedError` naming the others if none."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise MethodUnsupportedError(
            f"There is no method '{name}'. Methods: {', '.join(_REGISTRY)}."
        ) from None


def available_methods(model: LoadedModel | None, stack: str = SELF) -> list[Method]:
    """The methods offered for `stack` of `model` (`model=None`: attention-only methods)."""
    spec = _stack_spec(model, stack)
    return [m for m in _REGISTRY.values() if m.reason_unavailable(model, spec) is None]


def list_methods(model: LoadedModel, stack: str = SELF) -> list[str]:
    """Names of the methods this model supports for `stack` (the self-attention by default)."""
    return [method.name for method in available_methods(model, stack)]


def run_method(name: str, request: MethodRequest) -> MethodResult:
    """Compute method `name` for `request`, after checking it applies to the request's stack.

    Raises `MethodUnsupportedError` with the reason when it does not.
    """
    method = get_method(name)
    spec = request.result.stack_spec(request.stack)
    reason = method.reason_unavailable(request.model, spec)
    if reason is not None:
        raise MethodUnsupportedError(reason)
    check_length(method, request)
    return method.compute(request)


def max_tokens(
    method: Method,
    result: AttentionResult,
    stack: str = SELF,
    *,
    rows: int | None = None,
    layers: int | None = None,
    budget: float = METHOD_BUDGET_BYTES,
) -> int:
    """The longest input `method` computes on `result`'s model within `budget` bytes of its own
    arrays (`Cost.memory`, for `rows` rows and `layers` layers, None: all); a method that reads
    the whole attention array (`Needs.ATTENTIONS`) also within the result's `budget` for it."""
    pieces = result.pieces(stack)
    L, heads = pieces.num_layers, pieces.num_heads
    longest = method.cost.max_tokens(budget, L, heads, rows=rows, layers=layers)
    if method.needs is Needs.ATTENTIONS:
        longest = min(longest, math.isqrt(int(result.budget) // (4 * L * heads)))
    return longest


def check_length(method: Method, request: MethodRequest) -> None:
    """`MethodTooLongError` when `request` is longer than `max_tokens` allows, saying how much
    it would need and the length it accepts on this model."""
    result = request.result
    pieces = result.pieces(request.stack)
    n = max(pieces.queries, pieces.keys)
    rows = None if request.rows is None else len(request.rows)
    layers = None if request.layers is None else len(request.layers)
    longest = max_tokens(
        method, result, request.stack, rows=rows, layers=layers, budget=request.memory_budget
    )
    if n <= longest:
        return
    L, heads = pieces.num_layers, pieces.num_heads
    own = method.cost.nbytes(n, L, heads, rows=rows, layers=layers)
    if method.cost.longest is not None and n > method.cost.longest:
        need = "too long a time (its work grows as n³ per chosen row and layer)"
    elif own > request.memory_budget:
        need = (
            f"about {own / 2**20:,.0f} MB for its own arrays ({L} layers × {heads} heads × "
            f"{n:,}² tokens), over its {request.memory_budget / 2**20:,.0f} MB budget"
        )
    else:
        need = (
            f"the whole attention array, {pieces.dense_nbytes / 2**20:,.0f} MB, over the "
            f"result's {result.budget / 2**20:,.0f} MB budget"
        )
    label = method.label[:1].upper() + method.label[1:]
    raise MethodTooLongError(
        f"{label} of {n:,} tokens would take {need}: on this model it reads at most "
        f"{longest:,} tokens. Choose a shorter part of the text.",
        longest,
    )


def _stack_spec(model: LoadedModel | None, stack: str):
    if model is None:
        from core.families import EncoderFamily

        return EncoderFamily().stack_spec(stack)
    return model.family.stack_spec(stack)
