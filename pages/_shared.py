"""State, caches and small widgets shared by the pages. UI layer only: no computation here."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from altair.utils.schemapi import disable_debug_mode

import core
from core import EMBEDDED_MODEL, PRESETS, AtlasError, AttentionResult, LoadedModel
from core.charts import pool_matrix
from core.views import blank_causal
from pages._store import ResultStore

# Altair validates every schema object as it is created ("debug mode"), which costs a quarter of
# the Attention page's run at 512 tokens. The builders' specs are validated in full by the unit
# tests (tests/core/test_charts.py) and Altair still validates each finished chart here.
disable_debug_mode()

DEFAULT_TEXT = "The cat sat on the mat because it was tired."
CUSTOM_CHOICE = "Other: Hub id or local directory…"
MAX_URL_TEXT = 1500
"""Longer texts are left out of the URL (browsers and proxies cut long links)."""

# Session state keys that make up a view; they are mirrored in the URL query string.
STATE_DEFAULTS: dict[str, Any] = {
    "model": EMBEDDED_MODEL,
    "text": DEFAULT_TEXT,
    "pair": "",
    "layer": 0,
    "head": "mean",
    "method": "raw",
    "token": 0,
    "hide_special": False,
    "merge_words": False,
    "target": "",
    "stack": core.families.SELF,
}
QUERY_KEYS = ("model", "text", "pair", "layer", "head", "method", "token", "target", "stack")
METHODS = core.method_names()
LEGACY_STACKS = {"encoder": core.families.SELF, "decoder": core.families.DECODER_SELF}
"""Stack names of links made before the stacks were named by what they are."""


# ---------------------------------------------------------------- caches
# Two models at most (the compare page shows two side by side): the two largest presets take
# ≈1.2 GB resident, half of a 2.7 GB Community Cloud machine (bench/preset_memory.py).
@st.cache_resource(max_entries=2, show_spinner=False)
def cached_model(name: str) -> LoadedModel:
    from core.deploy import load_model_for

    # Every page loads through here, so the deployment's allowlist, size cap, weight format and
    # token cap hold for all of them; a refused name raises and is never cached.
    return load_model_for(deploy_policy(), name)


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """One store per server process for attention results and what is derived from them.

    A 512-token result of a 12 × 12 model is 151 MB: the private budget keeps about four. A
    public deployment reads at most 256 tokens (≤ 38 MB per result) and shares a 2.7 GB
    Community Cloud machine with two cached models (≈1.2 GB); its budget is small enough that
    the store is full within the first minute of traffic, so memory plateaus early instead of
    creeping up for as long as new texts arrive (bench/soak.py).
    """
    megabytes = 128 if deploy_policy().public else 640
    return ResultStore(max_bytes=megabytes * 2**20, ttl_seconds=3600)


def cached_attention(model_name: str, text: str, pair: str, target: str = "") -> AttentionResult:
    """`run_attention` for (model, text, pair), shared by every session (read-only arrays).

    `target` is an encoder-decoder model's decoder text; "" generates it greedily.
    """

    def compute() -> AttentionResult:
        with warnings.catch_warnings():
            # Truncation is reported on the result (`dropped_tokens`) and shown by the page.
            warnings.simplefilter("ignore", core.TruncationWarning)
            return core.run_attention(
                cached_model(model_name), text, pair or None, target_text=target or None, top_k=10
            )

    return result_store().get(("attention", model_name, text, pair, target), compute)


def cached_rollout(
    model_name: str, text: str, pair: str, target: str = "", stack: str = core.families.SELF
) -> np.ndarray:
    """Rollout `[layers, n, n]` of one self-attention stack of the cached result."""
    return result_store().get(
        ("rollout", model_name, text, pair, target, stack),
        lambda: core.attention_rollout(
            cached_attention(model_name, text, pair, target).stack(stack)[0]
        ),
    )


def cached_head_stats(
    model_name: str, text: str, pair: str, target: str = "", stack: str = core.families.SELF
) -> pd.DataFrame:
    """`head_statistics` of one self-attention stack of the cached result, a row per head."""

    def compute() -> pd.DataFrame:
        attentions, tokens, _ = cached_attention(model_name, text, pair, target).stack(stack)
        return core.head_statistics(attentions, tokens)

    return result_store().get(("head_stats", model_name, text, pair, target, stack), compute)


def cached_thumbnails(
    model_name: str, text: str, pair: str, target: str, stack: str, size: int
) -> np.ndarray:
    """Every head of one stack block-averaged to at most `size` × `size`: `[layers, heads, s, s']`.

    Cells a causal stack cannot see stay empty (NaN) in the block means too.
    """

    def compute() -> np.ndarray:
        result = cached_attention(model_name, text, pair, target)
        attentions = result.stack(stack)[0]
        if result.is_causal(stack):
            attentions = blank_causal(attentions)
        return pool_matrix(attentions, size)

    return result_store().get(("thumbnails", model_name, text, pair, target, stack, size), compute)


def show_chart(chart: Any, **kwargs: Any) -> Any:
    """`st.altair_chart(chart, **kwargs)` without Altair's validation of the finished spec.

    Altair checks every chart against the whole Vega-Lite JSON schema when Streamlit converts
    it: 0.13 s of the 0.40 s the Attention page's four charts take at 512 tokens
    (bench/bench_server.py; a cProfile of the real server had shown far more, inflated by the
    profiler's per-call cost on jsonschema's many small calls). The specs every builder makes
    are validated in full by tests/core/test_charts.py, and those the pages send by
    tests/pages/test_chart_specs.py, so the server skips it.
    """
    # Streamlit calls `chart.to_dict()`; an instance attribute takes precedence over the
    # method (SchemaBase would store a normal assignment as a chart property).
    object.__setattr__(chart, "to_dict", functools.partial(chart.to_dict, validate=False))
    return st.altair_chart(chart, **kwargs)


# ---------------------------------------------------------------- state
def ensure_router() -> None:
    """Make sure the entrypoint (sidebar, state, navigation) runs around this page.

    A folder named `pages/` makes Streamlit start in its legacy multipage mode, in which the
    first request of a fresh server for a page URL (e.g. a shared link to /overview) runs the
    page file alone. `st.navigation` leaves that mode for good; this does it early and reruns
    through the entrypoint.
    """
    if "_state_ready" not in st.session_state:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()


def init_state() -> None:
    """Seed the session from the URL once, then from defaults."""
    if st.session_state.get("_state_ready"):
        return
    params = st.query_params
    for key, default in STATE_DEFAULTS.items():
        raw = params.get(key)
        value = default
        if raw is not None:
            value = _parse_param(key, raw, default)
        st.session_state.setdefault(key, value)
    st.session_state["_state_ready"] = True


def _parse_param(key: str, raw: str, default: Any) -> Any:
    # Problems quote the link, which anyone can write, and st.warning renders Markdown: the
    # quoted value is escaped with plain() (`![](…)` would make browsers fetch an image).
    if key in ("layer", "token"):
        try:
            return int(raw)
        except ValueError:
            st.session_state.setdefault("_url_problems", []).append(
                f"Ignored '{key}={plain(raw[:40])}' in the link: it must be a whole number."
            )
            return default
    if key == "method" and raw not in METHODS:
        st.session_state.setdefault("_url_problems", []).append(
            f"Ignored 'method={plain(raw[:40])}' in the link: use {', '.join(METHODS)}."
        )
        return default
    raw = LEGACY_STACKS.get(raw, raw) if key == "stack" else raw
    if key == "stack" and raw not in core.STACKS:
        st.session_state.setdefault("_url_problems", []).append(
            f"Ignored 'stack={plain(raw[:40])}' in the link: use {', '.join(core.STACKS)}."
        )
        return default
    return raw


def write_query_params() -> None:
    """Mirror the view's state in the URL so it can be shared and survives a reload."""
    values = {key: str(st.session_state.get(key, STATE_DEFAULTS[key])) for key in QUERY_KEYS}
    if len(values["text"]) + len(values["pair"]) + len(values["target"]) > MAX_URL_TEXT:
        values.pop("text")
        values.pop("pair")
        values.pop("target")
    # Defaults stay out of the link, so links of other models look as they always did.
    for key in ("pair", "target"):
        if not values.get(key):
            values.pop(key, None)
    if values.get("stack") == STATE_DEFAULTS["stack"]:
        values.pop("stack")
    current = {key: st.query_params.get(key) for key in QUERY_KEYS}
    if any(current.get(k) != v for k, v in values.items()) or any(
        current.get(k) is not None and k not in values for k in QUERY_KEYS
    ):
        st.query_params.from_dict(values)


def widget_key(key: str) -> str:
    """Key for a page widget bound to the persistent state `key`.

    Page widgets lose their state when another page is shown; the persistent key keeps it
    (and lets other pages, e.g. the overview grid, change it).
    """
    wkey = f"w_{key}"
    st.session_state[wkey] = st.session_state[key]
    return wkey


def sync(key: str) -> None:
    st.session_state[key] = st.session_state[f"w_{key}"]


def bound(widget: Callable[..., Any], label: str, key: str, **kwargs: Any) -> Any:
    """Render `widget` bound to persistent state `key`; returns its value."""
    return widget(label, key=widget_key(key), on_change=sync, args=(key,), **kwargs)


# ---------------------------------------------------------------- loading
def model_label(name: str) -> str:
    preset = PRESETS.get(name)
    if preset is None:
        return name
    if not preset.needs_download:
        return f"{name} (embedded, offline)"
    return f"{name} (download ≈{preset.download_mb} MB)"


def load_current_model(name: str | None = None) -> LoadedModel | None:
    """The selected model, loaded with a spinner; shows the error and returns None on failure."""
    from core.deploy import check_model_allowed, shown_name

    name = name or st.session_state["model"]
    preset = PRESETS.get(name)
    if preset is not None and preset.needs_download:
        what = f"Loading {name} (downloads ≈{preset.download_mb} MB the first time)…"
    else:
        what = f"Loading {shown_name(name)}…"
    try:
        # Checked here too so a refused name never shows a loading spinner.
        check_model_allowed(deploy_policy(), name)
        with st.spinner(plain(what)):
            return cached_model(name)
    except AtlasError as error:
        show_error(str(error))
    except Exception as error:  # a model's own code can fail in any way
        show_error(f"Could not load '{shown_name(name)}': {type(error).__name__}: {error}")
    return None


def current_result(model: LoadedModel) -> AttentionResult | None:
    """Attention for the sidebar text on `model`; shows the error and returns None on failure.

    Text beyond the deployment's token cap is truncated, not refused: the visitor still sees
    the start of a pasted paragraph, the warning says how much was left out, and the cost is
    bounded by the tokens kept. Only text beyond the character cap is refused, because the
    tokenizer would spend seconds on it before truncating.
    """
    from core.deploy import check_text_length

    text, pair = st.session_state["text"], st.session_state["pair"]
    target = current_target(model)
    try:
        check_text_length(deploy_policy(), text, pair + target)
        with st.spinner("Running the model…"):
            result = cached_attention(model.name, text, pair, target)
    except AtlasError as error:
        show_error(str(error))
        return None
    if result.target_generated:
        generated = result.target_text.strip() if result.target_text else ""
        st.info(
            f"Target generated greedily: “{plain(generated) or '(special tokens only)'}”. "
            "Type a target text (decoder) in the sidebar to see the attention for your own."
        )
    if result.dropped_target_tokens:
        st.warning(
            f"The target text is longer than {plain(model.name)} can read "
            f"({model.max_length} tokens): the last {result.dropped_target_tokens} target "
            "tokens were dropped."
        )
    if pair and model.kind is core.ModelKind.ENCODER_DECODER:
        st.caption("Encoder-decoder models read the text only; the second sentence is not used.")
    if result.dropped_tokens:
        own_limit = model.extra.get("model_max_length", model.max_length)
        if model.max_length < own_limit:
            st.warning(
                f"This public deployment reads at most {model.max_length} tokens per text "
                f"({plain(model.name)} itself reads {own_limit}): the last {result.dropped_tokens} "
                "tokens were dropped. Your text is unchanged; shorten it to see all of it."
            )
        else:
            st.warning(
                f"The input is longer than {plain(model.name)} can read "
                f"({model.max_length} tokens): the last {result.dropped_tokens} tokens were "
                "dropped."
            )
    return result


def current_target(model: LoadedModel) -> str:
    """The sidebar's decoder target for an encoder-decoder `model`, "" for any other model.

    Other models ignore a target, so it must not split their cache entries; blank means
    "generate greedily", the same entry as "".
    """
    target = st.session_state.get("target", "")
    if model.kind is not core.ModelKind.ENCODER_DECODER or not target.strip():
        return ""
    return target


def is_encoder_decoder(name: str) -> bool:
    """Whether model `name` is encoder-decoder, from its preset or its config (a few KB).

    The sidebar asks before the page has loaded the model. A name that cannot be read (refused,
    missing, offline) answers False; the page reports the problem when it loads the model.
    """
    preset = PRESETS.get(name)
    if preset is not None:
        return preset.kind is core.ModelKind.ENCODER_DECODER
    return _config_is_encoder_decoder(name)


# Failures are cached too (as False), for a short while: an unreachable Hub id would otherwise
# cost the sidebar the loader's network timeout on every rerun.
@st.cache_data(max_entries=32, ttl="10m", show_spinner=False)
def _config_is_encoder_decoder(name: str) -> bool:
    from core.deploy import check_model_allowed
    from core.models import detect_kind, load_config

    try:
        check_model_allowed(deploy_policy(), name)
        return detect_kind(load_config(name)) is core.ModelKind.ENCODER_DECODER
    except Exception:  # any failure is the page's to report, with the loader's message
        return False


# ---------------------------------------------------------------- deployment
def plain(text: str) -> str:
    """`text` with Markdown, LaTeX and colour-directive syntax escaped, on one line.

    Error messages quote what a visitor typed (a model name from a shared link, say), and
    st.error renders Markdown: unescaped, `[Log in](https://…)` in a link would show as a link.
    """
    import re

    one_line = re.sub(r"[\x00-\x1f\x7f]+", " ", text)
    return re.sub(r"([\\`*_{}\[\]()<>#+!|$~:&])", r"\\\1", one_line)


def show_error(message: str) -> None:
    st.error(plain(message))


@st.cache_resource(max_entries=1, show_spinner=False)
def limit_memory_fragmentation() -> None:
    """Make glibc give freed memory back to the system; once per process, Linux only.

    Every script run is a thread, and a run allocates tens of MB for a moment (activations,
    chart data). With glibc's defaults each thread may get its own heap arena and freed large
    blocks stay in them, so under many concurrent visitors the server's RSS climbs although
    nothing leaks (bench/soak.py, "Many users at once" in bench/RESULTS.md: with st.cache_data
    holding under 80 MB, RSS stayed 480 MB higher after the visitors left). Two arenas and a
    fixed mmap threshold (large blocks mapped and unmapped on their own) keep it in check.
    MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ in the environment do the same, but Community
    Cloud cannot set them before Python starts; when MALLOC_ARENA_MAX is set, it wins. Cached as
    a resource so it runs once.
    """
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    mallopt(m_arena_max, 2)
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_trim_threshold, 128 * 1024)


def read_deploy_policy() -> tuple[core.deploy.DeployPolicy, str | None]:
    """The deployment policy from the environment and st.secrets, and a problem to show.

    Read on every call (a few dictionary lookups) so it never goes stale. A setting that cannot
    be read yields the strict public policy: a typo must not turn a public deployment's limits
    off.
    """
    import os

    from core.deploy import DeployConfigError, DeployPolicy, policy_from_env

    try:
        return policy_from_env(os.environ, _secrets()), None
    except DeployConfigError as error:
        return DeployPolicy.strict(), f"{error} Running with the strict public settings."


def deploy_policy() -> core.deploy.DeployPolicy:
    return read_deploy_policy()[0]


def _secrets() -> dict[str, Any] | None:
    import os

    from streamlit import config

    from core.deploy import DeployConfigError

    # st.secrets raises on access when no secrets file exists, which is the normal case locally.
    if st.secrets.load_if_toml_exists():
        return st.secrets.to_dict()
    unreadable = [path for path in config.get_option("secrets.files") if os.path.isfile(path)]
    if unreadable:
        raise DeployConfigError(f"The secrets file {unreadable[0]} is not valid TOML.")
    return None


def clamp_state(key: str, upper: int) -> int:
    """Keep an index from the URL or another model within `0..upper-1`, saying so if needed."""
    value = st.session_state.get(key, 0)
    if not isinstance(value, int) or not 0 <= value < upper:
        # The value may come from a link: escaped, so Markdown in it cannot draw an image.
        st.warning(
            f"{key.capitalize()} {plain(str(value))} does not exist here; showing {key} 0 instead."
        )
        value = 0
        st.session_state[key] = value
    return value


def show_url_problems() -> None:
    # Problems are queued already escaped with plain(); escaping again would show backslashes.
    for problem in st.session_state.pop("_url_problems", []):
        st.warning(problem)
