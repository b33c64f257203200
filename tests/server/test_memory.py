"""Sizes from the config's arithmetic and memory judged by the text (issues 21 and 24): nothing
is built or locked to size a config, experts count, and a model's maximum length is no text's."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch
from transformers import MixtralConfig, Qwen2Config

import core
import server.memory
from core.errors import InsufficientMemoryError
from core.loading_lock import LOADING_LOCK
from core.models import load_config
from server.errors import ModelTooLargeError, NoWeightsError
from server.memory import (
    check_memory,
    check_text_memory,
    estimate_parameters,
    kept_bytes,
    text_memory_bytes,
)
from server.policy import check_model_size, load_model_for
from server.settings import DeployPolicy
from tests.fake_hub import serve_fake_hub
from tests.tiny_models import FAMILIES

GB = 10**9
# Qwen2.5-0.5B's shape: bf16, 24 layers of 14 query heads, 32,768 positions.
QWEN_HALF_B = Qwen2Config(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
    torch_dtype="bfloat16",
    architectures=["Qwen2ForCausalLM"],
)


def experts(count: int) -> MixtralConfig:
    return MixtralConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=count,
        architectures=["MixtralForCausalLM"],
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_arithmetic_equals_the_built_models_count(family, loaded_tiny, tiny_model_path):
    config = load_config(str(tiny_model_path(family)))
    assert estimate_parameters(config) == loaded_tiny(family).num_parameters


def test_a_thousand_experts_are_counted_without_building_or_locking_anything(monkeypatch):
    def built(*args, **kwargs):
        raise AssertionError("a module was built to size a config")

    monkeypatch.setattr(torch.nn.Module, "__init__", built)
    # Another visitor's load holds the global loading lock all along.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with LOADING_LOCK:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    counts: dict[int, int] = {}
    sizing = threading.Thread(
        target=lambda: counts.update({n: estimate_parameters(experts(n)) for n in (8, 1024)})
    )
    try:
        sizing.start()
        sizing.join(10)
        assert not sizing.is_alive(), "sizing a config waited for the loading lock"
    finally:
        release.set()
        holder.join(10)
    # Every expert of every layer counts: 3 matrices of hidden × inner, and a router column.
    per_expert = 3 * 64 * 128 + 64
    assert counts[1024] - counts[8] == 2 * (1024 - 8) * per_expert


def test_experts_count_toward_the_parameter_cap():
    with pytest.raises(ModelTooLargeError, match="51M parameters"):
        check_model_size(DeployPolicy(max_parameters=10_000_000), experts(1024), "acme/moe")


def test_memory_at_load_is_judged_by_a_text_not_the_models_maximum_length():
    # Weights ≈ 1 GB in bf16, one 512-token text's attention 0.7 GB at its peak: fits in 8 GB.
    # Sized at 32,768 positions it "needed" 2887 GB.
    needed = check_memory(DeployPolicy(), QWEN_HALF_B, "qwen", available=8 * GB)
    assert needed < 2 * GB
    # Each text is then judged at its own length before it runs.
    assert check_text_memory(QWEN_HALF_B, 100, "qwen", available=8 * GB) < GB
    with pytest.raises(InsufficientMemoryError, match=r"20,000-token text.*fewer tokens"):
        check_text_memory(QWEN_HALF_B, 20_000, "qwen", available=1 * GB)
    # A public token cap still bounds the load-time figure.
    capped, long = DeployPolicy(max_tokens=256), DeployPolicy(max_tokens=32_768)
    assert check_memory(capped, QWEN_HALF_B, available=8 * GB) < check_memory(
        long, QWEN_HALF_B, available=8 * GB
    )


def test_a_long_context_checkpoint_loads_in_a_private_install(
    tiny_model_path, tmp_path, monkeypatch
):
    directory = tmp_path / "long"
    shutil.copytree(tiny_model_path("llama"), directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(
        json.dumps({**config, "max_position_embeddings": 131072})
    )
    monkeypatch.setattr(server.memory, "available_memory_bytes", lambda: 1 * GB)
    assert load_model_for(DeployPolicy(), str(directory)).num_layers == config["num_hidden_layers"]


def test_a_config_only_checkpoint_has_no_weights_not_pickle_files(tiny_model_path, tmp_path):
    directory = tmp_path / "config-only"
    directory.mkdir()
    shutil.copy(tiny_model_path("bert") / "config.json", directory)
    for policy in (DeployPolicy(), DeployPolicy(safetensors_only=True)):
        with pytest.raises(NoWeightsError, match="has a config but no weights") as refused:
            load_model_for(policy, str(directory))
        assert "pickle" not in str(refused.value)


def test_a_config_only_hub_repository_has_no_weights(tiny_model_path, monkeypatch, tmp_path):
    config = (tiny_model_path("bert") / "config.json").read_bytes()
    with serve_fake_hub({"acme/config-only": {"config.json": config}}) as hub:
        hub.activate(monkeypatch, tmp_path)
        with pytest.raises(NoWeightsError, match="no weights"):
            load_model_for(
                DeployPolicy.strict().__class__(safetensors_only=True), "acme/config-only"
            )
    assert hub.requested_weights() == [] or all(
        "safetensors" in path for path in hub.requested_weights()
    )


def test_a_text_is_sized_by_what_its_result_keeps_not_the_whole_array():
    # 4,096 tokens on the 0.5B shape: the whole float32 array would be 45 GB; the capture keeps
    # bf16 queries and keys (24 layers × (14 + 2) heads × 64) and a normaliser per row, and
    # pieces read from it up to the result's budget.
    kept = 24 * 4096 * (64 * (14 + 2) * 2 + 4 * 14) + core.DENSE_BUDGET_BYTES
    assert kept_bytes(QWEN_HALF_B, 4096) == kept
    needed = check_text_memory(QWEN_HALF_B, 4096, "qwen", available=2 * GB)
    assert kept < needed < 1.5 * GB
    # Linear in the tokens beyond the whole array's budget, not quadratic.
    assert text_memory_bytes(QWEN_HALF_B, 32_768) < 9 * text_memory_bytes(QWEN_HALF_B, 4096)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_text_too_long_for_the_memory_says_what_to_lower(dtype):
    config = Qwen2Config(**{**QWEN_HALF_B.to_dict(), "dtype": dtype})
    with pytest.raises(InsufficientMemoryError) as caught:
        check_text_memory(config, 32_768, "qwen", available=1 * GB)
    message = str(caught.value)
    assert "32,768-token text" in message and "fewer tokens" in message
    fitting = int(message.split("about ")[-1].split(" tokens fit")[0].replace(",", ""))
    assert 1_000 < fitting < 32_768
    assert text_memory_bytes(config, fitting) <= 1 * GB < text_memory_bytes(config, fitting + 1)
    # bfloat16 is offered only where it would lower anything.
    assert ("bfloat16" in message) == (dtype == "float32")
    assert "may not be a text model" not in message and "public deployment" not in message


def test_what_is_kept_is_what_a_result_holds(loaded_tiny, tiny_model_path):
    import core

    model = loaded_tiny("llama")
    result = core.run_attention(model, "The researchers visualized attention patterns. " * 8)
    _ = result.attentions  # short: the whole array is kept too
    tokens = len(result.tokens)
    assert kept_bytes(load_config(str(tiny_model_path("llama"))), tokens) == result.nbytes
