"""Corpus statistics equal the per-sentence ones, in both conventions, through padded batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import head_statistics, run_attention, sink_profile
from core.corpus import process_batch, run_corpus, statistic_descriptions
from core.corpus.statistics import batch_values, token_batch
from core.head_stats import STAT_DESCRIPTIONS
from core.inference import encode, forward
from core.tokens import Token
from tests.core.corpus.conftest import SENTENCES


def _mean_head_statistics(model, sentences) -> pd.DataFrame:
    """Mean over sentences of `head_statistics` on each sentence run alone (the self-attention
    `run_attention` shows; for an encoder-decoder, its encoder, without generating a target)."""
    frames = []
    for sentence in sentences:
        encoded = encode(model, sentence)
        frames.append(head_statistics(forward(model, encoded.inputs).attentions, encoded.tokens))
    return pd.concat(frames).groupby(["layer", "head"]).mean().reset_index()


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2", "t5", "mistral", "gemma2"])
def test_default_means_equal_mean_of_head_statistics(loaded_tiny, store, family):
    model = loaded_tiny(family)
    result = run_corpus(model, SENTENCES, store=store, batch_size=4)
    expected = _mean_head_statistics(model, SENTENCES)
    table = result.head_table
    assert result.finished and result.done == len(SENTENCES)
    for name in STAT_DESCRIPTIONS:
        np.testing.assert_allclose(table[name], expected[name], rtol=0, atol=1e-5, err_msg=name)
        assert (table[f"{name}_n"] == len(SENTENCES)).all()


def test_default_means_on_minilm_with_padding(embedded, store):
    result = run_corpus(embedded, SENTENCES, store=store, batch_size=5)
    expected = _mean_head_statistics(embedded, SENTENCES)
    for name in STAT_DESCRIPTIONS:
        np.testing.assert_allclose(
            result.head_table[name], expected[name], rtol=0, atol=1e-5, err_msg=name
        )


def test_interval_is_the_t_interval_of_per_sentence_values(loaded_tiny, store):
    model = loaded_tiny("bert")
    result = run_corpus(model, SENTENCES, store=store, batch_size=3)
    per_sentence = [
        head_statistics(r.attentions, r.tokens).set_index(["layer", "head"])["to_self"]
        for r in (run_attention(model, s) for s in SENTENCES)
    ]
    values = np.stack([v.to_numpy() for v in per_sentence])  # [sentences, heads]
    n = len(SENTENCES)
    from scipy import stats

    half = stats.t.ppf(0.975, n - 1) * values.std(0, ddof=1) / np.sqrt(n)
    table = result.head_table
    np.testing.assert_allclose(table["to_self_low"], values.mean(0) - half, atol=1e-5)
    np.testing.assert_allclose(table["to_self_high"], values.mean(0) + half, atol=1e-5)


SINK_MEASURES = ("first_token_share", "is_sink", "local_share", "entropy_without_first")


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "mistral", "t5"])
@pytest.mark.parametrize("mode", ["default", "clark"])
def test_sink_measures_of_each_sentence_equal_its_sink_profile(loaded_tiny, family, mode):
    model = loaded_tiny(family)
    names = list(statistic_descriptions(mode))
    assert set(SINK_MEASURES) <= set(names)
    values, pairs = process_batch(model, SENTENCES, 64, mode)  # one padded batch
    for index, sentence in enumerate(SENTENCES):
        profile = sink_profile(run_attention(model, sentence, target_text="Yes."))
        for measure in SINK_MEASURES:
            got = values[index, ..., names.index(measure)].ravel()
            expected = profile[measure].to_numpy(dtype=float)
            if measure == "is_sink":  # a share within rounding of ε may fall either side
                clear = np.abs(profile["first_token_share"].to_numpy() - 0.3) > 1e-5
                np.testing.assert_array_equal(got[clear], expected[clear])
            else:
                np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=measure)
        # The first-token share's strongest pair always points at the first token.
        first = pairs[index, ..., names.index("first_token_share"), :]
        assert (first[..., 1] == 0).all() and (first[..., 0] >= 0).all()


def test_a_heads_sink_behaviour_across_the_corpus_is_one_row_of_the_head_table(loaded_tiny, store):
    model = loaded_tiny("llama")
    result = run_corpus(model, SENTENCES, store=store, batch_size=4)
    profiles = [sink_profile(run_attention(model, sentence)) for sentence in SENTENCES]
    shares = np.stack([p["first_token_share"].to_numpy() for p in profiles])
    sinks = np.stack([p["is_sink"].to_numpy(dtype=float) for p in profiles])
    row = result.head_table.set_index(["layer", "head"]).loc[(1, 2)]
    assert row["first_token_share"] == pytest.approx(shares[:, 6].mean(), abs=1e-5)
    assert row["first_token_share_low"] < row["first_token_share"] < row["first_token_share_high"]
    assert row["is_sink"] == pytest.approx(sinks[:, 6].mean())  # the share of sentences
    assert row["is_sink_n"] == len(SENTENCES)
    np.testing.assert_allclose(result.head_table["local_share"], 1.0, atol=1e-5)  # ≤ 64 tokens
    assert result.statistics["is_sink"].startswith("1 where")


# --------------------------------------------------------------------------------------------
# Clark et al.'s definitions, written out as in their General_Analysis notebook.
# --------------------------------------------------------------------------------------------


def clark_reference(tokens: list[str], attns: np.ndarray, two_sep_denominators: bool = True):
    """Clark et al.'s per-document averages for `attns` `[layers, heads, n, n]`.

    Their notebook divides [SEP]->[SEP] by 2 and rest->[SEP] by n - 2 (their inputs always have
    two [SEP]); `two_sep_denominators=False` uses the number of [SEP] and of other tokens.
    """
    n = attns.shape[-1]
    seps = np.array([t == "[SEP]" for t in tokens], dtype=float)
    clss = np.array([t == "[CLS]" for t in tokens], dtype=float)
    puncts = np.array([t in (".", ",") for t in tokens], dtype=float)
    sep_seps = np.ones((n, n)) * seps[np.newaxis] * seps[:, np.newaxis]
    rest_seps = np.ones((n, n)) * (1 - seps)[:, np.newaxis] * seps[np.newaxis]
    selectors = {
        "self": np.eye(n, n),
        "right": np.eye(n, n, 1),
        "left": np.eye(n, n, -1),
        "sep": np.tile(seps[np.newaxis], [n, 1]),
        "sep_sep": sep_seps,
        "rest_sep": rest_seps,
        "cls": np.tile(clss[np.newaxis], [n, 1]),
        "punct": np.tile(puncts[np.newaxis], [n, 1]),
    }
    out = {}
    for key, selector in selectors.items():
        if key == "sep_sep":
            denominator = 2 if two_sep_denominators else seps.sum()
        elif key == "rest_sep":
            denominator = n - 2 if two_sep_denominators else n - seps.sum()
        else:
            denominator = n
        out[key] = (attns * selector[np.newaxis, np.newaxis]).sum(-1).sum(-1) / denominator
    smoothed = 0.9999 * attns + (0.0001 / n)
    out["entropy"] = -(smoothed * np.log(smoothed)).sum(-1).mean(-1)
    out["entropy_cls"] = -(smoothed * np.log(smoothed))[:, :, 0].sum(-1)
    return out


CLARK_NAMES = {
    "self": "to_self",
    "right": "to_next",
    "left": "to_previous",
    "sep": "to_sep",
    "sep_sep": "sep_to_sep",
    "rest_sep": "rest_to_sep",
    "cls": "to_cls",
    "punct": "to_punctuation",
    "entropy": "entropy",
    "entropy_cls": "cls_entropy",
}


def _clark_batch(model, encoded_list):
    return token_batch(
        [e.tokens for e in encoded_list],
        cls_token=model.tokenizer.cls_token,
        sep_token=model.tokenizer.sep_token,
    )


def test_clark_mode_equals_their_notebook_on_segment_pairs(embedded):
    # Their inputs: "[CLS] segment [SEP] segment [SEP]", so their divisors 2 and n - 2 hold.
    encoded = encode(embedded, "The cat sat on the mat, quietly.", "It was warm. Birds sang.")
    attentions = forward(embedded, encoded.inputs).attentions  # [L, H, n, n]
    values, _ = batch_values(
        [a[None] for a in attentions], _clark_batch(embedded, [encoded]), "clark"
    )
    names = list(statistic_descriptions("clark"))
    reference = clark_reference([t.raw for t in encoded.tokens], attentions.astype(np.float64))
    for theirs, ours in CLARK_NAMES.items():
        np.testing.assert_allclose(
            values[0, :, :, names.index(ours)], reference[theirs], atol=1e-6, err_msg=ours
        )


def test_clark_run_equals_reference_mean_over_single_sentences(embedded, store):
    result = run_corpus(embedded, SENTENCES, store=store, batch_size=4, mode="clark")
    references = []
    for sentence in SENTENCES:
        r = run_attention(embedded, sentence)
        references.append(
            clark_reference([t.raw for t in r.tokens], r.attentions.astype(np.float64), False)
        )
    table = result.head_table
    for theirs, ours in CLARK_NAMES.items():
        expected = np.mean([ref[theirs] for ref in references], axis=0).ravel()
        np.testing.assert_allclose(table[ours], expected, atol=1e-5, err_msg=ours)


# --------------------------------------------------------------------------------------------
# Hand-made attention: values and strongest pairs are exact.
# --------------------------------------------------------------------------------------------


def _tokens(texts, special=(), words=None):
    words = words or list(range(len(texts)))
    return [
        Token(
            text=t,
            index=i,
            word_index=None if i in special else words[i],
            is_special=i in special,
            raw=t,
            token_id=hash(t) % 1000,
        )
        for i, t in enumerate(texts)
    ]


def test_hand_made_heads_give_exact_values_and_pairs():
    tokens = _tokens(
        ["[CLS]", "to", "##ken", ",", "to", "[SEP]"], special={0, 5}, words=[0, 1, 1, 2, 3, 4]
    )
    n = len(tokens)
    previous = np.zeros((n, n))
    previous[0, 0] = 1
    for i in range(1, n):
        previous[i, i - 1] = 1
    uniform = np.full((n, n), 1 / n)
    sink = np.zeros((n, n))
    sink[:, 0] = 0.75
    sink[:, 3] = 0.25
    layer = np.stack([previous, uniform, sink])[None].astype(np.float32)  # [B=1, H, n, n]
    batch = token_batch([tokens], cls_token="[CLS]", sep_token="[SEP]")
    values, pairs = batch_values([layer], batch, "default")
    names = list(statistic_descriptions("default"))
    v = {name: values[0, 0, :, i] for i, name in enumerate(names)}
    p = {name: pairs[0, 0, :, i] for i, name in enumerate(names)}
    assert v["to_previous"][0] == pytest.approx(1.0)
    assert v["entropy"][0] == pytest.approx(0.0)
    assert v["entropy_ratio"][1] == pytest.approx(1.0)
    assert v["to_special"][2] == pytest.approx(0.75)
    assert v["to_punctuation"][2] == pytest.approx(0.25)
    # "##ken" (2) attends to "to" (1), its word's other piece; content rows 1-4 of which the
    # split word's pieces 1 and 2 count: row 1 puts 0 on 2, row 2 puts 1 on 1.
    assert v["to_same_word"][0] == pytest.approx(0.5)
    assert tuple(p["to_same_word"][0]) == (2, 1)
    # "to" at 1 and 4 are duplicates: row 4 puts its weight on 3 (","), row 1 on 0.
    assert v["to_duplicate"][0] == pytest.approx(0.0)
    q, k = p["to_previous"][0]
    assert k == q - 1 and 1 <= q <= 4
    assert tuple(p["to_special"][2])[1] == 0
    assert tuple(p["to_punctuation"][2])[1] == 3


def test_entropy_ratios_divide_by_what_a_windowed_row_sees():
    """A causal row attending uniformly to the `window` keys it sees has ratio 1 only when the
    statistics know the layer's window (as its architecture adapter says)."""
    words = ["[CLS]", "a", "b", "c", "d", "e"]
    tokens = _tokens(words, special={0}, words=list(range(len(words))))
    n, window = len(tokens), 2
    weights = np.zeros((n, n))
    for i in range(n):
        seen = range(max(0, i - window + 1), i + 1)
        weights[i, list(seen)] = 1 / len(seen)
    layer = weights[None, None].astype(np.float32)  # [B=1, H=1, n, n]
    batch = token_batch([tokens], cls_token="[CLS]", sep_token=None, causal=True)
    index = list(statistic_descriptions("default")).index("entropy_ratio")
    windowed, _ = batch_values([layer.copy()], batch, "default", windows=[window])
    unaware, _ = batch_values([layer.copy()], batch, "default")
    assert windowed[0, 0, 0, index] == pytest.approx(1.0)
    assert unaware[0, 0, 0, index] < 0.9
