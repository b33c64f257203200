"""The deployment's settings: what a public deployment allows one visitor, read from the
environment and Streamlit's secrets (passed in as a plain mapping, so this module stays
UI-free).

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

Remote code (``trust_remote_code``) is never enabled, public or not: there is no setting for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.models import PRESETS
from server.errors import DeployConfigError

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


def shown_name(name: str) -> str:
    """A visitor-typed name cut to a length that fits in a message."""
    name = name.strip()
    return name if len(name) <= _NAME_SHOWN else name[: _NAME_SHOWN - 1] + "…"
