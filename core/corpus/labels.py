"""Automatic head labels: each a documented rule on a head's mean statistics over the corpus."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.corpus.statistics import check_mode


@dataclass(frozen=True)
class LabelRule:
    """`label` applies when, for any of `conditions`, the sum of the head's corpus means of
    the statistics listed reaches the threshold."""

    label: str
    conditions: tuple[tuple[tuple[str, ...], float], ...]
    rule: str
    """The rule in words, for a table shown next to the labels."""

    def applies(self, means: dict[str, float]) -> bool:
        for statistics, threshold in self.conditions:
            total = sum(means.get(name, np.nan) for name in statistics)
            if np.isfinite(total) and total >= threshold:
                return True
        return False


# Thresholds: a share of 0.5 means the head puts most of its attention there on average, which
# is how Clark et al. single out positional heads; punctuation gets 0.3 because punctuation is
# a small fraction of tokens (uniform attention would give it about 0.1); "broad" needs 80 % of
# the entropy of uniform attention.
_SAME_WORD = LabelRule(
    "same word / duplicate token",
    ((("to_same_word",), 0.5), (("to_duplicate",), 0.5)),
    "to_same_word ≥ 0.5 (pieces of a split word attend mostly to the word's other pieces) or "
    "to_duplicate ≥ 0.5 (repeated tokens attend mostly to their other occurrences)",
)
_BROAD = LabelRule(
    "broad",
    ((("entropy_ratio",), 0.8),),
    "entropy_ratio ≥ 0.8: attention is spread at least 80 % as evenly as uniform attention",
)
_SELF = LabelRule("self", ((("to_self",), 0.5),), "to_self ≥ 0.5")
_PREVIOUS = LabelRule("previous-token", ((("to_previous",), 0.5),), "to_previous ≥ 0.5")
_NEXT = LabelRule("next-token", ((("to_next",), 0.5),), "to_next ≥ 0.5")

LABEL_RULES: dict[str, tuple[LabelRule, ...]] = {
    "default": (
        _PREVIOUS,
        _NEXT,
        LabelRule("[CLS]/[SEP] sink", ((("to_special",), 0.5),), "to_special ≥ 0.5"),
        _BROAD,
        _SELF,
        _SAME_WORD,
        LabelRule("punctuation", ((("to_punctuation",), 0.3),), "to_punctuation ≥ 0.3"),
    ),
    "clark": (
        LabelRule("previous-token", ((("to_previous",), 0.5),), "to_previous ≥ 0.5 (divided by n)"),
        LabelRule("next-token", ((("to_next",), 0.5),), "to_next ≥ 0.5 (divided by n)"),
        LabelRule("[CLS]/[SEP] sink", ((("to_cls", "to_sep"), 0.5),), "to_cls + to_sep ≥ 0.5"),
        _BROAD,
        _SELF,
        _SAME_WORD,
        LabelRule(
            "punctuation", ((("to_punctuation",), 0.3),), 'to_punctuation ≥ 0.3 ("." and ",")'
        ),
    ),
}


def label_rules(mode: str = "default") -> pd.DataFrame:
    """The rules as a table (`label`, `rule`) for a page to show next to the labels."""
    check_mode(mode)
    return pd.DataFrame([{"label": r.label, "rule": r.rule} for r in LABEL_RULES[mode]])


def head_labels(means: dict[str, float], mode: str = "default") -> list[str]:
    """Labels of one head from its corpus means (statistic -> mean), in rule order."""
    check_mode(mode)
    return [rule.label for rule in LABEL_RULES[mode] if rule.applies(means)]
