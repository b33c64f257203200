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

Remote code (``trust_remote_code``) is never enabled, public or not: there is no setting for it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import (
    DeployConfigError,
    ModelLoadError,
    ModelNotAllowedError,
    ModelTooLargeError,
    TextTooLongError,
    UnsafeWeightsError,
    UnsupportedModelError,
)
from core.models import PRESETS, LoadedModel, load_config, load_model

ENV_PUBLIC = "ATLAS_PUBLIC"
ENV_ALLOWED_MODELS = "ATLAS_ALLOWED_MODELS"
ENV_MAX_TOKENS = "ATLAS_MAX_TOKENS"
ENV_MAX_CHARS = "ATLAS_MAX_CHARS"
ENV_MAX_PARAMETERS = "ATLAS_MAX_PARAMETERS"
ENV_SAFETENSORS_ONLY = "ATLAS_SAFETENSORS_ONLY"
SETTINGS = (
    ENV_PUBLIC,
    ENV_ALLOWED_MODELS,
    ENV_MAX_TOKENS,
    ENV_MAX_CHARS,
    ENV_MAX_PARAMETERS,
    ENV_SAFETENSORS_ONLY,
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

    try:
        with torch.device("meta"):
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
    """`core.load_model` under `policy`: allowlist, size and weight-format checks first.

    The size check reads only the config (a few KB) before any weights are downloaded. With
    `policy.max_tokens`, the returned model reads at most that many tokens (longer input is
    truncated and reported like input beyond the model's own limit); its own limit is kept in
    `extra["model_max_length"]`.
    """
    check_model_allowed(policy, name)
    if policy.max_parameters is not None:
        check_model_size(policy, load_config(name), name)
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
