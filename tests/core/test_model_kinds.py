"""Causal language models and encoder-decoder models (beyond BERT)."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from core import (
    EmptyTextError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
    run_attention,
)
from core.attention import generate_with_attention, predict_next


@pytest.fixture(scope="module")
def gpt2_reference(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(path)


def test_causal_attention_is_lower_triangular_and_exact(loaded_tiny, gpt2_reference):
    text = "the cat sat on the mat"
    result = run_attention(loaded_tiny("gpt2"), text)
    model, tokenizer = gpt2_reference
    with torch.inference_mode():
        output = model(**tokenizer(text, return_tensors="pt"), output_attentions=True)
    expected = torch.stack([a[0] for a in output.attentions]).numpy()
    # Recomputed from the captured queries and keys: equal up to float32 rounding.
    np.testing.assert_allclose(result.attentions, expected, rtol=0, atol=1e-6)
    upper = np.triu(np.ones(result.attentions.shape[-2:], dtype=bool), k=1)
    assert (result.attentions[..., upper] == 0).all()
    assert result.is_causal("self")
    # Next-token predictions from the same pass match the model's own last-position logits.
    probabilities = output.logits[0, -1].softmax(-1)
    top = probabilities.topk(5)
    assert [p.token_id for p in result.next_token] == top.indices.tolist()
    np.testing.assert_allclose([p.score for p in result.next_token], top.values, atol=1e-6)
    assert predict_next(loaded_tiny("gpt2"), text) == result.next_token


def test_generation_records_what_each_new_token_read(loaded_tiny, gpt2_reference):
    model, tokenizer = gpt2_reference
    result = generate_with_attention(loaded_tiny("gpt2"), "the cat sat", max_new_tokens=4)
    prompt_length = len(tokenizer("the cat sat").input_ids)
    assert result.generated_from == prompt_length
    with torch.inference_mode():
        expected = model.generate(
            **tokenizer("the cat sat", return_tensors="pt"),
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    assert [t.token_id for t in result.tokens] == expected[0].tolist()
    n = len(result.tokens)
    assert result.attentions.shape[-2:] == (n, n)
    np.testing.assert_allclose(result.attentions[:, :, prompt_length:].sum(-1), 1.0, atol=1e-5)


def test_next_token_needs_a_causal_model(embedded):
    with pytest.raises(UnsupportedModelError, match="causal"):
        predict_next(embedded, "hello")
    with pytest.raises(UnsupportedModelError):
        generate_with_attention(embedded, "hello")


def test_generation_limits(loaded_tiny):
    with pytest.raises(PositionOutOfRangeError):
        generate_with_attention(loaded_tiny("gpt2"), "the cat", max_new_tokens=0)


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_encoder_decoder_returns_three_stacks_exactly(loaded_tiny, tiny_model_path, family):
    source, target = "the cat sat on the mat", "a dog ran home"
    result = run_attention(loaded_tiny(family), source, target_text=target)
    assert result.stacks == ("self", "decoder_self", "cross")
    assert not result.target_generated and result.target_text == target

    path = str(tiny_model_path(family))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager").eval()
    labels = tokenizer(text_target=target, return_tensors="pt").input_ids
    with torch.inference_mode():
        output = model(
            **tokenizer(source, return_tensors="pt"),
            decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels),
            output_attentions=True,
        )
    for name, expected in [
        ("self", output.encoder_attentions),
        ("decoder_self", output.decoder_attentions),
        ("cross", output.cross_attentions),
    ]:
        attentions, queries, keys = result.stack(name)
        # The self stack is recomputed from the capture: equal up to float32 rounding.
        expected_stack = torch.stack([a[0] for a in expected]).numpy()
        np.testing.assert_allclose(attentions, expected_stack, rtol=0, atol=1e-6)
        assert attentions.shape[-2:] == (len(queries), len(keys))
    _, target_tokens, source_tokens = result.stack("cross")
    assert len(target_tokens) == labels.shape[-1] and len(source_tokens) == len(result.tokens)
    assert result.is_causal("decoder_self") and not result.is_causal("cross")


@pytest.mark.parametrize("target", [None, "", "   "])
def test_missing_target_is_generated_and_said(loaded_tiny, target):
    result = run_attention(loaded_tiny("bart"), "the cat sat", target_text=target)
    assert result.target_generated
    assert result.decoder_attentions.shape[-1] == len(result.decoder_tokens) > 1


def test_long_target_is_truncated_and_reported(loaded_tiny):
    model = loaded_tiny("t5")
    with pytest.warns(TruncationWarning, match="target"):
        result = run_attention(model, "the cat", target_text="word " * (model.max_length + 20))
    assert result.dropped_target_tokens > 0
    assert len(result.decoder_tokens) == model.max_length


def test_unknown_stack(embedded):
    result = run_attention(embedded, "hello there")
    assert result.stacks == ("self",)
    with pytest.raises(PositionOutOfRangeError, match="decoder"):
        result.stack("decoder_self")


def test_empty_source_for_encoder_decoder(loaded_tiny):
    with pytest.raises(EmptyTextError):
        run_attention(loaded_tiny("bart"), "  ", target_text="x")
