"""The deployment policy, read from the environment and Streamlit's secrets on every call."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import streamlit as st

from core import PRESETS
from server.errors import DeployConfigError
from server.settings import PUBLIC, DeployPolicy, policy_from_env

CUSTOM_CHOICE = "Other: Hub id or local directory…"
"""The model pickers' last option: type any Hub id or directory (private installs only)."""


def read_deploy_policy() -> tuple[DeployPolicy, str | None]:
    """The deployment policy from the environment and st.secrets, and a problem to show.

    Read on every call (a few dictionary lookups) so it never goes stale. A setting that cannot
    be read yields the strict public policy: a typo must not turn a public deployment's limits
    off.
    """
    try:
        return policy_from_env(os.environ, secrets(), default_public=reached_remotely()), None
    except DeployConfigError as error:
        return DeployPolicy.strict(), f"{error} Running with the strict public settings."


def deploy_policy() -> DeployPolicy:
    return read_deploy_policy()[0]


def client_address() -> str | None:
    """The visitor's address, which Streamlit passes only for a visitor on another machine
    (None on localhost, in tests and in bare mode)."""
    try:
        address = st.context.ip_address
    except Exception:  # no request context: not served to anyone
        return None
    return address if isinstance(address, str) else None  # AppTest gives a stand-in object


def reached_remotely() -> bool:
    """Whether this app is served beyond this machine: the visitor comes from another
    address, or the server was told to listen on a non-loopback address. Without an explicit
    ATLAS_PUBLIC that means public mode (issue 24): an operator who forgot the setting on a
    public host must not open every path on the server to the world."""
    from streamlit import config

    address = client_address()
    if address:
        return not _loopback(address)
    listening = config.get_option("server.address")
    return bool(listening) and not _loopback(str(listening))


def _loopback(address: str) -> bool:
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: not provably this machine
        return False


def mode_notice(policy: DeployPolicy) -> str | None:
    """What the sidebar says when the mode was chosen for the operator: public because the
    app is reached over the network and ATLAS_PUBLIC is set nowhere."""
    explicit = PUBLIC.name in os.environ or PUBLIC.name in (secrets() or {})
    if explicit or not policy.public:
        return None
    return (
        "Public mode: this app is reached over the network and ATLAS_PUBLIC is not set, so "
        "it offers the preset models only, with the public limits. Set ATLAS_PUBLIC=0 to "
        "serve a private install to your network on purpose."
    )


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
    """A picker's label for model `name`: a preset's short name (its Hub id without the owner,
    unless another preset shares it), which fits a 1024 px window's sidebar; `model_note`
    gives the full id and the download. Other names are shown as typed."""
    if name not in PRESETS:
        return name
    short = name.rsplit("/", 1)[-1]
    clashes = [other for other in PRESETS if other.rsplit("/", 1)[-1] == short]
    return short if len(clashes) == 1 else name


def model_note(name: str) -> str:
    """What the short `model_label` leaves out: the preset's full Hub id and what it downloads
    (empty for names that are not presets; the embedded model's description says it is)."""
    preset = PRESETS.get(name)
    if preset is None:
        return ""
    if not preset.needs_download:
        return name
    return f"{name} · ≈{preset.download_mb} MB download on first use"
