import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from core import EmptyTextError, TruncationWarning, run_attention

FAMILIES = ("bert", "roberta", "distilbert", "albert", "bert-encoder", "gpt2")


@pytest.mark.parametrize("family", FAMILIES)
def test_attentions_equal_the_models_own_output(loaded_tiny, tiny_model_path, family):
    text = "The quick brown fox jumps over the lazy dog near the riverbank."
    result = run_attention(loaded_tiny(family), text)

    # An independent load and forward pass, straight from transformers.
    path = str(tiny_model_path(family))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with torch.inference_mode():
        expected = model(**tokenizer(text, return_tensors="pt"), output_attentions=True)
    expected = torch.stack([a[0] for a in expected.attentions]).numpy()

    assert result.attentions.dtype == np.float32
    assert result.attentions.shape == expected.shape
    # Recomputed from the captured queries, keys and normalisers: equal up to float32 rounding.
    np.testing.assert_allclose(result.attentions, expected, rtol=0, atol=1e-6)


def test_embedded_rows_sum_to_one(embedded):
    result = run_attention(embedded, "Attention is all you need, or so they say.", "Is it?")
    layers, heads, n, m = result.attentions.shape
    assert (layers, heads) == (6, 12) and n == m == len(result.tokens)
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=1e-5)
    assert (result.attentions >= 0).all()


def test_sentence_pair_records_segment_b(embedded):
    result = run_attention(embedded, "The cat sat.", "It purred.")
    labels = result.labels
    assert labels[result.segment_b_start] == "it"
    assert labels[result.segment_b_start - 1] == "[SEP]"
    assert all(t.segment == 1 for t in result.tokens[result.segment_b_start : -1])
    # Word numbering continues across the pair.
    words = [t.word_index for t in result.tokens if t.word_index is not None]
    assert words == sorted(words) and len(set(words)) == 7  # the cat sat . it purred .


def test_single_sentence_has_no_segment_b(embedded):
    assert run_attention(embedded, "Hello there").segment_b_start is None


def test_blank_pair_is_ignored(embedded):
    assert run_attention(embedded, "Hello there", "   ").text_pair is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01\x02"])
def test_empty_text_is_refused(embedded, text):
    with pytest.raises(EmptyTextError):
        run_attention(embedded, text)


def test_long_text_is_truncated_and_reported(embedded):
    text = "word " * 600
    with pytest.warns(TruncationWarning, match="90 tokens were dropped"):
        result = run_attention(embedded, text)
    assert result.attentions.shape[-1] == 512
    assert result.dropped_tokens == 602 - 512
    assert result.truncated
    assert result.labels[-1] == "[SEP]"


def test_long_pair_is_truncated_and_reported(embedded):
    with pytest.warns(TruncationWarning):
        result = run_attention(embedded, "alpha " * 400, "beta " * 400)
    assert result.attentions.shape[-1] == 512
    assert result.dropped_tokens == 803 - 512
    assert result.segment_b_start is not None


def test_short_text_is_not_truncated(embedded):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_attention(embedded, "Short text.")
    assert result.dropped_tokens == 0 and not result.truncated


def test_running_twice_gives_identical_results_and_leaves_model_untouched(embedded):
    before = {k: v.clone() for k, v in embedded.model.state_dict().items()}
    first = run_attention(embedded, "Same text twice.")
    second = run_attention(embedded, "Same text twice.")
    np.testing.assert_array_equal(first.attentions, second.attentions)
    after = embedded.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not embedded.model.training
