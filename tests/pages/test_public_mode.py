"""Public-deploy mode in the real app: allowlist, caps and refusals, each seen by a visitor."""

from __future__ import annotations

import shutil

import pytest
import streamlit as st
import torch
from safetensors.torch import load_file
from streamlit.testing.v1 import AppTest
from transformers import BertConfig

import server.policy
import ui.costly
import ui.deploy
from core import EMBEDDED_MODEL, PRESETS
from server.settings import SETTING_NAMES
from tests.fake_hub import serve_fake_hub
from tests.pages.conftest import APP, assert_clean, explorer_drawn, explorer_table, start
from ui.deploy import CUSTOM_CHOICE, model_label


def messages(at: AppTest, kind: str) -> str:
    # Errors are Markdown-escaped for display; compare against the words.
    return " | ".join(element.value for element in at.get(kind)).replace("\\", "")


def clear_caches() -> None:
    # Models and results are cached per process under the policy they were made with.
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def deploy(monkeypatch):
    """Factory: `deploy(ATLAS_PUBLIC=1, ...)` sets exactly these settings for the app."""

    def configure(**settings: object) -> None:
        for key in SETTING_NAMES:
            monkeypatch.delenv(key, raising=False)
        for key, value in settings.items():
            monkeypatch.setenv(key, str(value))
        clear_caches()

    yield configure
    clear_caches()


def model_options(at: AppTest) -> list[str]:
    return list(at.selectbox(key="w_model_choice").options)


def labels(names) -> list[str]:
    """The picker's option labels for `names`."""
    return [model_label(name) for name in names]


def test_private_install_offers_any_model(deploy):
    deploy()
    at = start()
    assert_clean(at)
    assert CUSTOM_CHOICE in model_options(at)


def test_public_mode_offers_only_the_presets_and_says_why(deploy):
    deploy(ATLAS_PUBLIC=1)
    at = start()
    assert_clean(at)
    assert not at.error
    assert model_options(at) == labels(PRESETS)
    assert any("offers these models only" in c.value for c in at.caption)
    assert explorer_drawn(at)  # the embedded model loads under the policy


def test_public_mode_can_be_turned_on_by_secrets(deploy):
    deploy()
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ATLAS_PUBLIC"] = True
    at.secrets["ATLAS_ALLOWED_MODELS"] = [EMBEDDED_MODEL]
    at.run()
    assert_clean(at)
    assert model_options(at) == labels([EMBEDDED_MODEL])


@pytest.mark.parametrize("name", ["../../etc", "bert-large-cased", "/tmp"])
def test_a_link_to_a_model_off_the_list_falls_back_with_a_warning(deploy, name):
    deploy(ATLAS_PUBLIC=1)
    at = start(model=name, text="The cat sat.")
    assert_clean(at)
    assert f"'{name}' is not offered by this public deployment" in messages(at, "warning")
    assert at.selectbox(key="w_model_choice").value == EMBEDDED_MODEL
    assert explorer_drawn(at)
    assert at.text_area(key="w_text").value == "The cat sat."


def test_the_second_model_of_compare_comes_from_the_allowlist(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=f"{EMBEDDED_MODEL},bert-base-uncased")
    at = start()
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    # The model shown is left out, and there is no free-text box to type another model into.
    assert list(at.selectbox(key="w_second_choice").options) == labels(["bert-base-uncased"])
    assert any("offers these models only" in c.value for c in at.caption)


def test_with_only_one_model_compare_offers_no_second(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=EMBEDDED_MODEL)
    at = start()
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    assert list(at.selectbox(key="w_second_choice").options) == []
    assert any("offers no other model" in c.value for c in at.caption)


def test_the_second_model_box_of_compare_is_refused_too(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS="any")
    at = start()
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="w_second_choice").set_value(CUSTOM_CHOICE).run()
    assert at.text_input(key="w_second_custom").label == "Hub id"
    at.text_input(key="w_second_custom").set_value("../../etc").run()
    assert_clean(at)
    assert "looks like a path on the server" in messages(at, "error")


def test_masked_page_offers_only_allowed_masked_lm_presets(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=f"{EMBEDDED_MODEL},roberta-base")
    at = start(text="The [MASK] sat.")
    at.switch_page("pages/masked.py").run()
    assert_clean(at)
    assert "no masked-word head" in messages(at, "info")
    assert [b.label for b in at.button if b.key.startswith("use_")] == labels(["roberta-base"])


def test_masked_page_without_an_allowed_masked_lm_says_so(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=EMBEDDED_MODEL)
    at = start(text="The [MASK] sat.")
    at.switch_page("pages/masked.py").run()
    assert_clean(at)
    assert "offers no masked-LM model" in messages(at, "info")
    assert not [b for b in at.button if b.key.startswith("use_")]
    assert len(at.get("vega_lite_chart")) == 1  # the mask's attention (no gallery grid)


def test_with_any_model_allowed_local_paths_are_still_refused(deploy, tiny_model_path):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS="any")
    at = start()
    at.selectbox(key="w_model_choice").set_value(CUSTOM_CHOICE).run()
    assert at.text_input(key="w_custom_model").label == "Hub id"
    at.text_input(key="w_custom_model").set_value(str(tiny_model_path("bert"))).run()
    assert_clean(at)
    assert "looks like a path on the server" in messages(at, "error")


def test_a_model_over_the_size_cap_is_refused_before_download(deploy, monkeypatch, tmp_path):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS="any", ATLAS_MAX_PARAMETERS="150M")
    large = BertConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    )
    with serve_fake_hub(
        {"acme/bert-large": {"config.json": large.to_json_string().encode()}}
    ) as hub:
        hub.activate(monkeypatch, tmp_path)
        at = start()
        at.selectbox(key="w_model_choice").set_value(CUSTOM_CHOICE).run()
        at.text_input(key="w_custom_model").set_value("acme/bert-large").run()
    assert_clean(at)
    assert "has 335M parameters; this deployment loads models up to 150M" in messages(at, "error")
    assert hub.requested_weights() == []


def test_token_cap_truncates_with_a_warning_and_keeps_the_text(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_TOKENS=16)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen " * 2
    at = start(text=text)
    assert_clean(at)
    warning = messages(at, "warning")
    assert "reads at most 16 tokens per text" in warning and "reads 512" in warning
    assert explorer_table(at).num_rows == 16 * 16
    assert "the last 14 tokens were dropped" in warning
    assert at.text_area(key="w_text").value == text


def test_a_private_token_cap_is_not_called_public(deploy):
    deploy(ATLAS_MAX_TOKENS=16)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen " * 2
    at = start(text=text)
    assert_clean(at)
    warning = messages(at, "warning")
    assert "This deployment reads at most 16 tokens per text" in warning
    assert "public" not in warning


def test_a_server_reached_over_the_network_starts_public_and_says_so(deploy, monkeypatch):
    deploy()  # ATLAS_PUBLIC set nowhere
    monkeypatch.setattr(ui.deploy, "client_address", lambda: "203.0.113.7")
    at = start()
    assert_clean(at)
    assert model_options(at) == labels(PRESETS)  # no free-text box: no local paths
    notice = " ".join(info.value for info in at.sidebar.info)
    assert "Public mode: this app is reached over the network" in notice
    # An operator who sets the mode explicitly gets it, and no notice.
    deploy(ATLAS_PUBLIC=0)
    at = start()
    assert CUSTOM_CHOICE in model_options(at)
    assert not any("Public mode" in info.value for info in at.sidebar.info)


def test_a_visitor_on_this_machine_keeps_the_private_default(deploy, monkeypatch):
    deploy()
    monkeypatch.setattr(ui.deploy, "client_address", lambda: "127.0.0.1")
    at = start()
    assert CUSTOM_CHOICE in model_options(at)


def test_character_cap_refuses_a_link_and_keeps_the_text(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_CHARS=100)
    long_text = "word " * 40
    at = start(text=long_text)
    assert_clean(at)
    assert "200 characters long" in messages(at, "error")
    assert at.text_area(key="w_text").value == long_text
    at.text_area(key="w_text").set_value("Short again.").run()
    assert not at.error and explorer_drawn(at)


def test_character_cap_limits_the_sidebar_boxes(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_CHARS=100)
    at = start()
    assert at.text_area(key="w_text").max_chars == 100
    assert at.text_input(key="w_pair").max_chars == 100
    # The browser refuses a longer paste; the server cuts what a client sends anyway.
    long_text = "word " * 40
    at.text_area(key="w_text").set_value(long_text).run()
    assert_clean(at)
    assert at.text_area(key="w_text").value == long_text[:100]
    assert not at.error and explorer_drawn(at)


def test_a_private_install_has_no_character_cap(deploy):
    deploy()
    at = start()
    assert not at.text_area(key="w_text").max_chars
    assert not at.text_input(key="w_pair").max_chars


def test_pickle_weights_are_refused_in_public_mode(deploy, tiny_model_path, tmp_path):
    directory = tmp_path / "pickle-bert"
    shutil.copytree(tiny_model_path("bert"), directory)
    torch.save(load_file(str(directory / "model.safetensors")), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=f"{directory},presets")
    at = start(model=directory)
    assert_clean(at)
    assert "has no safetensors weights" in messages(at, "error")


def test_an_allowlisted_local_model_works_in_public_mode(deploy, tiny_model_path):
    path = str(tiny_model_path("bert"))
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=path)
    at = start(model=path)
    assert_clean(at)
    assert not at.error
    assert model_options(at) == labels([path])
    assert explorer_drawn(at)


def test_an_unreadable_setting_falls_back_to_the_strict_policy(deploy):
    deploy(ATLAS_MAX_TOKENS="lots")
    at = start()
    assert_clean(at)
    assert "ATLAS_MAX_TOKENS='lots' is not a number" in messages(at, "error")
    assert "strict public settings" in messages(at, "error")
    assert model_options(at) == labels(PRESETS)


# ------------------------------------------------------------------ per-request budgets
LONG_TEXT = " ".join(["The cat sat on the mat because it was tired."] * 4)


def test_a_link_alone_starts_no_full_flow_in_public_mode(deploy):
    # 40+ tokens, above the public flow budget (16 rows): the link opens on chosen tokens.
    deploy(ATLAS_PUBLIC=1)
    at = start(text=LONG_TEXT, method="flow", layer=1)
    assert_clean(at)
    assert at.toggle(key="w_flow_chosen").value is True
    assert not at.error


def test_a_full_flow_over_the_public_budget_is_refused_with_a_message(deploy):
    deploy(ATLAS_PUBLIC=1)
    at = start(text=LONG_TEXT, method="flow", layer=1, flow_chosen="false")
    assert_clean(at)
    assert "more than this deployment computes for one request" in messages(at, "error")


def test_a_flow_over_the_time_budget_stops_with_a_message(deploy, monkeypatch):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_FLOW_SECONDS=1)
    ticks = iter(range(0, 10**6, 100))  # a clock on which every step takes 100 s

    def slow_clock_budget(policy, method, progress=None):
        return server.policy.method_progress(policy, method, progress, clock=lambda: next(ticks))

    monkeypatch.setattr(ui.costly, "method_progress", slow_clock_budget)
    at = start(text="The dog sat on the rug.", method="flow", layer=5, flow_chosen="false")
    assert_clean(at)
    assert "was stopped after 1 s" in messages(at, "error")


def test_value_zeroing_over_the_public_budget_is_refused_before_it_starts(deploy, progress_texts):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_VALUE_ZEROING_TOKENS=16)
    at = start(text=LONG_TEXT, method="value_zeroing", layer=1)
    assert_clean(at)
    assert "it does so for texts of up to 16 tokens" in messages(at, "error")
    assert not progress_texts  # nothing started
    at = start(text="The dog sat on the rug.", method="value_zeroing", layer=1)
    assert_clean(at)
    assert not at.error and progress_texts  # a short text is computed, with its progress


def test_the_agreement_over_the_public_budget_says_so(deploy, tiny_model_path):
    path = str(tiny_model_path("bert"))
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=path, ATLAS_MAX_AGREEMENT_TOKENS=16)
    at = start("pages/explain.py", model=path, text=LONG_TEXT.replace("tired", "[MASK]", 1))
    assert_clean(at)
    assert "ranks the methods for texts of up to 16 tokens" in messages(at, "info")
    assert "explain_agreement" not in [t.key for t in at.toggle]  # nothing to turn on
    at = start("pages/explain.py", model=path, text="The cat sat on the [MASK].")
    assert_clean(at)
    assert at.toggle(key="explain_agreement").value is False


def test_masks_drawn_are_capped_with_a_note(deploy, tiny_model_path):
    deploy(ATLAS_PUBLIC=1, ATLAS_ALLOWED_MODELS=str(tiny_model_path("bert")), ATLAS_MAX_MASKS=2)
    text = "The [MASK] sat on the [MASK] because [MASK] was [MASK]."
    at = start("pages/masked.py", model=tiny_model_path("bert"), text=text)
    assert_clean(at)
    assert "has 4 masks; the first 2 are drawn" in " ".join(c.value for c in at.caption)


def test_exports_over_the_public_cell_budget_are_not_offered(deploy):
    deploy(ATLAS_PUBLIC=1, ATLAS_MAX_EXPORT_CELLS=1000)
    at = start(text="The cat sat on the mat.")
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "too many to download here" in captions
