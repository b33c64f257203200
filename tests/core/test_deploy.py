"""Public-deploy policy: settings, allowlist, size and token caps, weight format, remote code."""

from __future__ import annotations

import json
import shutil
import tomllib
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AlbertConfig, BertConfig, DistilBertConfig, RobertaConfig

import core.deploy
from core import EMBEDDED_MODEL, PRESETS, load_model, run_attention
from core.deploy import (
    PUBLIC_MAX_CHARS,
    PUBLIC_MAX_PARAMETERS,
    PUBLIC_MAX_TOKENS,
    DeployConfigError,
    DeployPolicy,
    ModelNotAllowedError,
    ModelTooLargeError,
    TextTooLongError,
    UnsafeWeightsError,
    check_model_allowed,
    check_model_size,
    check_text_length,
    estimate_parameters,
    load_model_for,
    policy_from_env,
)
from core.errors import UnsupportedModelError
from core.models import load_config
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
    assert policy.max_tokens == PUBLIC_MAX_TOKENS == 256
    assert policy.max_chars == PUBLIC_MAX_CHARS
    assert policy.max_parameters == PUBLIC_MAX_PARAMETERS == 150_000_000
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

    monkeypatch.setattr(core.deploy, "load_config", forbidden)
    monkeypatch.setattr(core.deploy, "load_model", forbidden)
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

    monkeypatch.setattr(core.deploy, "load_model", forbidden)
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
    with pytest.raises(UnsafeWeightsError, match="safetensors only"):
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
    assert set(secrets) <= set(core.deploy.SETTINGS)
    assert policy_from_env({}, secrets) == DeployPolicy.strict()


def test_every_streamlit_setting_in_config_toml_exists():
    from streamlit import config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    names = {f"{section}.{key}" for section, values in settings.items() for key in values}
    unknown = names - set(config._config_options_template)
    assert not unknown, f"not Streamlit options (typo?): {unknown}"
