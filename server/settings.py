"""The deployment's settings: one table, from which everything else is made.

Each setting is one `Setting` row of `SETTINGS`: its name (an environment variable, or a secret
of the same name in Streamlit's secrets), its type, its default in a private install and in
public mode, and what it means. From the table come `DeployPolicy` (one field per row),
`policy_from_env` (parsing, the strict public fallback, the error messages) and the table in
`docs/settings.md` (`settings_markdown`; `python -m server.settings` rewrites the file, and a
test checks it is current).

Defaults are written as an operator would write the value, and read by the same parser.
Environment variables win over secrets of the same name. Remote code (``trust_remote_code``) is
never enabled, public or not: there is no setting for it. This module never imports streamlit:
`ui.deploy` reads the secrets and passes them in.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models import PRESETS
from server.errors import DeployConfigError


class Kind(enum.Enum):
    """How a setting's value is written and read."""

    FLAG = "yes / no"
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (TOML booleans too)."""
    AMOUNT = "number"
    """A whole number, with an optional k, M, B (or G) suffix; ``none`` (or 0) for no cap."""
    MODELS = "model names"
    """``presets``, ``any``, or model names separated by commas (``presets`` may be one)."""


@dataclass(frozen=True)
class Setting:
    """One deployment setting: one row of the table."""

    name: str
    """The environment variable (and secret) that sets it."""
    field: str
    """The `DeployPolicy` attribute that holds it."""
    kind: Kind
    private: str
    """Default without public mode, written as an operator would write it."""
    public: str
    """Default in public mode."""
    meaning: str
    """What it does, for the docs table and error messages."""
    why: str = ""
    """Why the public default is what it is (measured figures)."""
    minimum: int = 1
    """Smallest number accepted (amounts only)."""
    kept_on_in_public: str = ""
    """Non-empty for a flag public mode keeps on: the reason, given when someone turns it off."""


PRESETS_WORD = "presets"
ANY_WORDS = ("any", "*")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ATLAS_PUBLIC",
        "public",
        Kind.FLAG,
        "off",
        "on",
        "Public mode: every other setting takes its public default. Unset, a server reached "
        "from another machine runs in public mode and says so in the sidebar.",
    ),
    Setting(
        "ATLAS_ALLOWED_MODELS",
        "allowed_models",
        Kind.MODELS,
        "any",
        PRESETS_WORD,
        "Models a visitor may load: the presets, any Hub id (and, in a private install, local "
        "paths), or the names listed.",
    ),
    Setting(
        "ATLAS_MAX_TOKENS",
        "max_tokens",
        Kind.AMOUNT,
        "none",
        "256",
        "Tokens read per text; longer input is cut, and the page says so.",
        "Attention is layers × heads × n² floats: 256 tokens on BERT-base is 38 MB per cached "
        "result, 512 would be 151 MB, too much for a shared 2.7 GB machine.",
        minimum=16,  # below this a sentence pair no longer fits beside its special tokens
    ),
    Setting(
        "ATLAS_MAX_CHARS",
        "max_chars",
        Kind.AMOUNT,
        "none",
        "20k",
        "Characters accepted per text; longer text is refused before tokenizing.",
        "Tokenizing costs time even for the part that is cut off (1 MB of text takes seconds).",
    ),
    Setting(
        "ATLAS_MAX_PARAMETERS",
        "max_parameters",
        Kind.AMOUNT,
        "none",
        "150M",
        "Largest model, in parameters (experts and repeated modules included), judged from "
        "its config before any weights load.",
        "Above the largest preset (roberta-base, 125M); a 340M model needs ≈1.4 GB on its own.",
    ),
    Setting(
        "ATLAS_SAFETENSORS_ONLY",
        "safetensors_only",
        Kind.FLAG,
        "off",
        "on",
        "Load only `*.safetensors` weights.",
        kept_on_in_public="pickle weight files (pytorch_model.bin) can run code when they are "
        "opened.",
    ),
    Setting(
        "ATLAS_MAX_RESULT_BYTES",
        "max_result_bytes",
        Kind.AMOUNT,
        "none",
        "160M",
        "Largest attention result of one text at the token cap, from the config, before any "
        "weights load.",
        "BERT-base at 512 tokens is 151 MB and fits (an operator may raise the token cap to "
        "512); a 100-layer × 64-head model at 256 tokens (1.7 GB, 4 GB at the peak of its "
        "forward pass) does not.",
    ),
    Setting(
        "ATLAS_MAX_FLOW_ROWS",
        "max_flow_rows",
        Kind.AMOUNT,
        "none",
        "16",
        "Rows (receiving tokens) one request may compute of a method that costs per row "
        "(attention flow).",
        "Each flow row of an n-token text is n maximum-flow problems: at 256 tokens a row took "
        "≈8 s of CPU, so 16 rows is already minutes at the top of the cap; the time budget "
        "stops it sooner.",
    ),
    Setting(
        "ATLAS_MAX_FLOW_SECONDS",
        "max_flow_seconds",
        Kind.AMOUNT,
        "none",
        "30",
        "Seconds one request of a per-row method (attention flow) may run before it is stopped.",
        "Half a minute of one core; then the visitor picks fewer rows or a shorter text.",
    ),
    Setting(
        "ATLAS_MAX_VALUE_ZEROING_TOKENS",
        "max_value_zeroing_tokens",
        Kind.AMOUNT,
        "none",
        "128",
        "Longest text a method that re-runs a layer once per token (value zeroing) is computed "
        "for, for one layer; for L layers the cap is divided by √L.",
        "One bert-base layer took 3.4 s at 128 tokens and 17.3 s at 256 on one thread "
        "(bench/RESULTS.md, Methods).",
    ),
    Setting(
        "ATLAS_MAX_AGREEMENT_TOKENS",
        "max_agreement_tokens",
        Kind.AMOUNT,
        "none",
        "64",
        "Longest text the leave-one-out agreement table is computed for.",
        "It runs the model once per token and computes every method: at 64 tokens leave-one-out "
        "and value zeroing took 24 s and 14 s on one thread for bert-base.",
    ),
    Setting(
        "ATLAS_MAX_EXPORT_CELLS",
        "max_export_cells",
        Kind.AMOUNT,
        "4M",
        "2M",
        "Numbers in one download; larger exports are left to notebooks.",
        "One CSV of 3.98 M cells added 536 MB at peak for a 144 MB file (≈135 bytes a cell): "
        "2 M cells bound one download near 270 MB.",
    ),
    Setting(
        "ATLAS_MAX_MASKS",
        "max_masks",
        Kind.AMOUNT,
        "none",
        "8",
        "Masked positions whose predictions are drawn per text (Masked and Compare pages).",
        "Each draws its own chart: 254 masks drew 509 charts (35.6 MB of specs) in 34 s.",
    ),
    Setting(
        "ATLAS_MAX_CORPUS_STORE_BYTES",
        "max_corpus_store_bytes",
        Kind.AMOUNT,
        "none",
        "200M",
        "Largest size of the corpus store file; the oldest runs are evicted beyond it.",
        "A BERT-base run of the public caps (500 sentences) takes ≈ 1 MB of the file: 200 MB "
        "keeps the last ≈ 200 runs on a host whose disk every visitor shares "
        "(bench/bench_corpus_store.py).",
    ),
    Setting(
        "ATLAS_MAX_CORPUS_SENTENCES",
        "max_corpus_sentences",
        Kind.AMOUNT,
        "none",
        "500",
        "Sentences one Corpus page run may measure.",
        "500 sentences of ≤ 64 tokens on the embedded model are about a minute of one core; "
        "larger corpora are for `python -m core.corpus`.",
    ),
)
SETTING_NAMES = tuple(setting.name for setting in SETTINGS)
"""Every setting's environment variable, in table order."""
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> Setting:
    """The row of `SETTINGS` for environment variable `name` (`KeyError` if none)."""
    return _BY_NAME[name]


PUBLIC = setting("ATLAS_PUBLIC")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_NONE = {"none", "off", "0", "unlimited"}
_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000, "g": 1_000_000_000}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmbg]?)\s*$", re.IGNORECASE)
_TYPES = {Kind.FLAG: bool, Kind.AMOUNT: "int | None", Kind.MODELS: "tuple[str, ...] | None"}
_NAME_SHOWN = 80


def parse(setting: Setting, raw: Any) -> Any:
    """The value of `setting` written as `raw` (a string, or a TOML value from secrets).

    Raises `DeployConfigError` naming the setting: a typo in a public deployment must not
    silently turn a limit off.
    """
    if setting.kind is Kind.FLAG:
        return _flag(setting, raw)
    if setting.kind is Kind.AMOUNT:
        return _amount(setting, raw)
    return _models(setting, raw)


def _flag(setting: Setting, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DeployConfigError(f"{setting.name}={str(raw)[:40]!r} is not a yes/no value: use 1 or 0.")


def _amount(setting: Setting, raw: Any) -> int | None:
    if isinstance(raw, bool):
        raise DeployConfigError(f"{setting.name} must be a number, not {raw}.")
    if isinstance(raw, int):
        number = raw
    else:
        text = str(raw).strip().replace("_", "").replace(",", "")
        if text.lower() in _NONE:
            return None
        match = _AMOUNT.match(text)
        if not match:
            raise DeployConfigError(
                f"{setting.name}={str(raw)[:40]!r} is not a number: write e.g. 256, 150M or 1.5B."
            )
        number = int(float(match.group(1)) * _SUFFIXES[match.group(2).lower()])
    if number == 0:
        return None
    if number < 0:
        raise DeployConfigError(f"{setting.name} must be positive, not {number}.")
    if number < setting.minimum:
        raise DeployConfigError(f"{setting.name} must be at least {setting.minimum}, not {number}.")
    return number


def _models(setting: Setting, raw: Any) -> tuple[str, ...] | None:
    items = [str(item) for item in raw] if isinstance(raw, list | tuple) else str(raw).split(",")
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise DeployConfigError(
            f"{setting.name} is empty: give '{PRESETS_WORD}', 'any', or model names separated "
            "by commas."
        )
    if len(names) == 1 and names[0].lower() in ANY_WORDS:
        return None
    allowed: list[str] = []
    for name in names:
        for expanded in PRESETS if name.lower() == PRESETS_WORD else (name,):
            if expanded not in allowed:
                allowed.append(expanded)
    return tuple(allowed)


def default(setting: Setting, public: bool) -> Any:
    """The parsed default of `setting` in public mode or a private install."""
    return parse(setting, setting.public if public else setting.private)


def _strict(cls: type) -> Any:
    """Public mode with every default: what a misconfigured public deployment falls back to."""
    return cls(**{setting.field: default(setting, True) for setting in SETTINGS})


def _offers_any_model(self: Any) -> bool:
    """True when visitors may type a model id instead of picking from a list."""
    return self.allowed_models is None


DeployPolicy = dataclasses.make_dataclass(
    "DeployPolicy",
    [
        (setting.field, _TYPES[setting.kind], dataclasses.field(default=default(setting, False)))
        for setting in SETTINGS
    ],
    frozen=True,
    namespace={
        "__doc__": "What a deployment allows: one field per row of `SETTINGS` (the field named "
        "there), defaulting to a private, unrestricted install. `DeployPolicy.strict()` is public "
        "mode with every default.",
        "strict": classmethod(_strict),
        "offers_any_model": property(_offers_any_model),
    },
)
DeployPolicy.__module__ = __name__  # make_dataclass takes `module=` only from Python 3.12


def policy_from_env(
    env: Mapping[str, str],
    secrets: Mapping[str, Any] | None = None,
    *,
    default_public: bool = False,
) -> DeployPolicy:
    """Build the policy from `env` (e.g. `os.environ`) and optional Streamlit `secrets`.

    Secrets hold the same names at the top level (`ATLAS_PUBLIC = true` in secrets.toml, where
    TOML booleans, integers and arrays are accepted too); an environment variable overrides the
    secret of the same name. `default_public` is the mode when ``ATLAS_PUBLIC`` is set nowhere
    (`ui.deploy` passes True for a visitor reaching the server over the network). Raises
    `DeployConfigError` for values it cannot read.
    """
    values: dict[str, Any] = {}
    for source in (secrets or {}, env):
        for name in SETTING_NAMES:
            if name in source and source[name] is not None:
                values[name] = source[name]
    public = parse(PUBLIC, values[PUBLIC.name]) if PUBLIC.name in values else default_public
    fields: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting is PUBLIC:
            fields[setting.field] = public
            continue
        value = parse(setting, values[setting.name]) if setting.name in values else None
        if setting.name not in values:
            value = default(setting, public)
        if public and setting.kept_on_in_public and value is not True:
            raise DeployConfigError(
                f"{setting.name} cannot be turned off in public mode: {setting.kept_on_in_public}"
            )
        fields[setting.field] = value
    return DeployPolicy(**fields)


def shown_name(name: str) -> str:
    """A visitor-typed name cut to a length that fits in a message."""
    name = name.strip()
    return name if len(name) <= _NAME_SHOWN else name[: _NAME_SHOWN - 1] + "…"


# ---------------------------------------------------------------- the docs table
DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def settings_markdown() -> str:
    """`docs/settings.md`: the table of settings, generated from `SETTINGS`."""
    lines = [
        "# Deployment settings",
        "",
        "<!-- Generated from server/settings.py by `python -m server.settings`; do not edit. -->",
        "",
        "Set each as an environment variable, or as a top-level key of Streamlit's secrets "
        "(`.streamlit/secrets.toml`); the environment wins. Numbers take k, M and B suffixes; "
        "`none` removes a cap. A value that cannot be read runs the app with every public "
        "default and says why on the page.",
        "",
        "| Setting | Type | Private default | Public default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        meaning = setting.meaning
        if setting.kept_on_in_public:
            meaning += f" Always on in public mode: {setting.kept_on_in_public}"
        if setting.why:
            meaning += f" Public default: {setting.why}"
        meaning = meaning.replace("|", "\\|")  # a bar would end the cell
        lines.append(
            f"| `{setting.name}` | {setting.kind.value} | `{setting.private}` | "
            f"`{setting.public}` | {meaning} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_docs(path: Path = DOCS_FILE) -> Path:
    """Write `settings_markdown()` to `path` (default `docs/settings.md`); returns the path."""
    path.write_text(settings_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_docs())
