"""The deployment policy (`server`): settings, allowlist, size and token caps, weight format."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AlbertConfig, BartConfig, BertConfig, DistilBertConfig, RobertaConfig

import server.policy
import server.settings
from core import EMBEDDED_MODEL, PRESETS, load_model, run_attention
from core.errors import (
    AtlasError,
    InsufficientMemoryError,
    ModelLoadError,
    UnsupportedModelError,
)
from core.models import load_config
from server.errors import (
    AgreementTooLargeError,
    BudgetExceededError,
    DeployConfigError,
    ModelNotAllowedError,
    ModelTooLargeError,
    RerunTooLargeError,
    ResultTooLargeError,
    TextTooLongError,
    TimeBudgetExceededError,
    TooManyRowsError,
    UnsafeWeightsError,
)
from server.memory import (
    AttentionShape,
    attention_shape,
    available_memory_bytes,
    check_attention_shape,
    check_memory,
    estimate_parameters,
    parameter_bytes,
    result_bytes,
    text_memory_bytes,
)
from server.policy import (
    check_agreement_request,
    check_model_allowed,
    check_model_size,
    check_rerun_request,
    check_result_size,
    check_rows_request,
    check_text_length,
    export_refusal,
    load_model_for,
    masks_allowed,
    rerun_tokens_allowed,
    time_budget,
)
from server.settings import (
    DeployPolicy,
    policy_from_env,
)
from tests.fake_hub import serve_fake_hub

BERT_LARGE = BertConfig(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    architectures=["BertForMaskedLM"],
)


# ---------------------------------------------------------------- settings
def test_no_settings_is_an_unrestricted_private_install():
    assert policy_from_env({}) == DeployPolicy()
    assert DeployPolicy().offers_any_model


def test_public_mode_defaults():
    policy = policy_from_env({"ATLAS_PUBLIC": "1"})
    assert policy == DeployPolicy.strict()
    assert policy.allowed_models == tuple(PRESETS)
    assert policy.max_tokens == 256
    assert policy.max_chars == 20_000
    assert policy.max_parameters == 150_000_000
    assert policy.safetensors_only
    assert not policy.offers_any_model


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("presets", tuple(PRESETS)),
        ("any", None),
        ("*", None),
        (" acme/a , acme/b ,", ("acme/a", "acme/b")),
        ("acme/a,presets", ("acme/a", *PRESETS)),
        ("bert-base-uncased,bert-base-uncased", ("bert-base-uncased",)),
    ],
)
def test_allowlist_values(raw, expected):
    assert policy_from_env({"ATLAS_PUBLIC": "1", "ATLAS_ALLOWED_MODELS": raw}).allowed_models == (
        expected
    )


def test_an_allowlist_also_works_without_public_mode():
    policy = policy_from_env({"ATLAS_ALLOWED_MODELS": "acme/a"})
    assert not policy.public and policy.allowed_models == ("acme/a",)
    assert policy.max_tokens is None and not policy.safetensors_only


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("150M", 150_000_000),
        ("1.5B", 1_500_000_000),
        ("1.5b", 1_500_000_000),
        ("200k", 200_000),
        ("110_000_000", 110_000_000),
        ("66,000,000", 66_000_000),
        (" 7G ", 7_000_000_000),
        ("none", None),
        ("0", None),
        (300_000_000, 300_000_000),
    ],
)
def test_parameter_cap_values(raw, expected):
    policy = policy_from_env({"ATLAS_PUBLIC": "1"}, {"ATLAS_MAX_PARAMETERS": raw})
    assert policy.max_parameters == expected


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"ATLAS_PUBLIC": "maybe"}, "yes/no"),
        ({"ATLAS_MAX_PARAMETERS": "lots"}, "not a number"),
        ({"ATLAS_MAX_PARAMETERS": "-5M"}, "not a number"),
        ({"ATLAS_MAX_TOKENS": "8"}, "at least 16"),
        ({"ATLAS_MAX_TOKENS": "12.5.1"}, "not a number"),
        ({"ATLAS_ALLOWED_MODELS": " , "}, "empty"),
        ({"ATLAS_PUBLIC": "1", "ATLAS_SAFETENSORS_ONLY": "0"}, "cannot be turned off"),
    ],
)
def test_unreadable_settings_are_refused_with_a_reason(env, match):
    with pytest.raises(DeployConfigError, match=match):
        policy_from_env(env)


def test_secrets_hold_toml_values_and_the_environment_wins():
    secrets = {
        "ATLAS_PUBLIC": True,
        "ATLAS_ALLOWED_MODELS": ["acme/a", "presets"],
        "ATLAS_MAX_TOKENS": 128,
        "unrelated": {"nested": 1},
    }
    policy = policy_from_env({}, secrets)
    assert policy.public and policy.max_tokens == 128
    assert policy.allowed_models == ("acme/a", *PRESETS)
    policy = policy_from_env({"ATLAS_MAX_TOKENS": "64", "ATLAS_PUBLIC": "0"}, secrets)
    assert not policy.public and policy.max_tokens == 64


def test_private_install_may_opt_into_safetensors_only():
    assert policy_from_env({"ATLAS_SAFETENSORS_ONLY": "yes"}).safetensors_only


# ---------------------------------------------------------------- allowlist
def test_allowlist_refuses_every_other_name_before_touching_disk_or_network(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the allowlist must be checked before loading anything")

    monkeypatch.setattr(server.policy, "load_config", forbidden)
    monkeypatch.setattr(server.policy, "load_model", forbidden)
    policy = DeployPolicy.strict()
    for name in ["bert-large-cased", "../../etc", "/etc", "~", "acme/evil", " ", "x" * 500]:
        with pytest.raises(ModelNotAllowedError, match="not one of the models"):
            load_model_for(policy, name)
    check_model_allowed(policy, f"  {EMBEDDED_MODEL} ")  # surrounding spaces are not a new name


def test_refusal_names_the_offered_models_and_cuts_long_names():
    with pytest.raises(ModelNotAllowedError) as info:
        check_model_allowed(DeployPolicy(public=True, allowed_models=("acme/a",)), "y" * 500)
    message = str(info.value)
    assert "(acme/a)" in message and "own machine" in message
    assert len(message) < 500


@pytest.mark.parametrize(
    "name", ["../../etc", "/etc/passwd", "~/models", "a/b/c", "C:\\models", "./x", "core"]
)
def test_public_mode_without_allowlist_still_refuses_local_paths(name, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # where a directory "core" exists
    policy = DeployPolicy(public=True, allowed_models=None)
    with pytest.raises(ModelNotAllowedError, match="path on the server"):
        check_model_allowed(policy, name)
    check_model_allowed(policy, "bert-large-cased")
    check_model_allowed(DeployPolicy(), name)  # a private install opens local paths


def test_an_allowlisted_local_path_is_allowed(tiny_model_path):
    path = str(tiny_model_path("bert"))
    model = load_model_for(DeployPolicy(public=True, allowed_models=(path,)), path)
    assert model.num_layers == 2


# ---------------------------------------------------------------- size
@pytest.mark.parametrize(
    "family", ["bert", "bert-encoder", "distilbert", "roberta", "albert", "gpt2", "bart", "t5"]
)
def test_parameter_estimate_from_the_config_is_exact(family, loaded_tiny, tiny_model_path):
    config = load_config(str(tiny_model_path(family)))
    assert estimate_parameters(config) == loaded_tiny(family).num_parameters


def test_parameter_estimate_of_the_embedded_model(embedded):
    assert estimate_parameters(load_config(EMBEDDED_MODEL)) == embedded.num_parameters == 22713216


@pytest.mark.parametrize(
    ("config", "millions"),
    [
        # The presets' architectures, rebuilt from their published configs (no download).
        (BertConfig(architectures=["BertForMaskedLM"]), 109.5),
        (
            RobertaConfig(
                vocab_size=50265,
                max_position_embeddings=514,
                type_vocab_size=1,
                architectures=["RobertaForMaskedLM"],
            ),
            124.7,
        ),
        (DistilBertConfig(architectures=["DistilBertForMaskedLM"]), 67.0),
        (
            AlbertConfig(
                vocab_size=30000,
                hidden_size=768,
                num_attention_heads=12,
                intermediate_size=3072,
                architectures=["AlbertForMaskedLM"],
            ),
            11.2,
        ),
    ],
)
def test_every_preset_architecture_fits_the_public_cap(config, millions):
    count = check_model_size(DeployPolicy.strict(), config, "preset")
    assert count / 1e6 == pytest.approx(millions, abs=0.1)


def test_a_large_model_is_refused_with_its_size():
    with pytest.raises(ModelTooLargeError, match=r"335M parameters.*up to 150M"):
        check_model_size(DeployPolicy.strict(), BERT_LARGE, "bert-large-uncased")
    assert check_model_size(DeployPolicy(), BERT_LARGE, "bert-large-uncased") > 300_000_000


def test_size_is_checked_from_the_config_before_any_weights_are_downloaded(monkeypatch, tmp_path):
    repos = {"acme/big-bert": {"config.json": BERT_LARGE.to_json_string().encode()}}
    with serve_fake_hub(repos) as hub:
        hub.activate(monkeypatch, tmp_path)
        policy = DeployPolicy(public=True, max_parameters=150_000_000)
        with pytest.raises(ModelTooLargeError, match="335M"):
            load_model_for(policy, "acme/big-bert")
    assert any(path.endswith("/config.json") for path in hub.requests)
    assert hub.requested_weights() == []


def test_size_cap_applies_to_a_local_checkpoint_too(tiny_model_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("weights must not be loaded for a model that is too large")

    monkeypatch.setattr(server.policy, "load_model", forbidden)
    path = str(tiny_model_path("bert"))
    with pytest.raises(ModelTooLargeError, match="up to 1k"):
        load_model_for(DeployPolicy(max_parameters=1_000), path)


def test_an_architecture_that_cannot_be_built_is_not_loaded():
    class Strange:
        model_type = "strange"
        architectures = None
        is_encoder_decoder = False
        is_decoder = False

    with pytest.raises(UnsupportedModelError, match="size"):
        estimate_parameters(Strange())


# ---------------------------------------------------------------- tokens and characters
def test_token_cap_truncates_and_reports(tiny_model_path):
    path = str(tiny_model_path("bert"))
    model = load_model_for(DeployPolicy(max_tokens=16), path)
    assert model.max_length == 16
    assert model.extra["model_max_length"] == 512
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = run_attention(model, "the cat sat on the mat " * 10)
    assert len(result.tokens) == 16
    assert result.dropped_tokens == 2 + 60 - 16
    # The cap never leaks into the shared, uncapped model.
    assert load_model_for(DeployPolicy(), path).max_length == 512


def test_token_cap_above_the_models_own_limit_changes_nothing(tiny_model_path):
    model = load_model_for(DeployPolicy(max_tokens=4096), str(tiny_model_path("bert")))
    assert model.max_length == 512 and "model_max_length" not in model.extra


def test_character_cap():
    policy = DeployPolicy(max_chars=100, max_tokens=32)
    check_text_length(policy, "x" * 60, "y" * 40)
    with pytest.raises(TextTooLongError, match=r"101 characters.*up to 100"):
        check_text_length(policy, "x" * 61, "y" * 40)
    check_text_length(DeployPolicy(), "x" * 1_000_000)


def test_a_private_install_is_never_called_public():
    with pytest.raises(TextTooLongError) as private:
        check_text_length(DeployPolicy(max_chars=10), "x" * 11)
    assert "this deployment analyses" in str(private.value) and "public" not in str(private.value)
    with pytest.raises(TextTooLongError, match="this public deployment analyses"):
        check_text_length(DeployPolicy.strict(), "x" * 20_001)


# ---------------------------------------------------------------- weights and code
@pytest.fixture
def pickle_only_checkpoint(tiny_model_path, tmp_path):
    """A tiny BERT saved the old way: pytorch_model.bin, no safetensors."""
    directory = tmp_path / "pickle-bert"
    shutil.copytree(tiny_model_path("bert"), directory)
    torch.save(load_file(str(directory / "model.safetensors")), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    return str(directory)


def test_public_mode_refuses_pickle_weights(pickle_only_checkpoint):
    with pytest.raises(UnsafeWeightsError, match=r"only pickle files.*safetensors only"):
        load_model_for(DeployPolicy(safetensors_only=True), pickle_only_checkpoint)
    # The same checkpoint loads in a private install, so the refusal is the policy's doing.
    assert load_model_for(DeployPolicy(), pickle_only_checkpoint).num_layers == 2


EVIL_CODE = """
import pathlib
pathlib.Path(__file__).with_name("REMOTE_CODE_RAN").write_text("oops")
from transformers import BertConfig, BertModel
class EvilConfig(BertConfig):
    model_type = "evil"
class EvilModel(BertModel):
    config_class = EvilConfig
"""


def test_remote_code_never_runs(tiny_model_path, tmp_path):
    # A checkpoint whose config asks for its own Python code.
    directory = tmp_path / "evil"
    shutil.copytree(tiny_model_path("bert"), directory)
    (directory / "evil.py").write_text(EVIL_CODE)
    config = json.loads((directory / "config.json").read_text())
    custom = {**config, "model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig"}}
    (directory / "config.json").write_text(json.dumps(custom))
    with pytest.raises(UnsupportedModelError, match="remote code is never enabled"):
        load_model_for(DeployPolicy(), str(directory))
    # A known model type with an auto_map loads with transformers' own class instead.
    hijacked = {**config, "auto_map": {"AutoModelForMaskedLM": "evil.EvilModel"}}
    (directory / "config.json").write_text(json.dumps(hijacked))
    model = load_model(str(directory))
    assert type(model.model).__module__.startswith("transformers.")
    assert not (directory / "REMOTE_CODE_RAN").exists()


# ---------------------------------------------------------------- deployment files
ROOT = Path(__file__).resolve().parents[2]


def test_the_secrets_example_turns_on_the_strict_public_policy():
    secrets = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text())
    assert set(secrets) <= set(server.settings.SETTING_NAMES)
    assert policy_from_env({}, secrets) == DeployPolicy.strict()


def test_every_streamlit_setting_in_config_toml_exists():
    from streamlit import config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    names = {f"{section}.{key}" for section, values in settings.items() for key in values}
    unknown = names - set(config._config_options_template)
    assert not unknown, f"not Streamlit options (typo?): {unknown}"


# ---------------------------------------------------------------- budgets (issue 12)
BUDGET_SETTINGS = {
    "ATLAS_MAX_RESULT_BYTES": ("max_result_bytes", "160M", 160_000_000),
    "ATLAS_MAX_FLOW_ROWS": ("max_flow_rows", "16", 16),
    "ATLAS_MAX_FLOW_SECONDS": ("max_flow_seconds", "30", 30),
    "ATLAS_MAX_VALUE_ZEROING_TOKENS": ("max_value_zeroing_tokens", "128", 128),
    "ATLAS_MAX_AGREEMENT_TOKENS": ("max_agreement_tokens", "64", 64),
    "ATLAS_MAX_EXPORT_CELLS": ("max_export_cells", "2M", 2_000_000),
    "ATLAS_MAX_MASKS": ("max_masks", "8", 8),
    "ATLAS_MAX_CORPUS_SENTENCES": ("max_corpus_sentences", "500", 500),
}
# A model of 4.5M parameters whose attention is huge: 100 layers × 64 heads.
MANY_HEADS = BertConfig(
    hidden_size=128,
    num_hidden_layers=100,
    num_attention_heads=64,
    intermediate_size=128,
    vocab_size=1000,
    architectures=["BertModel"],
)
# 100,000 tiny layers: far under the parameter cap, but 266 s and 5.5 GB to build on meta.
DEEP = BertConfig(
    hidden_size=4,
    num_hidden_layers=100_000,
    num_attention_heads=1,
    intermediate_size=4,
    vocab_size=100,
    architectures=["BertModel"],
)


def test_public_budgets_default_on_and_read_like_the_other_settings():
    public = policy_from_env({"ATLAS_PUBLIC": "1"})
    private = policy_from_env({})
    for field, _, value in BUDGET_SETTINGS.values():
        assert getattr(public, field) == value
        # Private installs have no budget but the export cap (4M numbers: one file is built in
        # memory whoever asks for it).
        assert getattr(private, field) == (4_000_000 if field == "max_export_cells" else None)
    env = {"ATLAS_PUBLIC": "1", **{key: "none" for key in BUDGET_SETTINGS}}
    assert all(
        getattr(policy_from_env(env), field) is None for field, *_ in BUDGET_SETTINGS.values()
    )
    for key, (field, raw, value) in BUDGET_SETTINGS.items():
        assert getattr(policy_from_env({key: raw}), field) == value  # private opt-in
        with pytest.raises(DeployConfigError, match=key):
            policy_from_env({"ATLAS_PUBLIC": "1", key: "lots"})


def test_result_size_is_layers_heads_and_tokens_squared_from_the_config():
    assert result_bytes(BERT_LARGE, 256) == 24 * 16 * 256 * 256 * 4
    # Encoder-decoder: encoder self-attention, decoder self-attention and cross-attention.
    bart = BartConfig(
        encoder_layers=3,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=8,
        d_model=32,
    )
    assert attention_shape(bart) == AttentionShape(3, 4, 2, 8)
    assert result_bytes(bart, 10) == (3 * 4 + 2 * 2 * 8) * 100 * 4


def test_a_huge_result_is_refused_from_the_config_before_loading():
    """Issue 12, item 8: 100 layers × 64 heads is 4.5M parameters but 1.7 GB at 256 tokens."""
    policy = DeployPolicy.strict()
    assert estimate_parameters(MANY_HEADS) < policy.max_parameters
    with pytest.raises(ResultTooLargeError, match=r"100 layers × 64 heads.*256-token.*1\.7 GB"):
        check_result_size(policy, MANY_HEADS, name="acme/many-heads")
    # Every preset's shape fits at the public cap, and BERT-base at 512 tokens too.
    assert check_result_size(policy, BertConfig()) == 12 * 12 * 256 * 256 * 4
    assert check_result_size(policy, BertConfig(), max_tokens=512) == 12 * 12 * 512 * 512 * 4
    # The model's own limit bounds the tokens: a 64-position model is sized at 64.
    small = BertConfig(max_position_embeddings=64)
    assert check_result_size(DeployPolicy(), small) == 12 * 12 * 64 * 64 * 4


def test_a_huge_result_never_downloads_weights(monkeypatch, tmp_path):
    repos = {"acme/many-heads": {"config.json": MANY_HEADS.to_json_string().encode()}}
    with serve_fake_hub(repos) as hub:
        hub.activate(monkeypatch, tmp_path)
        policy = dataclasses.replace(DeployPolicy.strict(), allowed_models=None)
        with pytest.raises(ResultTooLargeError):
            load_model_for(policy, "acme/many-heads")
    assert hub.requested_weights() == []


def test_a_config_with_100000_layers_is_refused_by_arithmetic_not_built(tmp_path):
    """Issue 12, item 8. Built on the meta device it would pass the parameter cap (a few MB of
    parameters) after minutes; refused by counting, the error names the layers."""
    with pytest.raises(ModelTooLargeError, match=r"100,000 layers.*up to 256 layers"):
        check_model_size(DeployPolicy.strict(), DEEP, "acme/deep")
    with pytest.raises(ModelTooLargeError, match="100,000 layers"):
        estimate_parameters(DEEP)
    # A private install (no caps at all) refuses it too, from a local directory.
    DEEP.save_pretrained(tmp_path)
    with pytest.raises(ModelTooLargeError, match="100,000 layers"):
        load_model_for(DeployPolicy(), str(tmp_path))


def test_experts_are_bounded_like_layers():
    config = BertConfig(architectures=["BertModel"])
    config.num_local_experts = 100_000
    with pytest.raises(ModelTooLargeError, match="100,000 experts"):
        check_attention_shape(config, "acme/moe")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_available_memory_is_the_lower_of_meminfo_and_the_cgroup_limit(tmp_path):
    meminfo = _write(tmp_path / "meminfo", "MemTotal: 24000000 kB\nMemAvailable: 2000000 kB\n")
    no_cgroup = tmp_path / "none"
    assert available_memory_bytes(meminfo, no_cgroup) == 2_000_000 * 1024
    v2 = tmp_path / "v2"
    _write(v2 / "memory.max", "1000000000\n")
    _write(v2 / "memory.current", "400000000\n")
    assert available_memory_bytes(meminfo, v2) == 600_000_000
    _write(v2 / "memory.max", "max\n")
    assert available_memory_bytes(meminfo, v2) == 2_000_000 * 1024
    v1 = tmp_path / "v1"
    _write(v1 / "memory" / "memory.limit_in_bytes", str(2**63 - 4096))  # v1's "no limit"
    _write(v1 / "memory" / "memory.usage_in_bytes", "5")
    assert available_memory_bytes(meminfo, v1) == 2_000_000 * 1024
    _write(v1 / "memory" / "memory.limit_in_bytes", "300")
    assert available_memory_bytes(meminfo, v1) == 295
    assert available_memory_bytes(no_cgroup, no_cgroup) is None
    assert available_memory_bytes() > 0  # this machine's, from /proc


def test_private_mode_refuses_a_model_that_does_not_fit_in_memory():
    parameters = estimate_parameters(BERT_LARGE)
    needed = check_memory(DeployPolicy(), BERT_LARGE, "big", available=10**12)
    # The weights and one 512-token text (what its result keeps and its forward pass).
    assert needed == parameters * 4 + text_memory_bytes(BERT_LARGE, 512)
    with pytest.raises(InsufficientMemoryError, match=r"'big' would need about 2\.0 GB.*335M"):
        check_memory(DeployPolicy(), BERT_LARGE, "big", available=500_000_000)
    # The token cap is what sizes the result: lowered, the same model needs less.
    capped = DeployPolicy(max_tokens=64)
    assert check_memory(capped, BERT_LARGE, "big", available=10**12) < needed
    # Half-precision checkpoints take two bytes a parameter.
    half = BertConfig(dtype="float16")
    assert parameter_bytes(half) == 2 and parameter_bytes(BertConfig()) == 4


def test_private_mode_refuses_a_310b_config_before_loading(tmp_path, monkeypatch):
    """Issue 12, item 8: without a parameter cap such a config got the server killed."""

    def forbidden(*args, **kwargs):
        raise AssertionError("weights must not be loaded for a model that does not fit")

    monkeypatch.setattr(server.policy, "load_model", forbidden)
    huge = BertConfig(
        hidden_size=18432,
        num_hidden_layers=76,
        num_attention_heads=96,
        intermediate_size=73728,
        architectures=["BertModel"],
    )
    huge.save_pretrained(tmp_path)
    with pytest.raises(InsufficientMemoryError, match=r"310\.\dB parameters"):
        load_model_for(DeployPolicy(), str(tmp_path))


def test_flow_rows_budget():
    policy = DeployPolicy.strict()
    check_rows_request(policy, n_tokens=256, rows=16)
    check_rows_request(policy, n_tokens=10, rows=None)  # every row of a short text
    with pytest.raises(TooManyRowsError, match=r"17 rows of a 256-token text.*16 rows"):
        check_rows_request(policy, n_tokens=256, rows=17)
    with pytest.raises(TooManyRowsError, match="256 rows"):
        check_rows_request(policy, n_tokens=256, rows=None)  # a full flow
    check_rows_request(DeployPolicy(), n_tokens=512, rows=None)
    with pytest.raises(ValueError):
        check_rows_request(policy, n_tokens=0, rows=1)


def test_value_zeroing_tokens_budget():
    policy = DeployPolicy.strict()
    check_rerun_request(policy, 128)
    with pytest.raises(RerunTooLargeError, match=r"129-token text.*up to 128 tokens"):
        check_rerun_request(policy, 129)
    check_rerun_request(DeployPolicy(), 512)  # private: no cap
    with pytest.raises(ValueError):
        check_rerun_request(policy, 0)
    # Every layer of twelve: the same work (layers × n²) allows 128 / √12 = 36 tokens.
    assert rerun_tokens_allowed(policy, 12) == 36
    check_rerun_request(policy, 36, layers=12)
    with pytest.raises(RerunTooLargeError, match=r"each of the 12 layers.*up to 36 tokens"):
        check_rerun_request(policy, 37, layers=12)
    assert rerun_tokens_allowed(DeployPolicy(), 12) is None


def test_agreement_tokens_budget():
    policy = DeployPolicy.strict()
    check_agreement_request(policy, 64)
    with pytest.raises(AgreementTooLargeError, match=r"up to 64 tokens; this one has 65"):
        check_agreement_request(policy, 65)
    check_agreement_request(DeployPolicy(), 512)
    with pytest.raises(ValueError):
        check_agreement_request(policy, 0)
    assert issubclass(AgreementTooLargeError, BudgetExceededError)
    assert issubclass(RerunTooLargeError, BudgetExceededError)


def test_flow_time_budget_stops_through_the_progress_callback():
    policy = DeployPolicy.strict()
    now = [100.0]
    seen: list[tuple[int, int]] = []

    def bar(done: int, total: int) -> bool:
        seen.append((done, total))
        return True

    progress = time_budget(policy, bar, clock=lambda: now[0])
    now[0] += 29.0
    assert progress(1, 10) is True
    now[0] += 2.0
    with pytest.raises(TimeBudgetExceededError, match="30 s"):
        progress(2, 10)
    assert seen == [(1, 10)]
    # Without a budget the callback only forwards.
    assert time_budget(DeployPolicy(), clock=lambda: now[0])(1, 2) is None


def test_the_time_budget_leaves_out_seconds_paused_for_other_visitors():
    policy = DeployPolicy.strict()  # 30 s
    now, paused = [100.0], [7.0]  # 7 s paused before this request: not its own
    progress = time_budget(policy, clock=lambda: now[0], paused=lambda: paused[0])
    now[0] += 40.0
    paused[0] += 15.0  # 40 s passed, 15 of them paused while other visitors' pages ran
    assert progress(1, 10) is None
    now[0] += 6.0
    with pytest.raises(TimeBudgetExceededError):
        progress(2, 10)  # 31 s of its own work


def test_a_real_flow_is_stopped_by_the_time_budget():
    from core import attention_flow

    rng = np.random.default_rng(0)
    attentions = rng.random((2, 2, 12, 12)).astype(np.float32)
    attentions /= attentions.sum(-1, keepdims=True)
    ticks = iter(range(0, 10_000, 40))  # every call of the clock is 40 s later
    policy = DeployPolicy(max_flow_seconds=30)
    with pytest.raises(TimeBudgetExceededError):
        attention_flow(attentions, progress=time_budget(policy, clock=lambda: next(ticks)))


def test_one_export_cap_public_and_private():
    public = DeployPolicy.strict()
    assert export_refusal(public, 2_000_000) is None
    refusal = export_refusal(public, 6 * 12 * 235 * 235)
    assert refusal is not None and "3,976,200 values" in refusal and "2,000,000" in refusal
    # A private install keeps the cap the page had before it was a setting: 4 M numbers.
    assert export_refusal(DeployPolicy(), 4_000_000) is None
    assert export_refusal(DeployPolicy(), 4_000_001) is not None
    assert export_refusal(DeployPolicy(max_export_cells=None), 10**9) is None


def test_masks_drawn_per_text():
    assert masks_allowed(DeployPolicy.strict(), 254) == 8
    assert masks_allowed(DeployPolicy.strict(), 3) == 3
    assert masks_allowed(DeployPolicy(), 254) == 254


def test_budget_errors_are_atlas_errors_for_people():
    for error in (TooManyRowsError, TimeBudgetExceededError):
        assert issubclass(error, BudgetExceededError) and issubclass(error, AtlasError)
    for error in (ResultTooLargeError, InsufficientMemoryError):
        assert issubclass(error, ModelLoadError)


def test_method_budgets_follow_the_cost_each_method_declares():
    """No method is known by name: a toy method declaring a per-row cost gets the rows budget
    and the time budget; one declaring per-token re-runs gets the text-length budget."""
    import dataclasses as dc

    from core.costs import Budget, Cost
    from core.methods import get_method
    from server.policy import check_method_request, method_progress

    policy = DeployPolicy.strict()
    toy = dc.replace(get_method("raw"), name="toy", label="toy method")
    per_row = dc.replace(toy, cost=Cost("rows * n", Budget.ROWS))
    per_token = dc.replace(toy, cost=Cost("n * layers", Budget.TOKENS))
    check_method_request(policy, toy, 10_000, None, 12)  # cheap: only the token cap bounds it
    with pytest.raises(TooManyRowsError, match=r"^Toy method for 17 rows"):
        check_method_request(policy, per_row, 256, 17)
    with pytest.raises(RerunTooLargeError, match=r"^Toy method re-runs the layer"):
        check_method_request(policy, per_token, 129, None, 1)
    now = [0.0]
    assert method_progress(policy, toy) is None
    timed = method_progress(policy, per_row, clock=lambda: now[0])
    now[0] = 31.0
    with pytest.raises(TimeBudgetExceededError, match=r"^Toy method was stopped after 30 s"):
        timed(1, 2)
