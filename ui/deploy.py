"""The deployment policy, read from the environment and Streamlit's secrets on every call."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from core import PRESETS
from server.errors import DeployConfigError
from server.settings import DeployPolicy, policy_from_env

CUSTOM_CHOICE = "Other: Hub id or local directory…"
"""The model pickers' last option: type any Hub id or directory (private installs only)."""


def read_deploy_policy() -> tuple[DeployPolicy, str | None]:
    """The deployment policy from the environment and st.secrets, and a problem to show.

    Read on every call (a few dictionary lookups) so it never goes stale. A setting that cannot
    be read yields the strict public policy: a typo must not turn a public deployment's limits
    off.
    """
    try:
        return policy_from_env(os.environ, secrets()), None
    except DeployConfigError as error:
        return DeployPolicy.strict(), f"{error} Running with the strict public settings."


def deploy_policy() -> DeployPolicy:
    return read_deploy_policy()[0]


def secrets() -> dict[str, Any] | None:
    """Streamlit's secrets as a dict, None when there is no secrets file (the local case)."""
    from streamlit import config

    # st.secrets raises on access when no secrets file exists, which is the normal case locally.
    if st.secrets.load_if_toml_exists():
        return st.secrets.to_dict()
    unreadable = [path for path in config.get_option("secrets.files") if os.path.isfile(path)]
    if unreadable:
        raise DeployConfigError(f"The secrets file {unreadable[0]} is not valid TOML.")
    return None


def offered_models(policy: DeployPolicy) -> list[str]:
    """The model names a picker lists under `policy`: every preset, or the allowlist."""
    return list(PRESETS) if policy.offers_any_model else list(policy.allowed_models or ())


def picker_options(policy: DeployPolicy, exclude: str | None = None) -> list[str]:
    """A model picker's options: the offered names (less `exclude`), then the free-text choice
    where the deployment lets visitors type any model."""
    names = [name for name in offered_models(policy) if name != exclude]
    return [*names, CUSTOM_CHOICE] if policy.offers_any_model else names


def model_label(name: str) -> str:
    """A picker's label for model `name`: presets say whether they need a download."""
    if name == CUSTOM_CHOICE:
        return name
    preset = PRESETS.get(name)
    if preset is None:
        return name
    if not preset.needs_download:
        return f"{name} (embedded, offline)"
    return f"{name} (download ≈{preset.download_mb} MB)"
