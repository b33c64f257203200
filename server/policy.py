"""The deployment's policy applied: which models a visitor may load, and how much work one
request may ask for.

`load_model_for` wraps `core.load_model`, checking the allowlist and the model's size from its
config before any weights are downloaded; the `check_*` functions refuse a request over its
budget before the work starts, with a message for the visitor.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.costs import Budget
from core.errors import ModelLoadError, UnsupportedModelError
from core.methods import Method
from core.models import LoadedModel, hub_reachable, load_config, load_model
from server import admission
from server.errors import (
    AgreementTooLargeError,
    ModelNotAllowedError,
    ModelTooLargeError,
    NoWeightsError,
    RerunTooLargeError,
    ResultTooLargeError,
    TextTooLongError,
    TimeBudgetExceededError,
    TooManyRowsError,
    UnsafeWeightsError,
)
from server.memory import (
    check_attention_shape,
    check_memory,
    estimate_parameters,
    format_bytes,
    format_parameters,
    quoted,
    tokens_for,
)
from server.settings import DeployPolicy, shown_name


def _looks_local(name: str) -> bool:
    if name.startswith((".", "/", "~", "\\")) or "\\" in name or name.count("/") > 1:
        return True
    try:
        return Path(os.path.expanduser(name)).exists()
    except (OSError, ValueError):  # NUL bytes, names too long for the filesystem
        return True


def deployment(policy: DeployPolicy) -> str:
    """ "public deployment" or "deployment": messages never call a private install public."""
    return "public deployment" if policy.public else "deployment"


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
            f"{quoted(name)} has {shape.layers} layers × {shape.heads} heads"
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


# ---------------------------------------------------------------- per-request budgets
def check_method_request(
    policy: DeployPolicy, method: Method, n_tokens: int, rows: int | None, layers: int = 1
) -> None:
    """Refuse a request of `method` over the deployment's budget for the kind of work its
    registry entry declares (`method.cost.budget`), before it starts: `rows` rows (None: all)
    of `layers` layers of an `n_tokens`-token text."""
    if method.cost.budget is Budget.ROWS:
        check_rows_request(policy, n_tokens, rows, method.label)
    elif method.cost.budget is Budget.TOKENS:
        check_rerun_request(policy, n_tokens, layers, method.label)


def method_progress(
    policy: DeployPolicy,
    method: Method,
    progress: Callable[[int, int], bool | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int, int], bool | None] | None:
    """`progress` for one request of `method`, with the deployment's time budget where its
    cost is per row (`time_budget`); `progress` itself otherwise."""
    if method.cost.budget is Budget.ROWS:
        return time_budget(policy, progress, clock, method.label)
    return progress


def check_rows_request(
    policy: DeployPolicy, n_tokens: int, rows: int | None, label: str = "Attention flow"
) -> None:
    """Raise `TooManyRowsError` if `rows` rows (None: every row) of an `n_tokens`-token text
    exceed `policy.max_flow_rows`, for a method whose work is per row (`label` names it)."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    if rows is not None and rows < 0:
        raise ValueError(f"rows must not be negative, not {rows}")
    asked = n_tokens if rows is None else min(rows, n_tokens)
    cap = policy.max_flow_rows
    if cap is not None and asked > cap:
        raise TooManyRowsError(
            f"{label[:1].upper()}{label[1:]} for {asked} rows of a {n_tokens}-token text is more "
            f"than this deployment computes for one request ({cap} rows): its work grows with "
            f"every row, on a machine every visitor shares. Pick at most {cap} tokens to "
            "follow, or use rollout, which is instant."
        )


def time_budget(
    policy: DeployPolicy,
    progress: Callable[[int, int], bool | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    label: str = "Attention flow",
    paused: Callable[[], float] = admission.paused_seconds,
) -> Callable[[int, int], bool | None]:
    """A `progress(done, total)` callback that raises `TimeBudgetExceededError` once
    `policy.max_flow_seconds` have passed since it was made, and otherwise returns what
    `progress` returns (the UI's progress bar and Stop button).

    Seconds the work spent paused for other visitors' pages (`paused`, a running total:
    `admission.paused_seconds`) do not count: the budget bounds the request's own work."""
    started, paused_before = clock(), paused()
    cap = policy.max_flow_seconds

    def report(done: int, total: int) -> bool | None:
        if cap is not None and clock() - started - (paused() - paused_before) > cap:
            raise TimeBudgetExceededError(
                f"{label[:1].upper()}{label[1:]} was stopped after {cap} s, the most this "
                "deployment gives one request. Follow fewer tokens or use a shorter text; "
                "rollout shows the same mixing of attention instantly."
            )
        return None if progress is None else progress(done, total)

    return report


def rerun_tokens_allowed(policy: DeployPolicy, layers: int = 1) -> int | None:
    """Longest text a method that re-runs `layers` layers once per token is computed for
    (None: no cap).

    `policy.max_value_zeroing_tokens` is the cap for one layer (the Attention page's). The work
    is n re-runs of each layer, each as long as the text, so it grows as layers × n²: for
    several layers (a contribution graph reads them all) the cap shrinks by √layers, keeping
    the same work.
    """
    if layers < 1:
        raise ValueError(f"layers must be positive, not {layers}")
    cap = policy.max_value_zeroing_tokens
    return None if cap is None else max(1, math.floor(cap / math.sqrt(layers)))


def check_rerun_request(
    policy: DeployPolicy, n_tokens: int, layers: int = 1, label: str = "value zeroing"
) -> None:
    """Raise `RerunTooLargeError` if a method that re-runs `layers` layers once per token
    (`label` names it) is over the budget for an `n_tokens`-token text (`rerun_tokens_allowed`).
    Call it before the computation starts."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    cap = rerun_tokens_allowed(policy, layers)
    if cap is not None and n_tokens > cap:
        what = "the layer" if layers == 1 else f"each of the {layers} layers"
        one = "" if layers == 1 else f" ({policy.max_value_zeroing_tokens} for one layer)"
        raise RerunTooLargeError(
            f"{label[:1].upper()}{label[1:]} re-runs {what} once per token: for this "
            f"{n_tokens}-token text that is more than this deployment computes on a machine "
            f"every visitor shares; it does so for texts of up to {cap} tokens{one}. Shorten the "
            "text, or pick a method that measures contributions in one pass (ALTI, attention "
            "norms)."
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


def export_refusal(policy: DeployPolicy, cells: int) -> str | None:
    """Why a download of `cells` numbers is not offered (over `policy.max_export_cells`), or
    None when it is. The one export cap: the pages show the sentence instead of the buttons,
    before any file is built."""
    if cells < 0:
        raise ValueError(f"cells must not be negative, not {cells}")
    cap = policy.max_export_cells
    if cap is None or cells <= cap:
        return None
    return (
        f"{cells:,} values are too many to download here (up to {cap:,} per file, which is "
        "built in the server's memory). Export one layer on the Attention page, or use "
        "`core.run_attention` in a notebook."
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
            f"The text is {length:,} characters long; this {deployment(policy)} analyses up to "
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
        if not _missing_weights(error):
            raise
        files = weight_files(name)
        if files == []:
            raise NoWeightsError(
                f"'{shown_name(name)}' has a config but no weights (no model.safetensors or "
                "pytorch_model.bin): there is nothing to load. Pick another model."
            ) from error
        if not policy.safetensors_only:
            raise
        pickles = " only pickle files (pytorch_model.bin)." if files else "."
        raise UnsafeWeightsError(
            f"'{shown_name(name)}' has no safetensors weights,{pickles} This deployment loads "
            "safetensors only, because pickle files can run code when they are opened. Pick "
            "another model."
        ) from error
    if policy.max_tokens is not None and model.max_length > policy.max_tokens:
        model = dataclasses.replace(
            model,
            max_length=policy.max_tokens,
            extra={**model.extra, "model_max_length": model.max_length},
        )
    return model


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


def weight_files(name: str) -> list[str] | None:
    """The weight files of local directory or Hub repository `name` ([] for a config-only
    one), None when they cannot be listed (offline, unreachable). Asked only after a load
    failed for want of weights, to say which want it was."""
    path = Path(os.path.expanduser(name.strip()))
    try:
        if path.is_dir():
            return sorted(p.name for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    except (OSError, ValueError):
        return None
    if not hub_reachable(timeout=2.0):  # its client would retry for half a minute
        return None
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(name.strip())  # HfApi() reads the endpoint now
    except Exception:  # unknown, gated, a network error: nothing beyond the load's own error
        return None
    return sorted(f for f in files if f.endswith(WEIGHT_SUFFIXES))


def _missing_weights(error: BaseException) -> bool:
    # transformers says "no file named model.safetensors" (local), "does not appear to have a
    # file named model.safetensors" or "a directory containing a file named pytorch_model.bin"
    # (Hub); one of them surfaces somewhere in the exception chain.
    current: BaseException | None = error
    for _ in range(10):
        if current is None:
            return False
        text = str(current).lower()
        if "safetensors" in text or "file named" in text:
            return True
        current = current.__cause__ or current.__context__
    return False
