"""Public-deploy policy: which models a visitor may load, and how much one visitor may ask for.

A public deployment (e.g. Streamlit Community Cloud, ≈2.7 GB of RAM shared by every visitor)
must not let one visitor download a 7-billion-parameter model, open files on the server, run a
checkpoint's own code or fill the memory with a pasted book. `DeployPolicy` says what is
allowed; `policy_from_env` builds it from environment variables (or Streamlit secrets, passed in
as a plain mapping, so this module stays UI-free); `load_model_for` applies it around
`core.load_model`, checking the allowlist and the model size before any weights are downloaded.

Settings (environment variables win over secrets of the same name):

``ATLAS_PUBLIC``            ``1``/``true`` turns public mode on (default off).
``ATLAS_ALLOWED_MODELS``    ``presets`` (the public default), ``any``, or a comma list of names
                            (``presets`` may appear in it).
``ATLAS_MAX_TOKENS``        Tokens read per text (public default 256; ``none`` for no cap).
``ATLAS_MAX_CHARS``         Characters accepted per text (public default 20,000).
``ATLAS_MAX_PARAMETERS``    Largest model, e.g. ``150M`` or ``1.5B`` (public default 150M).
``ATLAS_SAFETENSORS_ONLY``  Load only ``*.safetensors`` weights (always on in public mode).
``ATLAS_MAX_RESULT_BYTES``  Largest attention result of one text, e.g. ``160M`` (public default
                            160M), checked from the config before any weights load.
``ATLAS_MAX_FLOW_ROWS``     Attention-flow rows per request (public default 16).
``ATLAS_MAX_FLOW_SECONDS``  Seconds one attention flow may run before it is stopped (public 30).
``ATLAS_MAX_VALUE_ZEROING_TOKENS`` Longest text value zeroing is computed for (public 128).
``ATLAS_MAX_AGREEMENT_TOKENS`` Longest text the leave-one-out agreement is computed for (public 64).
``ATLAS_MAX_EXPORT_CELLS``  Numbers in one download (public default 2M).
``ATLAS_MAX_MASKS``         Masked positions whose predictions are drawn per text (public 8).
``ATLAS_MAX_CORPUS_SENTENCES`` Sentences one Corpus page run may measure (public 500).

Without ``ATLAS_PUBLIC`` none of these budgets applies unless set, but a model whose weights
plus one result would not fit in the memory available is refused (`check_memory`). In every
mode a config with an absurd number of layers, heads or experts is refused arithmetically
(`check_attention_shape`) before anything is built from it.

Remote code (``trust_remote_code``) is never enabled, public or not: there is no setting for it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import AgreementTooLargeError as AgreementTooLargeError
from core.errors import BudgetExceededError as BudgetExceededError

# The budget errors live in core.errors; `X as X` re-exports them for callers of this module.
from core.errors import (
    DeployConfigError,
    ModelLoadError,
    ModelNotAllowedError,
    ModelTooLargeError,
    TextTooLongError,
    UnsafeWeightsError,
    UnsupportedModelError,
)
from core.errors import ExportTooLargeError as ExportTooLargeError
from core.errors import FlowTimeExceededError as FlowTimeExceededError
from core.errors import FlowTooLargeError as FlowTooLargeError
from core.errors import InsufficientMemoryError as InsufficientMemoryError
from core.errors import ResultTooLargeError as ResultTooLargeError
from core.errors import ValueZeroingTooLargeError as ValueZeroingTooLargeError
from core.loading_lock import LOADING_LOCK
from core.models import PRESETS, LoadedModel, load_config, load_model

ENV_PUBLIC = "ATLAS_PUBLIC"
ENV_ALLOWED_MODELS = "ATLAS_ALLOWED_MODELS"
ENV_MAX_TOKENS = "ATLAS_MAX_TOKENS"
ENV_MAX_CHARS = "ATLAS_MAX_CHARS"
ENV_MAX_PARAMETERS = "ATLAS_MAX_PARAMETERS"
ENV_SAFETENSORS_ONLY = "ATLAS_SAFETENSORS_ONLY"
ENV_MAX_RESULT_BYTES = "ATLAS_MAX_RESULT_BYTES"
ENV_MAX_FLOW_ROWS = "ATLAS_MAX_FLOW_ROWS"
ENV_MAX_FLOW_SECONDS = "ATLAS_MAX_FLOW_SECONDS"
ENV_MAX_VALUE_ZEROING_TOKENS = "ATLAS_MAX_VALUE_ZEROING_TOKENS"
ENV_MAX_AGREEMENT_TOKENS = "ATLAS_MAX_AGREEMENT_TOKENS"
ENV_MAX_EXPORT_CELLS = "ATLAS_MAX_EXPORT_CELLS"
ENV_MAX_MASKS = "ATLAS_MAX_MASKS"
ENV_MAX_CORPUS_SENTENCES = "ATLAS_MAX_CORPUS_SENTENCES"
SETTINGS = (
    ENV_PUBLIC,
    ENV_ALLOWED_MODELS,
    ENV_MAX_TOKENS,
    ENV_MAX_CHARS,
    ENV_MAX_PARAMETERS,
    ENV_SAFETENSORS_ONLY,
    ENV_MAX_RESULT_BYTES,
    ENV_MAX_FLOW_ROWS,
    ENV_MAX_FLOW_SECONDS,
    ENV_MAX_VALUE_ZEROING_TOKENS,
    ENV_MAX_AGREEMENT_TOKENS,
    ENV_MAX_EXPORT_CELLS,
    ENV_MAX_MASKS,
    ENV_MAX_CORPUS_SENTENCES,
)

PUBLIC_MAX_TOKENS = 256
"""Attention is `layers × heads × n²` floats: 256 tokens on BERT-base is 38 MB per cached
result, 512 tokens would be 151 MB, too much for a shared 2.7 GB machine."""
PUBLIC_MAX_CHARS = 20_000
"""Tokenizing costs time even for the part that is cut off (1 MB of text takes seconds)."""
PUBLIC_MAX_PARAMETERS = 150_000_000
"""Above the largest preset (roberta-base, 125M); a 340M model needs ≈1.4 GB on its own."""
MIN_TOKENS = 16
"""Below this a sentence pair no longer fits beside its special tokens."""
PUBLIC_MAX_RESULT_BYTES = 160_000_000
"""One text's attention, `layers × heads × tokens² × 4` bytes: BERT-base at 512 tokens is 151 MB
and fits (an operator may raise the token cap to 512); a 100-layer × 64-head model at 256 tokens
(1.7 GB, 4 GB at the peak of its forward pass) does not."""
PUBLIC_MAX_FLOW_ROWS = 16
"""Each flow row of an n-token text is n maximum-flow problems: at 256 tokens a row took ≈8 s of
CPU (852 s for 41 % of a full flow), so 16 rows is already minutes at the top of the cap; the
time budget below stops it sooner."""
PUBLIC_MAX_FLOW_SECONDS = 30
"""A flow is stopped after this long: half a minute of one core, then the visitor picks fewer
rows or a shorter text."""
PUBLIC_MAX_VALUE_ZEROING_TOKENS = 128
"""Value zeroing re-runs a layer once per token, so one layer's cost grows with n²: on one
thread one bert-base layer took 3.4 s at 128 tokens and 17.3 s at 256 (bench/RESULTS.md,
Methods). Longer texts are refused before it starts."""
PUBLIC_MAX_AGREEMENT_TOKENS = 64
"""The agreement panel runs the model once per token (leave-one-out) and computes every method,
value zeroing on every layer among them: at 64 tokens those two parts took 24 s and 14 s on
one thread for bert-base (bench/RESULTS.md, Methods), so it is offered for short texts only."""
PUBLIC_MAX_EXPORT_CELLS = 2_000_000
"""One "all layers and heads" CSV of 3.98 M cells added 536 MB at peak for a 144 MB file
(≈135 bytes a cell): 2 M cells bounds one download near 270 MB. MiniLM at 166 tokens, or one
layer of any preset at 256, fits."""
PUBLIC_MAX_MASKS = 8
"""Each masked position draws its own prediction chart; 254 masks drew 509 charts (35.6 MB of
specs) in 34 s."""
PUBLIC_MAX_CORPUS_SENTENCES = 500
"""A Corpus page run measures at most this many sentences: 500 sentences of ≤ 64 tokens on the
embedded model are about a minute of one core; larger corpora are for `python -m core.corpus`."""
MAX_LAYERS = 256
"""Twice the deepest published text transformers (≈130 layers). Checked before the model is
built on the meta device, which costs per module: 266 s and 5.5 GB for 100,000 layers, ≈2 s
for 1,000."""
MAX_HEADS = 256
"""Twice the most heads per layer of published text transformers (128)."""
MAX_EXPERTS = 1_024
"""Mixture-of-experts configs build one module per expert and layer on the meta device too."""
BYTES_PER_ATTENTION_WEIGHT = 4
"""Attention is kept as float32 whatever the model's own dtype."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_NONE = {"none", "off", "0", "unlimited"}
_ANY = {"any", "*"}
_PRESETS_WORD = "presets"
_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000, "g": 1_000_000_000}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmbg]?)\s*$", re.IGNORECASE)
_NAME_SHOWN = 80


@dataclass(frozen=True)
class DeployPolicy:
    """What a deployment allows. The defaults are a private, unrestricted install."""

    public: bool = False
    allowed_models: tuple[str, ...] | None = None
    """Exact names a visitor may load; None allows any Hub id (and, when not public, paths)."""
    max_tokens: int | None = None
    """Tokens read per text; longer input is truncated with a warning. None: the model's own."""
    max_chars: int | None = None
    """Characters accepted per text; longer text is refused before tokenizing."""
    max_parameters: int | None = None
    safetensors_only: bool = False
    max_result_bytes: int | None = None
    """Largest attention result of one text at `max_tokens`, from the config (`result_bytes`)."""
    max_flow_rows: int | None = None
    """Attention-flow rows one request may ask for (`check_flow_request`)."""
    max_flow_seconds: int | None = None
    """Seconds one attention flow may run (`flow_progress_with_budget`)."""
    max_value_zeroing_tokens: int | None = None
    """Longest text value zeroing is computed for (`check_value_zeroing_request`)."""
    max_agreement_tokens: int | None = None
    """Longest text the leave-one-out agreement is computed for (`check_agreement_request`)."""
    max_export_cells: int | None = None
    """Numbers one download may hold (`check_export_cells`)."""
    max_masks: int | None = None
    """Masked positions whose predictions are drawn per text (`masks_allowed`)."""
    max_corpus_sentences: int | None = None
    """Sentences one Corpus page run may measure."""

    @classmethod
    def strict(cls) -> DeployPolicy:
        """Public mode with every default: what a misconfigured public deployment falls back to."""
        return cls(
            public=True,
            allowed_models=tuple(PRESETS),
            max_tokens=PUBLIC_MAX_TOKENS,
            max_chars=PUBLIC_MAX_CHARS,
            max_parameters=PUBLIC_MAX_PARAMETERS,
            safetensors_only=True,
            max_result_bytes=PUBLIC_MAX_RESULT_BYTES,
            max_flow_rows=PUBLIC_MAX_FLOW_ROWS,
            max_flow_seconds=PUBLIC_MAX_FLOW_SECONDS,
            max_value_zeroing_tokens=PUBLIC_MAX_VALUE_ZEROING_TOKENS,
            max_agreement_tokens=PUBLIC_MAX_AGREEMENT_TOKENS,
            max_export_cells=PUBLIC_MAX_EXPORT_CELLS,
            max_masks=PUBLIC_MAX_MASKS,
            max_corpus_sentences=PUBLIC_MAX_CORPUS_SENTENCES,
        )

    @property
    def offers_any_model(self) -> bool:
        """True when visitors may type a model id instead of picking from a list."""
        return self.allowed_models is None


def policy_from_env(
    env: Mapping[str, str], secrets: Mapping[str, Any] | None = None
) -> DeployPolicy:
    """Build the policy from `env` (e.g. `os.environ`) and optional Streamlit `secrets`.

    Secrets hold the same names at the top level (`ATLAS_PUBLIC = true` in secrets.toml, where
    TOML booleans, integers and arrays are accepted too); an environment variable overrides the
    secret of the same name. Raises `DeployConfigError` for values it cannot read: a typo in a
    public deployment must not silently turn the limits off.
    """
    values: dict[str, Any] = {}
    for source in (secrets or {}, env):
        for key in SETTINGS:
            if key in source and source[key] is not None:
                values[key] = source[key]

    public = _flag(values, ENV_PUBLIC, default=False)
    safetensors_only = _flag(values, ENV_SAFETENSORS_ONLY, default=public)
    if public and not safetensors_only:
        raise DeployConfigError(
            f"{ENV_SAFETENSORS_ONLY} cannot be turned off in public mode: pickle weight files "
            "(pytorch_model.bin) can run code when they are opened."
        )
    return DeployPolicy(
        public=public,
        allowed_models=_allowed(values, public),
        max_tokens=_amount(values, ENV_MAX_TOKENS, PUBLIC_MAX_TOKENS if public else None),
        max_chars=_amount(values, ENV_MAX_CHARS, PUBLIC_MAX_CHARS if public else None),
        max_parameters=_amount(
            values, ENV_MAX_PARAMETERS, PUBLIC_MAX_PARAMETERS if public else None
        ),
        safetensors_only=safetensors_only,
        max_result_bytes=_amount(
            values, ENV_MAX_RESULT_BYTES, PUBLIC_MAX_RESULT_BYTES if public else None
        ),
        max_flow_rows=_amount(values, ENV_MAX_FLOW_ROWS, PUBLIC_MAX_FLOW_ROWS if public else None),
        max_flow_seconds=_amount(
            values, ENV_MAX_FLOW_SECONDS, PUBLIC_MAX_FLOW_SECONDS if public else None
        ),
        max_value_zeroing_tokens=_amount(
            values,
            ENV_MAX_VALUE_ZEROING_TOKENS,
            PUBLIC_MAX_VALUE_ZEROING_TOKENS if public else None,
        ),
        max_agreement_tokens=_amount(
            values, ENV_MAX_AGREEMENT_TOKENS, PUBLIC_MAX_AGREEMENT_TOKENS if public else None
        ),
        max_export_cells=_amount(
            values, ENV_MAX_EXPORT_CELLS, PUBLIC_MAX_EXPORT_CELLS if public else None
        ),
        max_masks=_amount(values, ENV_MAX_MASKS, PUBLIC_MAX_MASKS if public else None),
        max_corpus_sentences=_amount(
            values, ENV_MAX_CORPUS_SENTENCES, PUBLIC_MAX_CORPUS_SENTENCES if public else None
        ),
    )


def _flag(values: Mapping[str, Any], key: str, *, default: bool) -> bool:
    if key not in values:
        return default
    raw = values[key]
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DeployConfigError(f"{key}={str(raw)[:40]!r} is not a yes/no value: use 1 or 0.")


def _allowed(values: Mapping[str, Any], public: bool) -> tuple[str, ...] | None:
    raw = values.get(ENV_ALLOWED_MODELS)
    if raw is None:
        return tuple(PRESETS) if public else None
    items = [str(item) for item in raw] if isinstance(raw, list | tuple) else str(raw).split(",")
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise DeployConfigError(
            f"{ENV_ALLOWED_MODELS} is empty: give 'presets', 'any', or model names separated by "
            "commas."
        )
    if len(names) == 1 and names[0].lower() in _ANY:
        return None
    allowed: list[str] = []
    for name in names:
        for expanded in PRESETS if name.lower() == _PRESETS_WORD else (name,):
            if expanded not in allowed:
                allowed.append(expanded)
    return tuple(allowed)


def _amount(values: Mapping[str, Any], key: str, default: int | None) -> int | None:
    if key not in values:
        return default
    raw = values[key]
    if isinstance(raw, bool):
        raise DeployConfigError(f"{key} must be a number, not {raw}.")
    if isinstance(raw, int):
        number = raw
    else:
        text = str(raw).strip().replace("_", "").replace(",", "")
        if text.lower() in _NONE:
            return None
        match = _AMOUNT.match(text)
        if not match:
            raise DeployConfigError(
                f"{key}={str(raw)[:40]!r} is not a number: write e.g. 256, 150M or 1.5B."
            )
        number = int(float(match.group(1)) * _SUFFIXES[match.group(2).lower()])
    if number == 0:
        return None
    if number < 0:
        raise DeployConfigError(f"{key} must be positive, not {number}.")
    if key == ENV_MAX_TOKENS and number < MIN_TOKENS:
        raise DeployConfigError(f"{key} must be at least {MIN_TOKENS}, not {number}.")
    return number


# ---------------------------------------------------------------- checks
def shown_name(name: str) -> str:
    """A visitor-typed name cut to a length that fits in a message."""
    name = name.strip()
    return name if len(name) <= _NAME_SHOWN else name[: _NAME_SHOWN - 1] + "…"


def _looks_local(name: str) -> bool:
    if name.startswith((".", "/", "~", "\\")) or "\\" in name or name.count("/") > 1:
        return True
    try:
        return Path(os.path.expanduser(name)).exists()
    except (OSError, ValueError):  # NUL bytes, names too long for the filesystem
        return True


def check_model_allowed(policy: DeployPolicy, name: str) -> None:
    """Raise `ModelNotAllowedError` unless the deployment lets a visitor load `name`.

    Runs before anything touches the filesystem or the network. In public mode a local path is
    refused even with no allowlist: visitors must not learn what the server's disk holds.
    """
    name = (name or "").strip()
    if policy.allowed_models is not None:
        if name in policy.allowed_models:
            return
        offered = ", ".join(policy.allowed_models)
        raise ModelNotAllowedError(
            f"'{shown_name(name)}' is not one of the models this public deployment offers "
            f"({offered}). Typing other Hub ids or local directories is turned off here so that "
            "one visitor cannot fill the memory everyone shares; run Attention Atlas on your own "
            "machine to analyse any model."
        )
    if policy.public and _looks_local(name):
        raise ModelNotAllowedError(
            f"'{shown_name(name)}' looks like a path on the server. This public deployment only "
            "loads models from the Hugging Face Hub (e.g. 'bert-base-uncased'); run Attention "
            "Atlas on your own machine to open a local checkpoint."
        )


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


def check_model_size(policy: DeployPolicy, config: Any, name: str) -> int:
    """Raise `ModelTooLargeError` if the model of `config` exceeds `policy.max_parameters`.

    Returns the estimated parameter count.
    """
    count = estimate_parameters(config)
    if policy.max_parameters is not None and count > policy.max_parameters:
        raise ModelTooLargeError(
            f"'{shown_name(name)}' has {format_parameters(count)} parameters; this deployment "
            f"loads models up to {format_parameters(policy.max_parameters)} "
            f"(≈{count * 4 / 1e9:.1f} GB of memory in float32, on a machine every visitor "
            "shares). Pick a smaller model."
        )
    return count


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
            f"{_quoted(name)} declares {layers:,} layers of {heads:,} heads"
            + (f" and {experts:,} experts" if experts else "")
            + f"; Attention Atlas shows models of up to {MAX_LAYERS:,} layers and {MAX_HEADS:,} "
            "heads, and real text transformers have far fewer. Its config is not used."
        )
    return shape


def _quoted(name: str) -> str:
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


def check_result_size(
    policy: DeployPolicy, config: Any, max_tokens: int | None = None, name: str = "This model"
) -> int:
    """Raise `ResultTooLargeError` if one text's attention would exceed
    `policy.max_result_bytes`. Reads only the config: call it before any weights load.

    `max_tokens` (default `policy.max_tokens`) is bounded by the model's own limit.
    Returns the size in bytes at that many tokens.
    """
    shape = check_attention_shape(config, name)
    tokens = tokens_for(policy, config, max_tokens)
    size = shape.result_bytes(tokens)
    if policy.max_result_bytes is not None and size > policy.max_result_bytes:
        raise ResultTooLargeError(
            f"{_quoted(name)} has {shape.layers} layers × {shape.heads} heads"
            + (
                f" (and a decoder of {shape.decoder_layers} × {shape.decoder_heads})"
                if shape.decoder_layers
                else ""
            )
            + f": the attention of one {tokens}-token text would take {format_bytes(size)}, and "
            f"this deployment allows {format_bytes(policy.max_result_bytes)} per text on a "
            "machine every visitor shares. Pick a smaller model."
        )
    return size


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
            f"{_quoted(name)} would need about {format_bytes(needed)} of memory "
            f"({format_parameters(parameters)} parameters, plus the attention of one "
            f"{tokens}-token text), but this machine has {format_bytes(available)} available. "
            "Pick a smaller model, or lower ATLAS_MAX_TOKENS if the attention is what does not "
            "fit."
        )
    return needed


# ---------------------------------------------------------------- per-request budgets
def check_flow_request(policy: DeployPolicy, n_tokens: int, rows: int | None) -> None:
    """Raise `FlowTooLargeError` if an attention flow of `rows` rows (None: every row) on an
    `n_tokens`-token text exceeds `policy.max_flow_rows`."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    if rows is not None and rows < 0:
        raise ValueError(f"rows must not be negative, not {rows}")
    asked = n_tokens if rows is None else min(rows, n_tokens)
    if policy.max_flow_rows is not None and asked > policy.max_flow_rows:
        raise FlowTooLargeError(
            f"Attention flow for {asked} rows of a {n_tokens}-token text is more than this "
            f"deployment computes for one request ({policy.max_flow_rows} rows): each row is "
            f"{n_tokens} maximum-flow problems on a machine every visitor shares. Pick at most "
            f"{policy.max_flow_rows} tokens to follow, or use rollout, which is instant."
        )


def check_flow_time(policy: DeployPolicy, elapsed_seconds: float) -> None:
    """Raise `FlowTimeExceededError` once a flow has run longer than `policy.max_flow_seconds`."""
    if policy.max_flow_seconds is not None and elapsed_seconds > policy.max_flow_seconds:
        raise FlowTimeExceededError(
            f"Attention flow was stopped after {policy.max_flow_seconds} s, the most this "
            "deployment gives one request. Follow fewer tokens or use a shorter text; rollout "
            "shows the same mixing of attention instantly."
        )


def flow_progress_with_budget(
    policy: DeployPolicy,
    progress: Callable[[int, int], bool | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int, int], bool | None]:
    """A `progress(done, total)` callback for `core.attention_flow` that raises
    `FlowTimeExceededError` once `policy.max_flow_seconds` have passed since it was made, and
    otherwise returns what `progress` returns (the UI's progress bar and Stop button)."""
    started = clock()

    def report(done: int, total: int) -> bool | None:
        check_flow_time(policy, clock() - started)
        return None if progress is None else progress(done, total)

    return report


def value_zeroing_tokens_allowed(policy: DeployPolicy, layers: int = 1) -> int | None:
    """Longest text value zeroing of `layers` layers is computed for (None: no cap).

    `policy.max_value_zeroing_tokens` is the cap for one layer (the Attention page's). The work
    is n re-runs of each layer, each as long as the text, so it grows as layers × n²: for
    several layers (a contribution graph reads them all) the cap shrinks by √layers, keeping
    the same work.
    """
    if layers < 1:
        raise ValueError(f"layers must be positive, not {layers}")
    cap = policy.max_value_zeroing_tokens
    return None if cap is None else max(1, math.floor(cap / math.sqrt(layers)))


def check_value_zeroing_request(policy: DeployPolicy, n_tokens: int, layers: int = 1) -> None:
    """Raise `ValueZeroingTooLargeError` if value zeroing of `layers` layers of an
    `n_tokens`-token text is over the deployment's budget (`value_zeroing_tokens_allowed`).
    Call it before the computation starts."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    cap = value_zeroing_tokens_allowed(policy, layers)
    if cap is not None and n_tokens > cap:
        what = "the layer" if layers == 1 else f"each of the {layers} layers"
        one = "" if layers == 1 else f" ({policy.max_value_zeroing_tokens} for one layer)"
        raise ValueZeroingTooLargeError(
            f"Value zeroing re-runs {what} once per token: for this {n_tokens}-token text "
            f"that is more than this deployment computes on a machine every visitor shares; "
            f"it does so for texts of up to {cap} tokens{one}. Shorten the text, or pick ALTI "
            "or attention norms, which measure contributions in one pass."
        )


def check_agreement_request(policy: DeployPolicy, n_tokens: int) -> None:
    """Raise `AgreementTooLargeError` if the leave-one-out agreement of an `n_tokens`-token
    text exceeds `policy.max_agreement_tokens`. Call it before the computation starts."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    cap = policy.max_agreement_tokens
    if cap is not None and n_tokens > cap:
        raise AgreementTooLargeError(
            f"This shared deployment ranks the methods for texts of up to {cap} tokens; this "
            f"one has {n_tokens} (leave-one-out runs the model once per token, and every "
            "method is computed). Shorten the text, or run `core.explanation_agreement` in a "
            "notebook."
        )


def check_export_cells(policy: DeployPolicy, cells: int) -> None:
    """Raise `ExportTooLargeError` if a download of `cells` numbers exceeds
    `policy.max_export_cells`. Call it before building the file."""
    if cells < 0:
        raise ValueError(f"cells must not be negative, not {cells}")
    if policy.max_export_cells is not None and cells > policy.max_export_cells:
        raise ExportTooLargeError(
            f"This download would hold {cells:,} numbers; this deployment builds files of up to "
            f"{policy.max_export_cells:,} on a machine every visitor shares. Download one layer "
            "or one head, or a shorter text."
        )


def masks_allowed(policy: DeployPolicy, n_masks: int) -> int:
    """How many of a text's `n_masks` masked positions get their predictions drawn: all of them
    up to `policy.max_masks`. The page says when some were left out."""
    if n_masks < 0:
        raise ValueError(f"n_masks must not be negative, not {n_masks}")
    return n_masks if policy.max_masks is None else min(n_masks, policy.max_masks)


def check_text_length(policy: DeployPolicy, text: str, pair: str = "") -> None:
    """Refuse texts longer than `policy.max_chars` before the tokenizer spends time on them."""
    length = len(text or "") + len(pair or "")
    if policy.max_chars is not None and length > policy.max_chars:
        raise TextTooLongError(
            f"The text is {length:,} characters long; this public deployment analyses up to "
            f"{policy.max_chars:,} characters (and reads the first {policy.max_tokens or 'few'} "
            "tokens of them). Shorten it; nothing you typed has been changed."
        )


def load_model_for(policy: DeployPolicy, name: str) -> LoadedModel:
    """`core.load_model` under `policy`: allowlist, size, memory and weight-format checks first.

    The size checks read only the config (a few KB) before any weights are downloaded: the
    layer/head counts and the result size (`check_result_size`), the parameter count
    (`check_model_size`) and, in private mode, the memory available (`check_memory`). With
    `policy.max_tokens`, the returned model reads at most that many tokens (longer input is
    truncated and reported like input beyond the model's own limit); its own limit is kept in
    `extra["model_max_length"]`.
    """
    check_model_allowed(policy, name)
    # Everything below reads the config alone (a few KB), cheapest check first: arithmetic on
    # layers, heads and tokens, then parameters on the meta device, then free memory.
    config = load_config(name)
    check_result_size(policy, config, name=name)
    parameters = None
    if policy.max_parameters is not None:
        parameters = check_model_size(policy, config, name)
    if not policy.public:
        # Public deployments are bounded by their caps; a private one by the machine.
        if parameters is None:
            try:
                parameters = estimate_parameters(config)
            except UnsupportedModelError:
                # Some architectures cannot be built from their config alone; a private
                # install still loads them, checking the memory of the result only.
                parameters = 0
        check_memory(policy, config, name, parameters=parameters)
    try:
        model = load_model(name, safetensors_only=policy.safetensors_only)
    except ModelLoadError as error:
        if policy.safetensors_only and _missing_safetensors(error):
            raise UnsafeWeightsError(
                f"'{shown_name(name)}' has no safetensors weights, only pickle files "
                "(pytorch_model.bin). This deployment loads safetensors only, because pickle "
                "files can run code when they are opened. Pick another model."
            ) from error
        raise
    if policy.max_tokens is not None and model.max_length > policy.max_tokens:
        model = dataclasses.replace(
            model,
            max_length=policy.max_tokens,
            extra={**model.extra, "model_max_length": model.max_length},
        )
    return model


def _missing_safetensors(error: BaseException) -> bool:
    # transformers says "no file named model.safetensors" (local) or "does not appear to have a
    # file named model.safetensors" (Hub); both surface somewhere in the exception chain.
    current: BaseException | None = error
    for _ in range(10):
        if current is None:
            return False
        if "safetensors" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False
