"""The method registry: one entry per method, read by controls, links, caches and exports."""

from __future__ import annotations

from core.errors import MethodUnsupportedError
from core.families import SELF
from core.methods.base import Method, MethodRequest, MethodResult
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
    return method.compute(request)


def _stack_spec(model: LoadedModel | None, stack: str):
    if model is None:
        from core.families import EncoderFamily

        return EncoderFamily().stack_spec(stack)
    return model.family.stack_spec(stack)
