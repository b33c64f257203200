"""Head labels: each rule fires at its threshold and not below, in both modes."""

from __future__ import annotations

import numpy as np
import pytest

from core.corpus import LABEL_RULES, head_labels, label_rules, run_corpus
from core.errors import CorpusError
from tests.core.corpus.conftest import SENTENCES


@pytest.mark.parametrize("mode", ["default", "clark"])
def test_every_rule_fires_at_its_threshold_and_not_below(mode):
    for rule in LABEL_RULES[mode]:
        for statistics, threshold in rule.conditions:
            at = {name: threshold / len(statistics) for name in statistics}
            below = {name: (threshold - 1e-6) / len(statistics) for name in statistics}
            assert rule.label in head_labels(at, mode), (rule.label, statistics)
            assert rule.label not in head_labels(below, mode), (rule.label, statistics)


def test_missing_or_nan_statistics_give_no_label():
    assert head_labels({}, "default") == []
    assert head_labels({"to_previous": np.nan}, "default") == []


def test_rule_table_lists_every_label_with_its_rule():
    table = label_rules("default")
    assert list(table.columns) == ["label", "rule"]
    assert set(table["label"]) == {
        "previous-token",
        "next-token",
        "[CLS]/[SEP] sink",
        "broad",
        "self",
        "same word / duplicate token",
        "punctuation",
    }
    assert all("≥" in rule for rule in table["rule"])
    with pytest.raises(CorpusError):
        label_rules("bogus")


def test_head_table_labels_follow_the_rules(embedded, store):
    table = run_corpus(embedded, SENTENCES, store=store).head_table
    for row in table.to_dict("records"):
        assert row["labels"] == ", ".join(head_labels(row, "default"))
    # MiniLM has clear positional and sink heads even on a few sentences.
    labels = ", ".join(table["labels"])
    assert "previous-token" in labels and "[CLS]/[SEP] sink" in labels
