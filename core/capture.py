"""One attention function for every architecture: fast by default, exact weights on demand.

transformers 5 routes every supported architecture's attention (BERT, GPT-2, T5, BART, ALBERT,
DistilBERT, Llama, Qwen, Gemma, Mistral, Phi-3 …) through `ALL_ATTENTION_FUNCTIONS`, handing the
function the queries as the dot product sees them (after rotary embeddings and q/k norms), the
keys once per key-value group, the scaling, the soft-cap, the sliding window, the mask and T5's
position bias. `load_model` loads every model with `ATTENTION_IMPLEMENTATION`, registered here
once, and each forward pass picks what the function does, per thread (a context variable, since
one model is shared by every session and thread):

* dense (the default, `dense_attention()`): the architecture's own eager function, so
  `output_attentions=True` returns every `[heads, q, k]` weight tensor exactly as with
  `attn_implementation="eager"`. Methods that differentiate through attention and the decoder
  stacks of encoder-decoder models use this.
* fast (`fast_attention()`): no weights; SDPA where the architecture allows it, and for soft-capped
  attention (Gemma 2), which SDPA cannot do, a blockwise float32 softmax that never holds more
  than one block of rows. Generation uses this with the model's key-value cache.
* capture (`capture_attention(accept)`): like fast, and for each attention call whose module
  `accept` takes it records a `LayerCapture`: the queries `[heads, n, d]`, the keys
  `[kv_heads, n, d]`, the scaling, soft-cap, causality, window, any additive bias and each row's
  log-sum-exp normaliser, computed blockwise in float32 (on the CPU without windows,
  soft-caps or biases, by the flash kernel SDPA itself runs, in float32 whatever the model's
  dtype, which returns it with the output; otherwise by a separate pass over blocks of rows).
  From these `core.exact` recomputes any row, tile or pooled overview of any head exactly,
  without the layers × heads × n² tensor.
  Calls `accept` refuses run dense (their weights come back through `output_attentions`).

Independently of the mode, `zeroed_heads(heads_by_layer)` ablates heads: the attention output
the function returns, `[batch, q, heads, d]`, is exactly the input of the output projection
split by head, so zeroing a head's slice there zeroes that head's contribution on every
architecture, with no per-architecture hook.

The mask function registered with it follows the same choice: the eager mask (float, 0 / most
negative) for dense passes, SDPA's boolean mask (or None when causality alone says it) otherwise.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import UnsupportedModelError

ATTENTION_IMPLEMENTATION = "atlas"
"""The name `load_model` passes as `attn_implementation`."""

BLOCK_ELEMENTS = 1 << 24
"""Float32 scores held at once by the blockwise passes (64 MB): rows per block follow from it."""

_DENSE, _FAST, _CAPTURE = "dense", "fast", "capture"


@dataclass(frozen=True, eq=False)
class LayerCapture:
    """What one self-attention call needs to reproduce its weights exactly.

    `queries` `[heads, n, d]` and `keys` `[kv_heads, n, d]` in the model's dtype; query head `h`
    reads the keys of group `h // (heads // kv_heads)`. `lse` float32 `[heads, n]` is each row's
    log-sum-exp of its scores over the keys the model computes. A score is
    `softcap·tanh(q·k·scale / softcap)` (without soft-cap: `q·k·scale`) plus `bias`; a key is
    computed where `mask` says so or, without `mask`, where the structure (causal, window) allows.
    """

    queries: torch.Tensor
    keys: torch.Tensor
    lse: torch.Tensor
    scale: float
    softcap: float | None
    causal: bool
    window: int | None
    """Sliding window: query `i` sees keys `i - window < j <= i` (Mistral, Gemma's local layers)."""
    bias: torch.Tensor | None = None
    """Float32 added to the scores: `[heads or 1, n, n]`, or, when it depends only on the
    offset `j - i` (T5's relative position bias), `[heads or 1, 2n - 1]` indexed by
    `j - i + n - 1` (see `relative`): n per head instead of n²."""
    relative: bool = False
    mask: torch.Tensor | None = None
    """Bool `[heads or 1, n, n]` when the model's mask is not just causality and window."""

    @property
    def num_heads(self) -> int:
        return self.queries.shape[0]

    @property
    def length(self) -> int:
        return self.queries.shape[1]

    @property
    def group_size(self) -> int:
        return self.queries.shape[0] // self.keys.shape[0]

    @property
    def nbytes(self) -> int:
        tensors = (self.queries, self.keys, self.lse, self.bias, self.mask)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def allowed(self, rows: torch.Tensor, cols: torch.Tensor, head: int | None = None):
        """Bool `[heads or 1, len(rows), len(cols)]` (`[len(rows), len(cols)]` for one head):
        True where the model computes a weight."""
        return _allowed(self.causal, self.window, 0, self.mask, rows, cols, head)

    def scores(self, head: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Float32 `[len(rows), len(cols)]` scores of one head before masking."""
        query = self.queries[head, rows].float()
        key = self.keys[head // self.group_size, cols].float()
        scores = _scaled(query @ key.T, self.scale, self.softcap)
        if self.bias is not None:
            scores += self.bias_block(rows, cols)[head if self.bias.shape[0] > 1 else 0]
        return scores

    def bias_block(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The bias `[heads or 1, len(rows), len(cols)]` (requires `bias`)."""
        assert self.bias is not None
        if self.relative:
            offsets = cols[None, :] - rows[:, None] + (self.length - 1)
            return self.bias[:, offsets]
        return self.bias[:, rows[:, None], cols[None, :]]


@dataclass
class _State:
    mode: str
    accept: Callable[[torch.nn.Module], bool] | None = None
    layers: list[LayerCapture] = field(default_factory=list)


_STATE: ContextVar[_State | None] = ContextVar("atlas_attention_state", default=None)


@dataclass
class _Ablation:
    heads_by_layer: dict[int, tuple[int, ...]]
    accept: Callable[[torch.nn.Module], bool] | None = None
    calls: int = 0
    """Accepted attention calls so far: the next call is this layer's."""


_ABLATION: ContextVar[_Ablation | None] = ContextVar("atlas_ablation", default=None)


@contextmanager
def _mode(state: _State) -> Iterator[_State]:
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def dense_attention() -> Any:
    """Within it, this thread's passes run each architecture's eager attention (weights out)."""
    return _mode(_State(_DENSE))


def fast_attention() -> Any:
    """Within it, this thread's passes return no weights and run SDPA (or blockwise soft-cap)."""
    return _mode(_State(_FAST))


def capture_attention(accept: Callable[[torch.nn.Module], bool] | None = None) -> Any:
    """Within it, this thread's passes record a `LayerCapture` per accepted attention call.

    Yields the state whose `layers` fill in call order (ALBERT's shared layer once per layer).
    `accept(module)` picks the calls to record (all by default); the others run dense.
    """
    return _mode(_State(_CAPTURE, accept))


@contextmanager
def zeroed_heads(
    heads_by_layer: dict[int, tuple[int, ...]],
    accept: Callable[[torch.nn.Module], bool] | None = None,
) -> Iterator[_Ablation]:
    """Within it, this thread's passes zero the outputs of the given query heads.

    `heads_by_layer[layer]` lists the heads whose slice of the attention output (the input of
    the output projection) becomes 0; layers count the attention calls `accept` takes (all by
    default) in call order, so use it for one forward pass without a key-value cache. Yields the
    state; its `calls` afterwards says how many layers ran. Combines with any mode above.
    """
    token = _ABLATION.set(_Ablation(dict(heads_by_layer), accept))
    try:
        yield _ABLATION.get()  # type: ignore[misc]
    finally:
        _ABLATION.reset(token)


# --------------------------------------------------------------------------------------------
# The registered functions.
# --------------------------------------------------------------------------------------------


def atlas_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention function transformers calls: `[batch, heads, q, d]` in, see module doc.

    Returns the output `[batch, q, heads, d]` (heads zeroed under `zeroed_heads`) and the
    weights `[batch, heads, q, k]` of a dense call (None otherwise).
    """
    output, weights = _attend(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    ablation = _ABLATION.get()
    if ablation is not None and (ablation.accept is None or ablation.accept(module)):
        heads = ablation.heads_by_layer.get(ablation.calls, ())
        ablation.calls += 1
        if heads:
            output = output.clone()
            output[:, :, list(heads)] = 0
    return output, weights


def _attend(module, query, key, value, attention_mask, scaling, dropout, **kwargs):
    """`atlas_attention` before any ablation: the mode's dense, fast or capturing attention."""
    state = _STATE.get()
    capture = (
        state is not None
        and state.mode == _CAPTURE
        and (state.accept is None or state.accept(module))
    )
    if state is None or state.mode == _DENSE or (state.mode == _CAPTURE and not capture):
        return _eager(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    softcap = kwargs.get("softcap")
    causal = _is_causal(module, query, kwargs)
    if capture:
        assert state is not None
        if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
            raise UnsupportedModelError(
                "Attention capture reads one text at a time, without a key-value cache."
            )
        record, output = _record(module, query, key, value, attention_mask, scaling, causal, kwargs)
        state.layers.append(record)
        if output is not None:
            return output, None
    elif softcap is not None:
        lse_and_output = _blockwise(
            query[0],
            key[0],
            value[0],
            float(scaling),
            float(softcap),
            causal,
            kwargs.get("sliding_window"),
            key.shape[2] - query.shape[2],
            _as_bool(attention_mask),
            None,
            want_output=True,
        )
        return lse_and_output[1].to(query.dtype).transpose(0, 1)[None].contiguous(), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs.pop("output_attentions", None)  # SDPA would warn that it has no weights: we know
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )


def atlas_mask(*args: Any, **kwargs: Any) -> Any:
    """The mask transformers builds for `ATTENTION_IMPLEMENTATION`: eager's when dense."""
    from transformers.masking_utils import eager_mask, sdpa_mask

    state = _STATE.get()
    dense = state is None or state.mode == _DENSE
    return (eager_mask if dense else sdpa_mask)(*args, **kwargs)


_REGISTERED = False


def register() -> str:
    """Register `ATTENTION_IMPLEMENTATION` with transformers (idempotent); returns its name.

    Adds one entry to transformers' attention and mask registries and changes nothing else.
    """
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(ATTENTION_IMPLEMENTATION, atlas_attention)
        AttentionMaskInterface.register(ATTENTION_IMPLEMENTATION, atlas_mask)
        _REGISTERED = True
    return ATTENTION_IMPLEMENTATION


# --------------------------------------------------------------------------------------------
# The three behaviours.
# --------------------------------------------------------------------------------------------


def _eager(module, query, key, value, attention_mask, scaling, dropout, **kwargs):
    """The architecture's own eager attention, given the additive mask it expects."""
    module_code = importlib.import_module(type(module).__module__)
    function = getattr(module_code, "eager_attention_forward", None)
    if function is None:  # pragma: no cover - every architecture here defines one
        raise UnsupportedModelError(f"{type(module).__name__} has no eager attention function.")
    mask = attention_mask
    floor = torch.finfo(query.dtype).min
    if mask is None and _is_causal(module, query, kwargs) and query.shape[2] > 1:
        rows = torch.arange(query.shape[2], device=query.device)
        cols = torch.arange(key.shape[2], device=query.device)
        offset = key.shape[2] - query.shape[2]
        window = kwargs.get("sliding_window")
        mask = _allowed(True, window, offset, None, rows, cols)[None]
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill_(
            ~mask, floor
        )
    return function(module, query, key, value, mask, scaling=scaling, dropout=dropout, **kwargs)


def _is_causal(module: torch.nn.Module, query: torch.Tensor, kwargs: dict[str, Any]) -> bool:
    """Whether the call is causal, decided as transformers' SDPA integration decides it."""
    flag = kwargs.get("is_causal")
    if flag is None:
        flag = getattr(module, "is_causal", True)
    return bool(flag)


def _as_bool(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Batch 0 of a `[batch, heads or 1, q, k]` mask as bool `[heads or 1, q, k]`."""
    if mask is None:
        return None
    mask = mask[0]
    if mask.dtype != torch.bool:
        mask = mask > torch.finfo(mask.dtype).min / 2
    return mask


def _record(module, query, key, value, attention_mask, scaling, causal, kwargs):
    """One `LayerCapture` and, for soft-capped attention, the output computed on the way."""
    softcap = kwargs.get("softcap")
    window = kwargs.get("sliding_window")
    window = int(window) if window and causal else None
    queries, keys = query[0].detach().contiguous(), key[0].detach().contiguous()
    mask = _as_bool(attention_mask)
    bias = None
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        additive = attention_mask[0].float()
        bias = torch.where(mask, additive, 0.0)
    position_bias = kwargs.get("position_bias")
    if position_bias is not None:
        position = position_bias[0].detach().float()
        bias = position if bias is None else bias + position
    if bias is not None and not bool(bias.any()):
        bias = None
    if mask is not None and _matches_structure(mask, causal, window):
        mask = None  # the structure says it all, in no memory
    causal = causal and queries.shape[1] > 1
    fused = None
    if mask is None and window is None and bias is None and softcap is None:
        fused = _fused_flash(query, key, value, float(scaling), causal)
    if fused is not None:
        lse, output = fused
    else:
        lse, output = _blockwise(
            queries,
            keys,
            value[0] if softcap is not None else None,
            float(scaling),
            None if softcap is None else float(softcap),
            causal,
            window,
            0,
            mask,
            bias,
            want_output=softcap is not None,
        )
        if output is not None:
            output = output.to(query.dtype).transpose(0, 1)[None].contiguous()
    relative = None if bias is None else _relative(bias)
    record = LayerCapture(
        queries=queries,
        keys=keys,
        lse=lse,
        scale=float(scaling),
        softcap=None if softcap is None else float(softcap),
        causal=causal,
        window=window,
        bias=relative if relative is not None else None if bias is None else bias.contiguous(),
        relative=relative is not None,
        mask=None if mask is None else mask.contiguous(),
    )
    return record, output


def _fused_flash(query, key, value, scale: float, causal: bool):
    """`(lse [heads, n], output [1, n, heads, dv])` from one run of PyTorch's CPU flash kernel
    in float32, or None where it does not apply.

    On the CPU without masks, windows, soft-caps or biases, SDPA runs this kernel: it computes
    the output blockwise with float32 running maxima and sums and returns each row's
    log-sum-exp, so capturing costs one SDPA pass. A bf16 or fp16 model's queries, keys and
    values go through it in float32 (in their own dtype the kernel forms the scores in that
    dtype, ~1e-4 off the float32 normalisers the recomputation needs; a separate blockwise pass
    cost 4× the SDPA pass on the Qwen2.5-0.5B shape): the output, rounded back to the model's
    dtype, is then the float32 attention's, as the eager attention's float32 softmax gives.
    Other devices take the blockwise pass.
    """
    kernel = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if kernel is None or query.device.type != "cpu" or not query.dtype.is_floating_point:
        return None
    repeat = query.shape[1] // key.shape[1]
    dtype = query.dtype
    query, key, value = query.float(), key.float(), value.float()
    if repeat > 1:
        key, value = key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1)
    output, lse = kernel(query, key, value, 0.0, causal, scale=scale)
    return lse[0].float(), output.transpose(1, 2).to(dtype).contiguous()


def _relative(bias: torch.Tensor) -> torch.Tensor | None:
    """`[heads, 2n - 1]` by offset `j - i` if a square `[heads, n, n]` bias depends on nothing
    else (checked in blocks of rows), else None."""
    heads, q, k = bias.shape
    if q != k:
        return None
    # Offsets -(n-1)..0 from the first column read upwards, 1..n-1 from the first row.
    by_offset = torch.cat([bias[:, :, 0].flip(-1), bias[:, 0, 1:]], dim=-1).contiguous()
    cols = torch.arange(k, device=bias.device)
    step = max(1, BLOCK_ELEMENTS // max(1, heads * k))
    for start in range(0, q, step):
        rows = torch.arange(start, min(q, start + step), device=bias.device)
        rebuilt = by_offset[:, cols[None, :] - rows[:, None] + (q - 1)]
        if not torch.equal(rebuilt, bias[:, start : start + len(rows)]):
            return None
    return by_offset


def _matches_structure(mask: torch.Tensor, causal: bool, window: int | None) -> bool:
    """Whether a bool `[heads or 1, q, k]` mask is exactly causality and window (checked in
    blocks of rows, so it never builds a second n × n tensor)."""
    q, k = mask.shape[-2:]
    cols = torch.arange(k, device=mask.device)
    step = max(1, BLOCK_ELEMENTS // max(1, k))
    for start in range(0, q, step):
        rows = torch.arange(start, min(q, start + step), device=mask.device)
        block = mask[:, start : start + len(rows)]
        expected = _allowed(causal, window, k - q, None, rows, cols)
        if not torch.equal(block, expected.expand_as(block)):
            return False
    return True


def _allowed(causal, window, offset, mask, rows, cols, head=None):
    """Bool `[heads or 1, len(rows), len(cols)]` (one head: 2-D) where keys are computed.

    Query `i` sits at absolute position `i + offset` (keys cached before it).
    """
    if mask is not None:
        picked = mask[:, rows[:, None], cols[None, :]]
        if head is not None:
            return picked[head if picked.shape[0] > 1 else 0]
        return picked
    positions = rows[:, None] + offset
    allowed = torch.ones(len(rows), len(cols), dtype=torch.bool, device=rows.device)
    if causal:
        allowed &= cols[None, :] <= positions
        if window:
            allowed &= cols[None, :] > positions - window
    return allowed if head is not None else allowed[None]


def _scaled(products: torch.Tensor, scale: float, softcap: float | None) -> torch.Tensor:
    """Scores as the model forms them: q·k × scale, then the soft-cap if any (in place)."""
    scores = products.mul_(scale)
    if softcap is not None:
        scores = scores.div_(softcap).tanh_().mul_(softcap)
    return scores


def _blockwise(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor | None,
    scale: float,
    softcap: float | None,
    causal: bool,
    window: int | None,
    offset: int,
    mask: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    want_output: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each row's float32 log-sum-exp `[heads, q]` and, if wanted, the output `[heads, q, dv]`.

    `queries` `[heads, q, d]`, `keys`/`values` `[kv_heads, k, d]`. Rows go in blocks of at most
    `BLOCK_ELEMENTS` scores; without an explicit `mask`, each block reads only the keys its
    causal window can see.
    """
    heads, q, width = queries.shape
    groups, k = keys.shape[0], keys.shape[1]
    per_group = heads // groups
    keys32 = keys.float()
    values32 = values.float() if want_output and values is not None else None
    lse = torch.empty(heads, q, dtype=torch.float32, device=queries.device)
    output = (
        torch.empty(heads, q, values32.shape[-1], dtype=torch.float32, device=queries.device)
        if values32 is not None
        else None
    )
    step = max(1, min(q, BLOCK_ELEMENTS // max(1, heads * k)))
    for start in range(0, q, step):
        stop = min(q, start + step)
        first, last = 0, k
        if mask is None and causal:
            last = min(k, stop + offset)
            if window:
                first = max(0, start + offset - window + 1)
        rows = torch.arange(start, stop, device=queries.device)
        cols = torch.arange(first, last, device=queries.device)
        block = queries[:, start:stop].float().reshape(groups, per_group * (stop - start), width)
        scores = torch.bmm(block, keys32[:, first:last].transpose(1, 2))
        scores = _scaled(scores, scale, softcap).view(heads, stop - start, last - first)
        if bias is not None:
            scores += bias[:, start:stop, first:last]
        allowed = _allowed(causal, window, offset, mask, rows, cols)
        scores.masked_fill_(~allowed, -math.inf)
        block_lse = torch.logsumexp(scores, dim=-1)
        lse[:, start:stop] = block_lse
        if output is not None and values32 is not None:
            weights = torch.exp(scores.sub_(block_lse[..., None])).nan_to_num_(0.0)
            mixed = torch.bmm(
                weights.view(groups, per_group * (stop - start), last - first),
                values32[:, first:last],
            )
            output[:, start:stop] = mixed.view(heads, stop - start, -1)
    return lse, output
