"""Memory and size arithmetic from a model's config alone, and the machine's available memory.

Nothing here builds a model or loads weights: a hostile config is judged by arithmetic, in
microseconds, before anything is allocated for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InsufficientMemoryError, UnsupportedModelError
from core.loading_lock import LOADING_LOCK
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


def estimate_parameters(config: Any) -> int:
    """Parameters of the model `load_model` would build from `config`, without any weights.

    The model is instantiated on PyTorch's `meta` device, where tensors have shapes but no
    storage, so the count is exact (tied weights counted once) and costs no memory.
    """
    import torch

    from core.families import detect_family

    check_attention_shape(config)  # 100,000 layers took 266 s and 5.5 GB on the meta device
    try:
        # Building a model flips the same process-wide switches as loading one.
        with LOADING_LOCK, torch.device("meta"):
            network = detect_family(config).auto_class().from_config(config)
    except Exception as exc:  # any architecture's own constructor can fail in its own way
        raise UnsupportedModelError(
            f"Cannot work out the size of this '{getattr(config, 'model_type', '?')}' model from "
            f"its config ({type(exc).__name__}), so it is not loaded."
        ) from exc
    return sum(p.numel() for p in network.parameters())


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


def estimate_memory_bytes(config: Any, parameters: int, tokens: int) -> int:
    """Memory to load the model of `config` and analyse one `tokens`-token text.

    Weights plus twice one result: the forward pass holds every layer's attention and their
    stacked float32 copy at the same time.
    """
    return parameters * parameter_bytes(config) + 2 * result_bytes(config, tokens)


def check_memory(
    policy: DeployPolicy,
    config: Any,
    name: str = "This model",
    *,
    parameters: int | None = None,
    available: int | None = None,
) -> int:
    """Raise `InsufficientMemoryError` if the model and one result at the policy's token cap
    would not fit in the memory available (`available_memory_bytes` unless given).

    A private install has no parameter cap: a config claiming 310B parameters got the server
    killed by the kernel instead of refused. Returns the estimate in bytes; with no way to read
    the available memory, nothing is refused.
    """
    check_attention_shape(config, name)
    if parameters is None:
        parameters = estimate_parameters(config)
    tokens = tokens_for(policy, config)
    needed = estimate_memory_bytes(config, parameters, tokens)
    if available is None:
        available = available_memory_bytes()
    if available is not None and needed > available:
        raise InsufficientMemoryError(
            f"{quoted(name)} would need about {format_bytes(needed)} of memory "
            f"({format_parameters(parameters)} parameters, plus the attention of one "
            f"{tokens}-token text), but this machine has {format_bytes(available)} available. "
            "Pick a smaller model, or lower ATLAS_MAX_TOKENS if the attention is what does not "
            "fit."
        )
    return needed
