"""One table of settings (issue 20, item 4): the policy, parsing, strict mode, error messages and
docs/settings.md all come from `server.settings.SETTINGS`."""

from __future__ import annotations

import dataclasses

import pytest

from server.errors import DeployConfigError
from server.settings import (
    DOCS_FILE,
    SETTING_NAMES,
    SETTINGS,
    DeployPolicy,
    Kind,
    default,
    parse,
    policy_from_env,
    settings_markdown,
)


def test_docs_table_is_generated_from_the_table():
    assert DOCS_FILE.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run `python -m server.settings`"
    )
    for setting in SETTINGS:
        assert f"| `{setting.name}` | {setting.kind.value} | `{setting.private}` |" in (
            settings_markdown()
        )


def test_the_policy_has_one_field_per_row_and_nothing_else():
    assert [field.name for field in dataclasses.fields(DeployPolicy)] == [
        setting.field for setting in SETTINGS
    ]
    assert len(set(SETTING_NAMES)) == len(SETTINGS)
    assert all(name.startswith("ATLAS_") for name in SETTING_NAMES)


def test_defaults_are_read_by_the_same_parser_as_an_operators_values():
    private, public = DeployPolicy(), DeployPolicy.strict()
    for setting in SETTINGS:
        assert getattr(private, setting.field) == parse(setting, setting.private)
        assert getattr(public, setting.field) == parse(setting, setting.public)
        # Writing the default explicitly changes nothing.
        mode = {"ATLAS_PUBLIC": "1"}
        assert policy_from_env({**mode, setting.name: setting.public}) == public
        assert policy_from_env({setting.name: setting.private}) == private


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_every_unreadable_value_names_its_setting(setting):
    bad = {Kind.FLAG: "maybe", Kind.AMOUNT: "lots", Kind.MODELS: " , "}[setting.kind]
    with pytest.raises(DeployConfigError, match=setting.name):
        policy_from_env({"ATLAS_PUBLIC": "1", setting.name: bad})


def test_an_amount_below_its_minimum_is_refused_with_the_minimum():
    tokens = next(s for s in SETTINGS if s.name == "ATLAS_MAX_TOKENS")
    with pytest.raises(DeployConfigError, match="at least 16"):
        parse(tokens, "8")
    assert parse(tokens, "16") == 16


def test_a_flag_public_mode_keeps_on_cannot_be_turned_off_there():
    kept = [s for s in SETTINGS if s.kept_on_in_public]
    assert [s.name for s in kept] == ["ATLAS_SAFETENSORS_ONLY"]
    with pytest.raises(DeployConfigError, match="cannot be turned off in public mode: pickle"):
        policy_from_env({"ATLAS_PUBLIC": "1", "ATLAS_SAFETENSORS_ONLY": "0"})
    assert not policy_from_env({"ATLAS_SAFETENSORS_ONLY": "0"}).safetensors_only


def test_the_mode_default_applies_only_when_no_one_set_it():
    assert policy_from_env({}, default_public=True) == DeployPolicy.strict()
    assert not policy_from_env({"ATLAS_PUBLIC": "0"}, default_public=True).public
    assert not policy_from_env({}, {"ATLAS_PUBLIC": False}, default_public=True).public
    assert policy_from_env({}, {"ATLAS_PUBLIC": True}) == DeployPolicy.strict()


def test_default_reads_the_table():
    for setting in SETTINGS:
        assert default(setting, True) == getattr(DeployPolicy.strict(), setting.field)
