"""What an attribution method is: its description, what it needs, and one compute signature.

A method turns one input's attention (and, where it needs them, further passes through the
model) into token-to-token scores. Conventions shared by every method:

* `per_layer[l, i, j]`: how much receiving token `i` (a query, a row) draws from token `j`
  (a key, a column) in layer `l`, float64 `[layers, q, k]`; layers a request did not ask for
  are NaN.
* `per_head[l, h, i, j]`: the same per head `[layers, heads, q, k]`, for methods that have a
  per-head form, else None.
* `rollout[l, i, j]`: the share of position `i` after layer `l` that comes from input token `j`
  when the method's per-layer scores are chained through the layers as its authors do; None
  when the method has no accumulated form. For methods whose `per_layer` is already
  accumulated (`accumulated=True`: rollout, flow) it is the same array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from core.attention import AttentionResult
from core.costs import FREE, METHOD_BUDGET_BYTES, Cost
from core.families import SELF, StackSpec
from core.models import LoadedModel
from core.tokens import Token

Progress = Callable[[int, int], "bool | None"]
"""`progress(done, total)`; returning False cancels the computation (`ComputationCancelled`)."""


class Needs(str, Enum):
    """What a method reads besides the text."""

    ATTENTIONS = "attentions"
    """The attention weights of one forward pass only."""
    FORWARD = "forward"
    """The model itself, for its hidden states or further forward passes."""
    BACKWARD = "backward"
    """The model with gradients (a backward pass from a target logit)."""


RowsAtLength = Callable[[AttentionResult, tuple[int, ...], int, Progress | None], np.ndarray]
"""`(result, rows, layer, progress)` -> float64 `[len(rows), keys]` (`Method.rows_at_length`)."""


@dataclass(frozen=True)
class Parameter:
    """A setting a method reads from its request, described for controls and exports."""

    name: str
    """The `MethodRequest` field it reads: "layers", "rows" or "target"."""
    label: str
    help: str


@dataclass(frozen=True)
class MethodRequest:
    """Everything one computation of a method may read.

    `result` is the input's forward pass (shared, read-only). `layers` and `rows` restrict
    methods that are costly per layer or per row (flow); cheap methods compute everything and
    ignore them. `target` is the position whose prediction a gradient method explains (None:
    the method's default, e.g. the first mask or the last token).
    """

    result: AttentionResult
    model: LoadedModel | None = None
    stack: str = SELF
    layers: tuple[int, ...] | None = None
    rows: tuple[int, ...] | None = None
    target: int | None = None
    progress: Progress | None = None
    memory_budget: float = METHOD_BUDGET_BYTES
    """Peak bytes the method's own arrays may take (`Cost.memory`); beyond it the request is
    refused with `MethodTooLongError` naming the length it accepts."""


@dataclass(frozen=True, eq=False)
class MethodResult:
    """One method's scores for one input and stack (conventions in the module docstring)."""

    method: str
    stack: str
    tokens: list[Token]
    """The receiving tokens (rows)."""
    key_tokens: list[Token]
    """The tokens drawn from (columns); the same list for a square stack."""
    per_layer: np.ndarray
    per_head: np.ndarray | None = None
    rollout: np.ndarray | None = None
    layers_computed: tuple[int, ...] = ()
    """Layers whose `per_layer` rows are filled (all layers unless the request chose some)."""
    accumulated: bool = False
    """`per_layer` already chains the layers (rollout, flow): layer l reads the input tokens."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Conventions or choices a reader should know (e.g. "target: logit of 'cat' at 5")."""

    def layer_matrix(self, layer: int, head: int | None = None) -> np.ndarray:
        """`[q, k]` scores of one layer: one head's (methods with heads) or the layer's."""
        if head is None or self.per_head is None:
            return self.per_layer[layer]
        return self.per_head[layer, head]


@dataclass(frozen=True)
class Method:
    """One registry entry: how a method is described, where it applies, how it is computed."""

    name: str
    """Registry name, also used in links and exports: lowercase, no spaces."""
    label: str
    help: str
    """Two or three sentences for people: what the numbers mean and whose method it is."""
    compute: Callable[[MethodRequest], MethodResult]
    needs: Needs = Needs.ATTENTIONS
    square_only: bool = True
    """Chains token-to-token maps through the layers, so it needs queries == keys (not cross)."""
    has_heads: bool = False
    """Has a per-head form, so the Head control applies."""
    accumulated: bool = False
    """Its per-layer scores already chain the layers (rollout, flow), so they are no per-layer
    contributions (a contribution graph cannot use them)."""
    parameters: tuple[Parameter, ...] = ()
    unsupported: Callable[[LoadedModel], str | None] | None = None
    """Why this model cannot be read by the method (its modules), or None when it can: a
    sentence that does not name the method (`why_unavailable`)."""
    stacks: tuple[str, ...] | None = None
    """The stacks the method reads (None: every stack its `square_only` allows)."""
    cost: Cost = FREE
    """Its own work in forward passes as a formula of the request's shape, and the budget that
    bounds it (`core.costs`): budgets, progress, notes and the server's queue read it."""
    rows_at_length: RowsAtLength | None = None
    """`(result, rows, layer, progress)` -> float64 `[len(rows), k]`: rows of `per_layer[layer]`
    read from the result in pieces, so at any length without the whole attention array (rollout:
    `core.rollout_rows`); None when the method has no such form."""
    attributes_by_rollout: bool = True
    """A position's attribution to the input tokens is the last layer's `rollout` row; False:
    the last layer's own `per_layer` row (raw attention, whose rollout is another method)."""

    def reason_unavailable(self, model: LoadedModel | None, stack: StackSpec) -> str | None:
        """Why this method is not offered for `stack` of `model` (a sentence naming it), or
        None when it is."""
        why = self.why_unavailable(model, stack)
        if why is None:
            return None
        return f"{self.label} is not offered for {stack.label.lower()} attention: {why}"

    def why_unavailable(self, model: LoadedModel | None, stack: StackSpec) -> str | None:
        """The reason of `reason_unavailable` in words that do not name the method, ending in
        a full stop, so that a page can give one reason for every method it applies to."""
        if self.square_only and not stack.square:
            return (
                "chaining token-to-token maps through the layers needs a square map, and "
                f"{stack.label.lower()} attention maps target tokens to source tokens."
            )
        if self.stacks is not None and stack.name not in self.stacks:
            return (
                "reading a model's layers is implemented for its self-attention stack (the "
                f"encoder's) only, not yet for the {stack.label.lower()} attention."
            )
        if self.needs is not Needs.ATTENTIONS:
            if model is None:
                return "this needs the model itself, not only its attention weights."
            if self.unsupported is not None:
                return self.unsupported(model)
        return None
