"""`core.retrieval_scores`: the teacher-forced needle inputs, and the copy rule against a
reference computed from each causal family's eager attention."""

from __future__ import annotations

import numpy as np
import pytest

from core import (
    ComputationCancelled,
    DenseStack,
    EmptyTextError,
    InputTooLongError,
    InvalidSelectionError,
    UnsupportedModelError,
    retrieval_scores,
)
from core.retrieval import copy_scores, cut_point
from tests.core.long_context_reference import eager_pass
from tests.tiny_models import CAUSAL_FAMILIES, MODERN_FAMILIES

CAUSAL = CAUSAL_FAMILIES + MODERN_FAMILIES
HAYSTACK = " ".join(
    f"Report {i} describes the {color} garden near the river."
    for i, color in enumerate(["green", "quiet", "old", "small", "bright"] * 4)
)
#: Longer than the tiny models' window of 8 tokens, so that late answer rows of Mistral and
#: Gemma's local layers see no key before the answer.
NEEDLE = "The secret word that opens the old garden gate is lantern."
#: Many needle tokens share the answer's ids, so that random heads copy now and then too.
REPEATED_NEEDLE = "lantern river lantern river " * 4
QUESTION = "What is the secret word?"
DEPTHS = (0.1, 0.5, 0.9)
TIE = 1e-7
"""Top-two weights closer than this may order differently in two float32 passes (the capture
and the eager pass differ by at most 5e-8 on these checkpoints, Gemma 2's soft-cap included)."""


def reference_scores(attentions: np.ndarray, ids: list[int], needle: range, answer: range):
    """`(scores [layers, heads], ties [layers, heads])` by Wu et al.'s rule on eager weights:
    per answer token, the argmax of row t − 1 over the keys before the answer; `ties` counts
    the answer tokens whose top two weights are within `TIE` (either order is right). A row
    that is 0 over all those keys (they are outside its sliding window) copies nothing."""
    layers, heads = attentions.shape[:2]
    scores = np.zeros((layers, heads))
    ties = np.zeros((layers, heads), dtype=int)
    for layer in range(layers):
        for head in range(heads):
            copied = 0
            for t in answer:
                row = attentions[layer, head, t - 1, : answer.start]
                if row.max() == 0:
                    continue
                best = int(np.argmax(row))
                copied += best in needle and ids[best] == ids[t]
                top_two = np.sort(row)[-2:]
                ties[layer, head] += top_two[1] - top_two[0] < TIE
            scores[layer, head] = copied / len(answer)
    return scores, ties


@pytest.fixture(scope="module")
def scored(loaded_tiny):
    cache = {}

    def get(family: str, needle: str = NEEDLE):
        if (family, needle) not in cache:
            model = loaded_tiny(family)
            cache[family, needle] = retrieval_scores(model, HAYSTACK, needle, QUESTION, DEPTHS)
        return cache[family, needle]

    return get


@pytest.mark.parametrize("family", CAUSAL)
def test_inputs_are_haystack_needle_rest_question_and_the_needle_as_answer(
    scored, loaded_tiny, family
):
    model = loaded_tiny(family)
    scores = scored(family)
    inputs = scores.attrs["inputs"]
    assert [entry["depth"] for entry in inputs] == list(DEPTHS)
    decode = model.tokenizer.decode
    for entry in inputs:
        ids = entry["input_ids"]
        assert all(isinstance(i, int) for i in ids)
        needle, answer = range(*entry["needle"]), range(*entry["answer"])
        assert answer.stop == len(ids) and needle.stop <= answer.start
        assert ids[answer.start : answer.stop] == ids[needle.start : needle.stop]
        assert decode(ids[needle.start : needle.stop]).strip() == NEEDLE
        rest = decode(ids[needle.stop : answer.start]).strip()
        assert rest.endswith(QUESTION)
        before = decode(ids[: needle.start], skip_special_tokens=True).strip()
        # Cut at a sentence end, near the asked share of the haystack.
        assert HAYSTACK.startswith(before) and (before == "" or before.endswith("."))
        assert before + " " + rest.removesuffix(QUESTION).strip() == HAYSTACK
        share = entry["haystack_before"] / entry["haystack_tokens"]
        assert abs(share - entry["depth"]) < 0.06  # a sentence is about 5% of this haystack
        assert 0 < entry["answer_probability"] <= 1


@pytest.mark.parametrize("needle", [NEEDLE, REPEATED_NEEDLE], ids=["needle", "repeated"])
@pytest.mark.parametrize("family", CAUSAL)
def test_scores_and_answer_probability_equal_the_eager_reference(
    scored, loaded_tiny, tiny_model_path, family, needle
):
    model = loaded_tiny(family)
    scores = scored(family, needle)
    assert list(scores.columns) == ["layer", "head", "depth", "score"]
    assert len(scores) == len(DEPTHS) * model.num_layers * model.num_heads
    for entry in scores.attrs["inputs"]:
        ids = entry["input_ids"]
        needle, answer = range(*entry["needle"]), range(*entry["answer"])
        attentions, logits = eager_pass(tiny_model_path(family), family, ids)
        expected, ties = reference_scores(attentions, ids, needle, answer)
        got = (
            scores[scores["depth"] == entry["depth"]]
            .pivot(index="layer", columns="head", values="score")
            .to_numpy()
        )
        # Equal, except that a tie within float32 noise may go either way in each pass.
        assert (np.abs(got - expected) <= ties / len(answer) + 1e-12).all()
        assert ties.sum() <= 0.05 * ties.size * len(answer)  # so the test can fail
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        expected_logprob = np.mean([log_probs[t - 1, ids[t]] for t in answer])
        assert entry["answer_logprob"] == pytest.approx(expected_logprob, abs=1e-5)
        assert entry["answer_probability"] == pytest.approx(np.exp(expected_logprob), rel=1e-5)


def test_the_copy_rule_on_hand_built_rows():
    # Tokens: 0 1 [needle 7 8 9] 7 2 | answer 7 8 9; keys before the answer are 0..6.
    ids = [0, 1, 7, 8, 9, 7, 2, 7, 8, 9]
    needle, answer = range(2, 5), range(7, 10)
    n = len(ids)
    attentions = np.full((1, 4, n, n), 0.01)
    for t in answer:
        row = t - 1
        attentions[0, 0, row, needle.start + (t - answer.start)] = 0.9  # copies every token
        attentions[0, 1, row, 5] = 0.9  # the right id, but outside the needle
        attentions[0, 2, row, 4] = 0.9  # inside the needle, the right id only for the last
        attentions[0, 3, row, t - 1] = 0.9  # its own position: the answer is not a key
    attentions[0, 3, answer.start - 1, 2] = 0.95  # … except the first row, which copies
    scores = copy_scores(DenseStack(attentions), ids, needle, answer)
    np.testing.assert_allclose(scores, [[1.0, 0.0, 1 / 3, 1 / 3]])


def test_cut_point_prefers_sentence_ends_and_falls_back_to_spaces():
    text = "One two. Three four five six. Seven."
    assert cut_point(text, 0.0) == 0 and cut_point(text, 1.0) == len(text)
    assert text[: cut_point(text, 0.3)] == "One two. "
    assert text[: cut_point(text, 0.7)] == "One two. Three four five six. "
    words = "one two three four"
    assert words[: cut_point(words, 0.5)] == "one two "


def test_progress_is_reported_and_stops_when_asked(loaded_tiny):
    model = loaded_tiny("llama")
    calls = []
    retrieval_scores(
        model, HAYSTACK, NEEDLE, QUESTION, (0.5,), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(0, 2), (1, 2), (2, 2)]
    with pytest.raises(ComputationCancelled):
        retrieval_scores(model, HAYSTACK, NEEDLE, QUESTION, progress=lambda d, t: d < 1)
    asked = []
    with pytest.raises(ComputationCancelled, match="stopped"):
        retrieval_scores(
            model, HAYSTACK, NEEDLE, QUESTION, cancel=lambda: asked.append(1) or len(asked) > 2
        )
    assert len(asked) == 3


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"needle": "  "}, EmptyTextError),
        ({"haystack": ""}, EmptyTextError),
        ({"question": None}, EmptyTextError),
        ({"depths": ()}, InvalidSelectionError),
        ({"depths": (0.5, 1.5)}, InvalidSelectionError),
        ({"depths": ("deep",)}, InvalidSelectionError),
        ({"depths": (float("nan"),)}, InvalidSelectionError),
        ({"haystack": HAYSTACK * 10}, InputTooLongError),
    ],
)
def test_bad_inputs_are_refused(loaded_tiny, arguments, error):
    given = {"haystack": HAYSTACK, "needle": NEEDLE, "question": QUESTION, **arguments}
    with pytest.raises(error):
        retrieval_scores(loaded_tiny("gpt2"), **given)


def test_a_model_without_a_causal_head_is_refused(loaded_tiny):
    with pytest.raises(UnsupportedModelError, match="causal"):
        retrieval_scores(loaded_tiny("bert"), HAYSTACK, NEEDLE, QUESTION)


@pytest.mark.parametrize("family", ["gpt2", "gemma2"])
def test_only_the_answer_rows_are_unembedded(loaded_tiny, monkeypatch, family):
    """The logits of the answer's rows only (never `[n, vocab]`), with the same probability as
    the whole logits give (Gemma 2's soft-cap included)."""
    import core.retrieval as retrieval

    model = loaded_tiny(family)
    shapes = []
    real_forward = retrieval.forward

    def recording(*args, **kwargs):
        output = real_forward(*args, **kwargs)
        shapes.append(tuple(output.logits.shape))
        return output

    monkeypatch.setattr(retrieval, "forward", recording)
    trimmed = retrieval_scores(model, HAYSTACK, NEEDLE, QUESTION, (0.5,))
    entry = trimmed.attrs["inputs"][0]
    answer = entry["answer"][1] - entry["answer"][0]
    assert shapes == [(answer, model.model.config.vocab_size)]
    # Without `logits_to_keep` (a network that lacks it) the pass computes every row's logits
    # and keeps the answer's: the same log-probability and scores.
    import core.inference as inference

    monkeypatch.setattr(inference, "_logit_options", lambda model, positions: {})
    whole = retrieval_scores(model, HAYSTACK, NEEDLE, QUESTION, (0.5,))
    assert shapes[1] == (answer, model.model.config.vocab_size)
    assert entry["answer_logprob"] == pytest.approx(
        whole.attrs["inputs"][0]["answer_logprob"], abs=1e-6
    )
    assert trimmed["score"].tolist() == whole["score"].tolist()
