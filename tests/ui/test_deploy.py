"""Which models the pickers list under a deployment policy."""

from core import EMBEDDED_MODEL, PRESETS
from server.settings import DeployPolicy
from ui.deploy import CUSTOM_CHOICE, model_label, offered_models, picker_options


def test_a_private_install_lists_every_preset_and_the_free_text_choice():
    policy = DeployPolicy()
    assert offered_models(policy) == list(PRESETS)
    assert picker_options(policy) == [*PRESETS, CUSTOM_CHOICE]
    assert EMBEDDED_MODEL not in picker_options(policy, exclude=EMBEDDED_MODEL)


def test_a_public_deployment_lists_its_allowlist_only():
    policy = DeployPolicy(public=True, allowed_models=(EMBEDDED_MODEL,))
    assert picker_options(policy) == [EMBEDDED_MODEL]
    assert picker_options(policy, exclude=EMBEDDED_MODEL) == []


def test_model_labels_say_what_a_preset_costs():
    assert "embedded" in model_label(EMBEDDED_MODEL)
    downloads = [name for name, preset in PRESETS.items() if preset.needs_download]
    assert all("download" in model_label(name) for name in downloads)
    assert model_label("someone/model") == "someone/model"
    assert model_label(CUSTOM_CHOICE) == CUSTOM_CHOICE
