"""Which models the pickers list under a deployment policy."""

from core import EMBEDDED_MODEL, PRESETS
from server.settings import DeployPolicy
from ui.deploy import CUSTOM_CHOICE, model_label, model_note, offered_models, picker_options


def test_a_private_install_lists_every_preset_and_the_free_text_choice():
    policy = DeployPolicy()
    assert offered_models(policy) == list(PRESETS)
    assert picker_options(policy) == [*PRESETS, CUSTOM_CHOICE]
    assert EMBEDDED_MODEL not in picker_options(policy, exclude=EMBEDDED_MODEL)


def test_a_public_deployment_lists_its_allowlist_only():
    policy = DeployPolicy(public=True, allowed_models=(EMBEDDED_MODEL,))
    assert picker_options(policy) == [EMBEDDED_MODEL]
    assert picker_options(policy, exclude=EMBEDDED_MODEL) == []


def test_model_labels_are_short_and_the_note_keeps_the_id_and_the_cost():
    assert model_label(EMBEDDED_MODEL) == "all-MiniLM-L6-v2"
    assert model_label("huawei-noah/TinyBERT_General_4L_312D") == "TinyBERT_General_4L_312D"
    labels = [model_label(name) for name in PRESETS]
    # Each fits the sidebar's box at 1024 px (27 characters were shown there) and still tells
    # the presets apart.
    assert max(map(len, labels)) <= 26 and len(set(labels)) == len(PRESETS)
    assert model_note(EMBEDDED_MODEL) == EMBEDDED_MODEL
    assert PRESETS[EMBEDDED_MODEL].description.startswith("Embedded, works offline")
    for name, preset in PRESETS.items():
        if preset.needs_download:
            assert model_note(name) == f"{name} · ≈{preset.download_mb} MB download on first use"
    # Names that are not presets are shown as typed, with no note.
    assert model_label("someone/model") == "someone/model" and model_note("someone/model") == ""
    assert model_label(CUSTOM_CHOICE) == CUSTOM_CHOICE


def test_presets_sharing_a_short_name_keep_their_owner(monkeypatch):
    import ui.deploy

    twins = {name: PRESETS["bert-base-uncased"] for name in ("a/bert", "b/bert", "c/solo")}
    monkeypatch.setattr(ui.deploy, "PRESETS", twins)
    assert [model_label(name) for name in twins] == ["a/bert", "b/bert", "solo"]


def test_reached_remotely_reads_the_visitor_then_the_listening_address(monkeypatch):
    from streamlit import config

    import ui.deploy

    monkeypatch.setattr(ui.deploy, "client_address", lambda: None)
    monkeypatch.setattr(config, "get_option", lambda name: None)
    assert not ui.deploy.reached_remotely()  # the default: a local `streamlit run`
    for listening, remote in (("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)):
        monkeypatch.setattr(config, "get_option", lambda name, value=listening: value)
        assert ui.deploy.reached_remotely() is remote
    monkeypatch.setattr(config, "get_option", lambda name: "127.0.0.1")
    monkeypatch.setattr(ui.deploy, "client_address", lambda: "2001:db8::1")
    assert ui.deploy.reached_remotely()  # a visitor from elsewhere, whatever the binding
    monkeypatch.setattr(ui.deploy, "client_address", lambda: "::1")
    assert not ui.deploy.reached_remotely()
