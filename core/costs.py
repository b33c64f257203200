"""What a computation costs, as data: a formula in forward passes, and the arithmetic of one pass.

Each method's registry entry declares a `Cost` (`core.methods.Method.cost`): how many forward
passes of the model over the text its own work is worth, as a formula of the request's shape.
Readers of the registry use it instead of knowing methods by name: the app's budgets, progress
estimates and "about …" notes, and the server's admission queue, which weighs a request by
`multiply_adds` (passes × the multiply-adds of one pass) to tell heavy work from ordinary.

Formula variables (each a number of the request at hand):

- ``n``: tokens of the text;
- ``rows``: receiving tokens computed (``n`` unless the request chooses some);
- ``layers``: layers computed (``L`` unless the request chooses some);
- ``L``: the model's layers (of the stack the method reads), ``heads`` its heads per layer.

The coefficients are rough, measured on this project's CPU benchmarks (bench/RESULTS.md,
Methods and flow); they order and scale work, they promise no seconds.
"""

from __future__ import annotations

import ast
import enum
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VARIABLES = ("n", "rows", "layers", "L", "heads")
_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


class Budget(str, enum.Enum):
    """Which kind of per-request budget a deployment holds a method's work to."""

    NONE = "none"
    """Bounded by the text's length alone (a few passes at most)."""
    ROWS = "rows"
    """Work per receiving token (row): the rows one request computes and its seconds are capped."""
    TOKENS = "tokens"
    """A layer re-run once per token: the text's length is capped, more so for more layers."""


@dataclass(frozen=True)
class Cost:
    """A computation's own work in forward passes over its text, as a formula (module docstring).

    The text's own attention pass, which every method shares, is not counted: raw attention
    costs "0".
    """

    formula: str = "0"
    budget: Budget = Budget.NONE
    note: str = ""
    """Where the coefficients come from, for people reading the registry."""
    memory: str = "0"
    """Bytes its own arrays hold at their peak, beyond the model and the text's result, as a
    formula of the same variables (measured: bench/bench_long_methods.py). Every method's
    work at length is bounded by it: see `max_tokens`."""

    longest: int | None = None
    """The longest text it is computed for whatever the memory (None: no such bound), where its
    time grows too fast beyond (flow: n max-flow problems per row over layers × n² edges)."""

    def __post_init__(self) -> None:
        for formula in (self.formula, self.memory):
            _compiled(formula)  # a typo fails at import, not on a visitor's request

    def passes(
        self,
        n: int,
        L: int,
        heads: int = 1,
        *,
        rows: int | None = None,
        layers: int | None = None,
    ) -> float:
        """Forward passes' worth of work for an `n`-token text on an `L`-layer model, for
        `rows` rows (None: all `n`) of `layers` layers (None: all `L`). Never negative."""
        values = _values(n, L, heads, rows=rows, layers=layers)
        return max(0.0, float(_compiled(self.formula)(values)))

    def nbytes(self, n: int, L: int, heads: int = 1, **shape: int | None) -> float:
        """Peak bytes of its own arrays (`memory`) for a request of this shape: `n`, `L`,
        `heads` and the keywords `rows`, `layers` as in `passes`."""
        return max(0.0, float(_compiled(self.memory)(_values(n, L, heads, **shape))))

    def max_tokens(self, budget: float, L: int, heads: int = 1, **shape: int | None) -> int:
        """The longest text (tokens) whose `nbytes` (same `L`, `heads`, `rows`, `layers`)
        stays within `budget` bytes, and within `longest`; up to `LONGEST` (a memory that never
        grows with `n`), 0 when not even one token fits."""
        top = LONGEST if self.longest is None else min(self.longest, LONGEST)
        if self.nbytes(top, L, heads, **shape) <= budget:
            return top
        low, high = 0, top  # nbytes grows with n: nbytes(high) > budget throughout
        while high - low > 1:
            middle = (low + high) // 2
            if self.nbytes(middle, L, heads, **shape) <= budget:
                low = middle
            else:
                high = middle
        return low


LONGEST = 1 << 24
"""The longest text `Cost.max_tokens` reports (16 M tokens, beyond any model's positions)."""

METHOD_BUDGET_BYTES = 1 << 30
"""Peak bytes a method's own arrays may take by default (1 GiB; `MethodRequest.memory_budget`):
a request whose `Cost.nbytes` exceeds it is refused with the length it accepts."""


def _values(
    n: int, L: int, heads: int, *, rows: int | None = None, layers: int | None = None
) -> dict[str, int]:
    if n < 0 or L < 1 or heads < 1:
        raise ValueError(f"need n ≥ 0, L ≥ 1 and heads ≥ 1, not n={n}, L={L}, heads={heads}")
    return {
        "n": n,
        "rows": n if rows is None else min(rows, n),
        "layers": L if layers is None else layers,
        "L": L,
        "heads": heads,
    }


@functools.cache
def _compiled(formula: str) -> Callable[[dict[str, float]], float]:
    """`formula` (arithmetic on `VARIABLES` and numbers only) as a function of their values."""
    try:
        tree = ast.parse(formula, mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"cost formula {formula!r} is not arithmetic: {error.msg}") from None

    def allowed(node: ast.AST) -> bool:
        if isinstance(node, ast.BinOp):
            return type(node.op) in _OPERATORS and allowed(node.left) and allowed(node.right)
        if isinstance(node, ast.UnaryOp):
            return type(node.op) in _OPERATORS and allowed(node.operand)
        if isinstance(node, ast.Name):
            return node.id in VARIABLES
        return isinstance(node, ast.Constant) and isinstance(node.value, int | float)

    if not allowed(tree):
        raise ValueError(
            f"cost formula {formula!r}: only numbers, {', '.join(VARIABLES)} and + - * / ** are "
            "allowed"
        )

    def evaluate(node: ast.AST, values: dict[str, float]) -> float:
        if isinstance(node, ast.BinOp):
            left, right = evaluate(node.left, values), evaluate(node.right, values)
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _OPERATORS[type(node.op)](evaluate(node.operand, values))
        if isinstance(node, ast.Name):
            return values[node.id]
        return node.value  # type: ignore[attr-defined]

    return functools.partial(evaluate, tree)


FREE = Cost("0", note="Nothing beyond the text's own pass.")
"""The default of a registry entry that declares no cost."""
ATTENTION = Cost("1", note="The text's own forward pass, with attention weights.")
"""One forward pass: what `core.run_attention` (and a view built on it) costs."""
ROUTE_CONTRIBUTIONS = Cost(
    "0.05 * heads * n",
    note="MiniLM (12 heads), one torch thread: 27, 72 and 164 passes at 64, 128 and 256 tokens "
    "(bench/RESULTS.md, fair share, 2026-12-07).",
)
"""`core.route_contributions` (the contribution graph): a pass reading every layer's input, then
per layer a part per (token, head) for each receiving token, n² · heads vectors: ALTI's work
once per head."""


def forward_multiply_adds(config: Any, tokens: int) -> int:
    """Multiply-adds of one forward pass of the model of `config` over `tokens` tokens.

    Per layer: the query, key, value and output projections (4 d² per token), the feed-forward
    layer (2 d·f per token, f its inner size; 3 d·f when gated) and the attention's two n × n
    products (2 n d per token). Embeddings, norms and the unembedding are left out: they are
    small beside the layers for the texts this estimates. Reads the text config's usual names;
    a missing one counts as BERT-base's.
    """
    if tokens < 0:
        raise ValueError(f"tokens must not be negative, not {tokens}")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def count(*names: str, default: int) -> int:
        for name in names:
            value = getattr(text, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return default

    layers = count("num_hidden_layers", "n_layer", "num_layers", "encoder_layers", default=12)
    hidden = count("hidden_size", "n_embd", "d_model", default=768)
    inner = count("intermediate_size", "n_inner", "d_ff", "encoder_ffn_dim", default=4 * hidden)
    gated = str(getattr(text, "hidden_act", "")).lower() in {"silu", "swiglu", "gelu_pytorch_tanh"}
    per_token = 4 * hidden * hidden + (3 if gated else 2) * hidden * inner + 2 * tokens * hidden
    return layers * tokens * per_token


SINK_PROFILE = Cost(
    "2",
    note="`core.sink_profile`: every head's rows recomputed a block at a time from the capture, "
    "1.3× a forward pass on the 0.5B shape at 2,048 tokens (bench/RESULTS.md, Long-context "
    "heads); counted as 2.",
)
"""A sink profile of a text whose attention is computed already."""
NEEDLE_DEPTH = Cost(
    "2",
    note="`core.retrieval_scores`, per depth: one capturing pass and the answer rows of every "
    "head, 1.2–2.3× a forward pass (bench/RESULTS.md, Long-context heads).",
)
"""One depth of a needle run, over that depth's input."""
ABLATION = Cost(
    "2",
    note="`core.ablate_heads` / `core.ablate_answer`, per input: two fast passes, without and "
    "with the heads zeroed.",
)
"""One ablation of one input."""
