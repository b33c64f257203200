import json

import pytest
import torch

from core import (
    EMBEDDED_MODEL,
    PRESETS,
    DeviceUnavailableError,
    InvalidModelNameError,
    ModelKind,
    NotAModelError,
    OfflineError,
    UnsupportedModelError,
    load_model,
)
from core.capture import ATTENTION_IMPLEMENTATION
from core.models import detect_kind, hub_reachable, resolve_source


def test_embedded_model_loads_offline(embedded):
    assert embedded.name == EMBEDDED_MODEL
    assert embedded.source == "embedded"
    assert embedded.kind is ModelKind.ENCODER  # all-MiniLM-L6-v2 ships no masked-word head
    assert (embedded.num_layers, embedded.num_heads, embedded.max_length) == (6, 12, 512)
    assert embedded.model.config._attn_implementation == ATTENTION_IMPLEMENTATION
    assert not embedded.model.training


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        ("bert", ModelKind.MASKED_LM),
        ("roberta", ModelKind.MASKED_LM),
        ("distilbert", ModelKind.MASKED_LM),
        ("albert", ModelKind.MASKED_LM),
        ("bert-encoder", ModelKind.ENCODER),
        ("gpt2", ModelKind.CAUSAL_LM),
        ("bart", ModelKind.ENCODER_DECODER),
    ],
)
def test_kind_is_detected_and_attention_is_atlas(loaded_tiny, family, kind):
    model = loaded_tiny(family)
    assert model.kind is kind
    assert model.source == "local"
    assert model.model.config._attn_implementation == ATTENTION_IMPLEMENTATION
    assert model.num_layers >= 1 and model.num_heads >= 1
    assert model.device == torch.device("cpu")


def test_roberta_max_length_leaves_out_padding_offset(loaded_tiny):
    roberta = loaded_tiny("roberta")
    positions = roberta.model.config.max_position_embeddings
    assert roberta.max_length == positions - roberta.model.config.pad_token_id - 1


def test_masked_lm_checkpoint_without_trained_head_is_an_encoder(tmp_path, tiny_model_path):
    # A config that claims nothing about its head, with only base-model weights saved.
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(tiny_model_path("bert-encoder")))
    base.config.architectures = None
    base.save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        source = tiny_model_path("bert-encoder") / name
        if source.exists():
            (tmp_path / name).write_bytes(source.read_bytes())
    model = load_model(str(tmp_path))
    assert model.kind is ModelKind.ENCODER


def test_presets_include_seed_models_and_embedded():
    for name in (
        EMBEDDED_MODEL,
        "bert-base-uncased",
        "roberta-base",
        "distilbert-base-uncased",
        "albert-base-v2",
        "huawei-noah/TinyBERT_General_4L_312D",
        "EdwinXhen/TinyBert_6Layer_MLM",
    ):
        assert name in PRESETS
        assert PRESETS[name].description
    assert not PRESETS[EMBEDDED_MODEL].needs_download
    assert PRESETS["bert-base-uncased"].needs_download


@pytest.mark.parametrize("name", ["", "   ", "bad name!", "a/b/c?", "foo..bar", "x--y"])
def test_invalid_names_are_refused(name):
    with pytest.raises((InvalidModelNameError, NotAModelError)):
        load_model(name)


def test_path_traversal_is_not_a_model():
    with pytest.raises(NotAModelError):
        load_model("../../etc")


def test_local_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotAModelError, match=r"config\.json"):
        load_model(str(tmp_path))


def test_missing_local_path(tmp_path):
    with pytest.raises(NotAModelError):
        load_model(str(tmp_path / "does-not-exist"))


def test_unknown_model_type_is_unsupported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(UnsupportedModelError):
        load_model(str(tmp_path))


def test_unknown_hub_id_offline_says_so_and_suggests_embedded():
    with pytest.raises(OfflineError, match=EMBEDDED_MODEL):
        load_model("no-such-user/no-such-model-xyz")


def test_unreachable_network_is_detected_before_downloading(monkeypatch):
    # Not in offline mode, but the endpoint refuses connections: the probe answers at once
    # instead of transformers retrying for ~20 s.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert hub_reachable() is False
    with pytest.raises(OfflineError, match="offline"):
        load_model("bert-base-uncased")


def test_resolve_source():
    assert resolve_source(EMBEDDED_MODEL)[1] == "embedded"
    assert resolve_source("bert-base-uncased") == ("bert-base-uncased", "hub")
    assert resolve_source("huawei-noah/TinyBERT_General_4L_312D")[1] == "hub"


def test_detect_kind_from_flags():
    class Config:
        model_type = "gpt2"
        architectures = None
        is_encoder_decoder = False
        is_decoder = False

    assert detect_kind(Config()) is ModelKind.CAUSAL_LM
    Config.model_type = "bert"
    assert detect_kind(Config()) is ModelKind.MASKED_LM
    Config.architectures = ["BertModel"]
    assert detect_kind(Config()) is ModelKind.ENCODER
    Config.is_encoder_decoder = True
    assert detect_kind(Config()) is ModelKind.ENCODER_DECODER


class _WritesAFileWhenUnpickled:
    """A pickle payload: unpickling it would call `open(marker, "w")`, i.e. run code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_checkpoint(tiny_model_path, directory, payload) -> str:
    """A copy of the tiny BERT whose only weights are a pytorch_model.bin holding `payload`."""
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(tiny_model_path("bert"), directory)
    weights = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    torch.save({**weights, "extra": payload}, directory / "pytorch_model.bin")
    return str(directory)


@pytest.mark.parametrize("payload", ["date", "code"])
def test_pickle_weights_refused_by_torch_give_a_clean_message(tmp_path, tiny_model_path, payload):
    """Issue 12, item 9: no raw UnpicklingError advising `weights_only=False`, and the payload
    never runs, in private mode too."""
    import datetime

    from core.errors import UnsafePickleError
    from server.policy import load_model_for
    from server.settings import DeployPolicy

    marker = tmp_path / "payload-ran"
    value = datetime.date(2020, 1, 1) if payload == "date" else _WritesAFileWhenUnpickled(marker)
    path = _pickle_checkpoint(tiny_model_path, tmp_path / "pickled", value)
    for load in (load_model, lambda name: load_model_for(DeployPolicy(), name)):
        with pytest.raises(UnsafePickleError) as refused:
            load(path)
        message = str(refused.value)
        assert "safetensors" in message
        for leaked in ("weights_only", "Unpickl", "add_safe_globals", "site-packages", "GLOBAL"):
            assert leaked not in message
    assert not marker.exists()


def test_device_cpu_runs_and_results_are_on_the_cpu(tiny_model_path):
    import core

    model = load_model(str(tiny_model_path("llama")), device="cpu")
    assert model.device == torch.device("cpu")
    result = core.run_attention(model, "The cat sat on the mat.")
    assert result.row(1, 3, 4).dtype.name == "float32"
    assert result.computed(1, range(5), range(5)).dtype == bool


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "tpu", "gpu0"])
def test_unavailable_device_is_a_typed_error(tiny_model_path, device):
    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("this machine has CUDA")  # the tests run on CPU-only machines
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(DeviceUnavailableError, match="device") as caught:
        load_model(str(tiny_model_path("bert")), device=device)
    assert str(tiny_model_path("bert")) not in str(caught.value)
