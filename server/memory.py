"""Memory and size arithmetic from a model's config alone, and the machine's available memory.

Nothing here builds a model or loads weights: a hostile config is judged by arithmetic, in
microseconds, before anything is allocated for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InsufficientMemoryError, UnsupportedModelError
from server.errors import ModelTooLargeError
from server.settings import DeployPolicy, shown_name

MAX_LAYERS = 256
"""Twice the deepest published text transformers (≈130 layers)."""
MAX_HEADS = 256
"""Twice the most heads per layer of published text transformers (128)."""
MAX_EXPERTS = 1_024
"""Experts per mixture-of-experts layer: more than any published model routes between."""
BYTES_PER_ATTENTION_WEIGHT = 4
"""Attention is kept as float32 whatever the model's own dtype."""


ABSOLUTE_POSITIONS = ("bert", "roberta", "distilbert", "albert", "gpt2", "bart", "electra")
"""Model types with a learned position table (BART's has 2 extra rows)."""
GATED_ACTIVATIONS = ("silu", "swish", "gelu_pytorch_tanh", "gelu_tanh")
"""Activations modern decoders use in a gated feed-forward layer (3 matrices, not 2)."""


def estimate_parameters(config: Any) -> int:
    """Parameters of the model `config` describes, by arithmetic on the config alone.

    Nothing is built (a hostile config of 1,024 experts is judged in microseconds, and no lock
    is taken): embeddings, then per layer the attention's projections (grouped-query heads
    counted with their key-value groups), the feed-forward layer (gated or not; every expert of
    a mixture-of-experts layer, and its shared experts and router), norms and biases, then the
    head the checkpoint is loaded with. Tied unembeddings count once; ALBERT's shared layers
    once per group. Equal to the built model's count for every architecture the tests build
    (BERT, RoBERTa, DistilBERT, ALBERT, GPT-2, BART, T5, Llama, Mistral, Qwen2/3, Gemma2/3,
    Phi3, Mixtral); an unknown architecture is estimated from the same fields. Raises
    `UnsupportedModelError` when the config lacks the sizes.
    """
    check_attention_shape(config)
    if getattr(config, "is_encoder_decoder", False):
        return _encoder_decoder_parameters(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    model_type = str(getattr(text, "model_type", "") or getattr(config, "model_type", ""))
    hidden = _required(text, config, "hidden_size", "n_embd", "d_model", "dim")
    layers = _required(text, config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    vocab = _config_count(text, "vocab_size") or 0
    classic = model_type in ABSOLUTE_POSITIONS or getattr(text, "attention_bias", None) is None
    classic = classic and _config_count(text, "num_key_value_heads") is None
    embedding = _config_count(text, "embedding_size") or hidden
    count = vocab * embedding
    if classic:
        positions = _config_count(text, "max_position_embeddings", "n_positions") or 0
        count += (positions + (2 if model_type == "bart" else 0)) * embedding
        count += (_config_count(text, "type_vocab_size") or 0) * embedding
        count += 2 * embedding if model_type != "gpt2" else 0  # embeddings' LayerNorm
        if embedding != hidden:  # ALBERT maps its small embeddings up
            count += embedding * hidden + hidden
    distinct = layers
    if model_type == "albert":  # shared layers: one set of weights per group
        distinct = (_config_count(text, "num_hidden_groups") or 1) * (
            _config_count(text, "inner_group_num") or 1
        )
    count += distinct * _layer_parameters(text, hidden, classic, model_type)
    count += _final_norm(text, hidden, classic, model_type)
    count += _head_parameters(config, text, hidden, vocab, embedding, classic, model_type)
    return count


def _required(text: Any, config: Any, *names: str) -> int:
    value = _config_count(text, *names) or _config_count(config, *names)
    if value is None:
        raise UnsupportedModelError(
            f"Cannot work out the size of this '{getattr(config, 'model_type', '?')}' model from "
            f"its config (no {names[0]}), so it is not loaded."
        )
    return value


def _attention_parameters(text: Any, hidden: int, bias: bool) -> int:
    heads = _config_count(text, "num_attention_heads", "n_head", "num_heads", "n_heads") or 1
    head_dim = _config_count(text, "head_dim", "d_kv") or hidden // heads
    groups = _config_count(text, "num_key_value_heads") or heads
    weights = hidden * head_dim * (2 * heads + 2 * groups)
    projections = (heads + 2 * groups) * head_dim
    if bias or getattr(text, "attention_bias", False):
        biases = projections + hidden  # query, key, value and output biases
    elif str(getattr(text, "model_type", "")).startswith("qwen2"):
        biases = projections  # Qwen2 biases its query, key and value projections only
    else:
        biases = 0
    if str(getattr(text, "model_type", "")) in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text"):
        biases += 2 * head_dim  # q and k norms
    return weights + biases


def _feed_forward_parameters(text: Any, hidden: int, bias: bool) -> int:
    inner = _config_count(text, "intermediate_size", "n_inner", "hidden_dim", "ffn_dim", "d_ff")
    inner = inner or 4 * hidden
    activation = str(
        getattr(text, "hidden_act", None) or getattr(text, "hidden_activation", None) or ""
    ).lower()
    gated = activation in GATED_ACTIVATIONS or "gated" in str(
        getattr(text, "feed_forward_proj", "")
    )
    matrices = 3 if gated else 2
    dense = matrices * hidden * inner + ((inner * (matrices - 1) + hidden) if bias else 0)
    experts = _config_count(
        text, "num_local_experts", "num_experts", "moe_num_experts", "n_routed_experts"
    )
    if not experts:
        return dense
    expert_inner = _config_count(text, "moe_intermediate_size") or inner
    shared = (_config_count(text, "n_shared_experts") or 0) * 3 * hidden * expert_inner
    shared_inner = _config_count(text, "shared_expert_intermediate_size")
    if shared_inner:
        shared += 3 * hidden * shared_inner + hidden  # and its gate
    return experts * 3 * hidden * expert_inner + experts * hidden + shared


def _layer_parameters(text: Any, hidden: int, classic: bool, model_type: str) -> int:
    norms = 2 * (2 * hidden if classic else hidden)
    if model_type.startswith("gemma2") or model_type.startswith("gemma3"):
        norms = 4 * hidden  # pre and post norms around both blocks
    mlp_bias = classic or bool(getattr(text, "mlp_bias", False))
    return (
        _attention_parameters(text, hidden, classic)
        + _feed_forward_parameters(text, hidden, mlp_bias)
        + norms
    )


def _final_norm(text: Any, hidden: int, classic: bool, model_type: str) -> int:
    if classic:
        return 2 * hidden if model_type == "gpt2" else 0  # BERT-like models norm per layer
    return hidden


def _head_parameters(
    config: Any, text: Any, hidden: int, vocab: int, embedding: int, classic: bool, model_type: str
) -> int:
    from core.families import detect_family
    from core.kinds import ModelKind

    kind = detect_family(config).kind
    tied = bool(getattr(config, "tie_word_embeddings", True))
    unembedding = 0 if tied else vocab * hidden
    if kind is ModelKind.MASKED_LM:
        # A transform (dense + norm) before the tied decoder, and the decoder's bias.
        return hidden * embedding + embedding + 2 * embedding + vocab + unembedding
    if kind is ModelKind.CAUSAL_LM:
        return unembedding
    if kind is ModelKind.ENCODER and model_type in ("bert", "roberta", "albert", "electra"):
        return hidden * hidden + hidden  # the pooler
    return 0


def _encoder_decoder_parameters(config: Any) -> int:
    """BART- and T5-like: shared embeddings, an encoder, a decoder with cross-attention."""
    model_type = str(getattr(config, "model_type", ""))
    hidden = _required(config, config, "d_model", "hidden_size")
    vocab = _config_count(config, "vocab_size") or 0
    heads = _config_count(config, "encoder_attention_heads", "num_heads") or 1
    head_dim = _config_count(config, "d_kv") or hidden // heads
    inner = _config_count(config, "encoder_ffn_dim", "d_ff") or 4 * hidden
    encoder = _config_count(config, "encoder_layers", "num_layers") or 1
    decoder = _config_count(config, "decoder_layers", "num_decoder_layers") or encoder
    if model_type == "t5" or hasattr(config, "relative_attention_num_buckets"):
        gated = "gated" in str(getattr(config, "feed_forward_proj", ""))
        attention = 4 * hidden * heads * head_dim
        feed_forward = (3 if gated else 2) * hidden * inner
        buckets = (_config_count(config, "relative_attention_num_buckets") or 32) * heads
        count = vocab * hidden
        count += encoder * (attention + feed_forward + 2 * hidden) + buckets + hidden
        count += decoder * (2 * attention + feed_forward + 3 * hidden) + buckets + hidden
        if not getattr(config, "tie_word_embeddings", True):
            count += vocab * hidden
        return count
    positions = (_config_count(config, "max_position_embeddings") or 0) + 2
    attention = 4 * hidden * hidden + 4 * hidden
    feed_forward = 2 * hidden * inner + inner + hidden
    count = vocab * hidden + 2 * positions * hidden + 2 * (2 * hidden)  # + embedding norms
    count += encoder * (attention + feed_forward + 2 * 2 * hidden)
    count += decoder * (2 * attention + feed_forward + 3 * 2 * hidden)
    return count  # the LM head is tied; its final_logits_bias is a buffer, not a parameter


def format_parameters(count: int) -> str:
    if count >= 1_000_000_000:
        return f"{count / 1e9:.1f}B"
    if count >= 1_000_000:
        return f"{count / 1e6:.0f}M"
    return f"{count / 1e3:.0f}k"


# ---------------------------------------------------------------- sizes from the config alone
@dataclass(frozen=True)
class AttentionShape:
    """Layers and heads of the attention a model returns, read from its config."""

    layers: int
    heads: int
    decoder_layers: int = 0
    """Encoder-decoder models only; 0 otherwise."""
    decoder_heads: int = 0

    def result_bytes(self, tokens: int) -> int:
        """Bytes of one text's attention at `tokens` tokens, float32.

        Encoder (or decoder-only) `[layers, heads, n, n]`; for encoder-decoder models also the
        decoder's self-attention `[decoder_layers, decoder_heads, m, m]` and its cross-attention
        `[decoder_layers, decoder_heads, m, n]`, counted with a target as long as the source
        (m = n), the most a visitor can ask for.
        """
        if tokens < 1:
            raise ValueError(f"tokens must be positive, not {tokens}")
        squares = self.layers * self.heads + 2 * self.decoder_layers * self.decoder_heads
        return squares * tokens * tokens * BYTES_PER_ATTENTION_WEIGHT


def _config_count(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def attention_shape(config: Any) -> AttentionShape:
    """The attention layout of the model `config` describes: arithmetic, nothing is built.

    Reads the same attributes `core.load_model` does. Raises `UnsupportedModelError` when a
    count is missing.
    """
    text_config = config
    if not getattr(config, "is_encoder_decoder", False) and hasattr(config, "get_text_config"):
        text_config = config.get_text_config()
    if getattr(config, "is_encoder_decoder", False):
        layers = _config_count(config, "encoder_layers", "num_layers", "num_hidden_layers")
        heads = _config_count(config, "encoder_attention_heads", "num_heads", "num_attention_heads")
        decoder_layers = _config_count(config, "decoder_layers", "num_decoder_layers") or layers
        decoder_heads = (
            _config_count(config, "decoder_attention_heads", "num_heads", "num_attention_heads")
            or heads
        )
    else:
        layers = _config_count(text_config, "num_hidden_layers", "n_layer", "num_layers")
        heads = _config_count(text_config, "num_attention_heads", "n_head", "num_heads")
        decoder_layers = decoder_heads = 0
    if layers is None or heads is None:
        raise UnsupportedModelError(
            f"Cannot work out the size of this '{getattr(config, 'model_type', '?')}' model: its "
            "config does not say how many layers and heads it has, so it is not loaded."
        )
    return AttentionShape(layers, heads, decoder_layers or 0, decoder_heads or 0)


def check_attention_shape(config: Any, name: str = "This model") -> AttentionShape:
    """Refuse configs no real text transformer has: more than `MAX_LAYERS` layers, `MAX_HEADS`
    heads or `MAX_EXPERTS` experts. Arithmetic only, so a hostile config is refused in
    microseconds rather than built (even on the meta device, which costs time and memory per
    module). Raises `ModelTooLargeError`; returns the shape."""
    shape = attention_shape(config)
    experts = _config_count(
        config, "num_experts", "num_local_experts", "moe_num_experts", "n_routed_experts"
    )
    layers = max(shape.layers, shape.decoder_layers)
    heads = max(shape.heads, shape.decoder_heads)
    if layers > MAX_LAYERS or heads > MAX_HEADS or (experts or 0) > MAX_EXPERTS:
        raise ModelTooLargeError(
            f"{quoted(name)} declares {layers:,} layers of {heads:,} heads"
            + (f" and {experts:,} experts" if experts else "")
            + f"; Attention Atlas shows models of up to {MAX_LAYERS:,} layers and {MAX_HEADS:,} "
            "heads, and real text transformers have far fewer. Its config is not used."
        )
    return shape


def quoted(name: str) -> str:
    return "This model" if name == "This model" else f"'{shown_name(name)}'"


def config_max_tokens(config: Any) -> int:
    """Tokens the model of `config` can read: its position table, or 512 when it has none
    (relative positions, as in T5), the fallback `core.load_model` uses too."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return _config_count(text_config, "max_position_embeddings", "n_positions") or 512


def tokens_for(policy: DeployPolicy, config: Any, max_tokens: int | None = None) -> int:
    """Most tokens one text can have on the model of `config`: `max_tokens` if given, else
    `policy.max_tokens`, never more than the model's own limit."""
    cap = max_tokens if max_tokens is not None else policy.max_tokens
    own = config_max_tokens(config)
    return own if cap is None else min(cap, own)


def result_bytes(config: Any, tokens: int) -> int:
    """Bytes of one text's attention at `tokens` tokens (see `AttentionShape.result_bytes`)."""
    return attention_shape(config).result_bytes(tokens)


def format_bytes(count: float) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.0f} MB"


# ---------------------------------------------------------------- memory (private mode)
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")


def available_memory_bytes(meminfo: Path = MEMINFO, cgroup: Path = CGROUP) -> int | None:
    """Memory this process can still take: the kernel's MemAvailable, or what is left under
    the container's cgroup limit if that is lower. None when neither can be read.

    cgroup v2 (`memory.max`, `memory.current`) and v1 (`memory/memory.limit_in_bytes`,
    `memory/memory.usage_in_bytes`) are read; an unlimited cgroup ("max", or v1's huge
    sentinel) does not count.
    """
    candidates: list[int] = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        (cgroup / "memory.max", cgroup / "memory.current"),
        (cgroup / "memory" / "memory.limit_in_bytes", cgroup / "memory" / "memory.usage_in_bytes"),
    ):
        try:
            limit_text = limit_file.read_text().strip()
            if limit_text == "max":
                continue
            limit, usage = int(limit_text), int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit < 2**60:  # cgroup v1 writes ≈2⁶³ for "no limit"
            candidates.append(max(0, limit - usage))
    return min(candidates) if candidates else None


def parameter_bytes(config: Any) -> int:
    """Bytes per parameter once loaded: the checkpoint's own dtype (transformers keeps it),
    float32 when the config does not say."""
    dtype = getattr(config, "dtype", None)
    name = str(dtype or "float32").removeprefix("torch.")
    return {"float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}.get(name, 4)


def kept_bytes(config: Any, tokens: int) -> int:
    """Bytes one `tokens`-token text's result keeps on the model of `config` (`core.capture`).

    Per self-attention layer: the queries `[heads, n, head_dim]` and the keys once per
    key-value group `[kv_heads, n, head_dim]`, in the model's dtype, and a float32 normaliser
    per head and row; and the whole float32 `[layers, heads, n, n]` array up to the result's
    budget (`core.DENSE_BUDGET_BYTES`): a short text's views build it, a longer text's read
    pieces, and counting the budget keeps the estimate growing with the tokens, so "how many
    tokens fit" has one answer. An encoder-decoder's decoder and cross attention are kept
    whole (float32, a target as long as the source). Equal to `AttentionResult.nbytes` once
    the whole array of a short text is read.
    """
    from core.exact import DENSE_BUDGET_BYTES

    if tokens < 1:
        raise ValueError(f"tokens must be positive, not {tokens}")
    shape = attention_shape(config)
    width, key_value_heads = _head_sizes(config, shape.heads)
    per_layer = tokens * (
        width * (shape.heads + key_value_heads) * parameter_bytes(config) + 4 * shape.heads
    )
    whole = shape.layers * shape.heads * tokens * tokens * BYTES_PER_ATTENTION_WEIGHT
    decoder = 2 * shape.decoder_layers * shape.decoder_heads * tokens * tokens
    return (
        shape.layers * per_layer
        + min(whole, DENSE_BUDGET_BYTES)
        + decoder * BYTES_PER_ATTENTION_WEIGHT
    )


def pass_bytes(config: Any, tokens: int) -> int:
    """Peak bytes of the forward pass's own tensors at `tokens` tokens, beyond the weights.

    Per token, in the model's dtype: the residual stream and its norms (6 × hidden) and the
    feed-forward layer's gate, up and product (3 × intermediate); in float32, the queries and
    the keys and values repeated per query head that the fused kernel reads (3 × heads ×
    head_dim). Then the logits: one row for a causal LM (`run_attention` keeps the last
    only), every row for others; and three float32 blocks of `core.capture.BLOCK_ELEMENTS`
    scores (the blockwise passes and recomputations hold one block at a time). An
    encoder-decoder's eager decoder holds its weights twice (per layer, and stacked).
    """
    from core.capture import BLOCK_ELEMENTS
    from core.families import detect_family
    from core.kinds import ModelKind

    shape = attention_shape(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = _config_count(text, "hidden_size", "n_embd", "d_model", "dim") or 0
    inner = _config_count(text, "intermediate_size", "n_inner", "hidden_dim", "ffn_dim", "d_ff")
    inner = inner or 4 * hidden
    width, _ = _head_sizes(config, shape.heads)
    vocab = _config_count(text, "vocab_size") or 0
    size = parameter_bytes(config)
    per_token = size * (6 * hidden + 3 * inner) + 4 * 3 * shape.heads * width
    causal = detect_family(config).kind is ModelKind.CAUSAL_LM
    logits = vocab * (size * (1 if causal else tokens) + 4)
    decoder = 2 * shape.decoder_layers * shape.decoder_heads * tokens * tokens * 4
    return tokens * per_token + logits + 3 * 4 * BLOCK_ELEMENTS + decoder


def text_memory_bytes(config: Any, tokens: int) -> int:
    """Memory one `tokens`-token text needs beside the loaded weights: `kept_bytes` plus
    `pass_bytes`."""
    return kept_bytes(config, tokens) + pass_bytes(config, tokens)


def _head_sizes(config: Any, heads: int) -> tuple[int, int]:
    """`(head_dim, kv_heads)` of the self-attention (kv_heads: heads without grouping)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = _config_count(text, "hidden_size", "n_embd", "d_model", "dim") or heads
    width = _config_count(text, "head_dim", "d_kv") or max(1, hidden // heads)
    return width, _config_count(text, "num_key_value_heads") or heads


def estimate_memory_bytes(config: Any, parameters: int, tokens: int) -> int:
    """Memory to load the model of `config` and analyse one `tokens`-token text: the weights
    and `text_memory_bytes`."""
    return parameters * parameter_bytes(config) + text_memory_bytes(config, tokens)


MEMORY_CHECK_TOKENS = 512
"""At load time the memory check counts one text of this many tokens (or the token cap, or the
model's own limit, if lower) beside the weights. A model's limit is no text's length: sized at
32,768 positions a 0.5B model "needed" 2.9 TB and was refused for a 100-token text. Each text
is then checked at its own length before it runs (`check_text_memory`)."""


def check_memory(
    policy: DeployPolicy,
    config: Any,
    name: str = "This model",
    *,
    parameters: int | None = None,
    available: int | None = None,
) -> int:
    """Raise `InsufficientMemoryError` if the model and one ordinary text (at
    `MEMORY_CHECK_TOKENS`, or the policy's token cap) would not fit in the memory available
    (`available_memory_bytes` unless given).

    A private install has no parameter cap: a config claiming 310B parameters got the server
    killed by the kernel instead of refused. Returns the estimate in bytes; with no way to read
    the available memory, nothing is refused.
    """
    check_attention_shape(config, name)
    if parameters is None:
        parameters = estimate_parameters(config)
    tokens = tokens_for(policy, config, policy.max_tokens or MEMORY_CHECK_TOKENS)
    needed = estimate_memory_bytes(config, parameters, tokens)
    what = (
        f"{quoted(name)} would need about {format_bytes(needed)} of memory "
        f"({format_parameters(parameters)} parameters, plus one {tokens}-token text)"
    )
    return _fits(needed, available, what, "Pick a smaller model.")


def check_text_memory(
    config: Any, tokens: int, name: str = "This model", *, available: int | None = None
) -> int:
    """Raise `InsufficientMemoryError` if one `tokens`-token text on the (loaded) model of
    `config` would not fit in the memory available: what its result keeps and its forward
    pass's peak (`text_memory_bytes`), never the whole layers × heads × n² array beyond the
    result's budget. Call it before the text runs. Returns the estimate in bytes.

    The message says what to lower: the tokens (the longest text that fits), and the dtype
    when the model runs in float32 (bfloat16 halves the queries, keys and activations).
    """
    tokens = max(1, tokens)
    needed = text_memory_bytes(config, tokens)
    what = (
        f"This {tokens:,}-token text on {quoted(name)} would need about "
        f"{format_bytes(needed)} of memory (its queries, keys and normalisers per layer, and "
        "the forward pass)"
    )
    advice = "Use fewer tokens (a shorter text)"
    if available is None:
        available = available_memory_bytes()
    if available is not None and needed > available:
        fitting = _longest_fitting(config, available)
        if fitting:
            advice += f": about {fitting:,} tokens fit"
        if parameter_bytes(config) > 2:
            advice += ", or load the model in bfloat16 (half the memory per token)"
    return _fits(needed, available, what, advice + ".")


def _longest_fitting(config: Any, available: int) -> int:
    """The most tokens whose `text_memory_bytes` fits in `available` (0: not even one)."""
    low, high = 0, config_max_tokens(config)
    while low < high:
        middle = (low + high + 1) // 2
        if text_memory_bytes(config, middle) <= available:
            low = middle
        else:
            high = middle - 1
    return low


def _fits(needed: int, available: int | None, what: str, advice: str) -> int:
    """`needed`, or `InsufficientMemoryError` ("`what`, but …. `advice`") when it is more than
    `available` (`available_memory_bytes()` unless given; unknown: nothing is refused)."""
    if available is None:
        available = available_memory_bytes()
    if available is not None and needed > available:
        raise InsufficientMemoryError(
            f"{what}, but this machine has {format_bytes(available)} available. {advice}"
        )
    return needed
