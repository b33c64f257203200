"""The Explain page's agreement table as a visitor reads it: named columns, best first, and
which way is better.

`core.agreement_table` keeps its machine names (they are the exports' columns); here each is
renamed for people and explained in its header's help.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

SHOWN_COLUMNS = {
    "label": "Method",
    "spearman": "Rank agreement ρ ↑",
    "top_k_overlap": "Top-k overlap ↑",
    "k": "k",
    "attribution": "Attribution read",
    "tokens_compared": "Tokens compared",
}
"""`core.agreement.AGREEMENT_COLUMNS` as the table shows them (the internal ``method`` name is
left out: ``label`` names it)."""
COLUMN_HELP = {
    "Method": "The attribution method ranked against leave-one-out.",
    "Rank agreement ρ ↑": "Spearman's ρ between the method's token scores and how much leaving "
    "each token out lowers the prediction: from −1 (opposite order) to 1 (the same order); "
    "higher is better. Empty when either side gives every token the same value.",
    "Top-k overlap ↑": "Share of the k tokens whose removal hurts the prediction most that are "
    "also among the method's k highest: 0 to 1, higher is better.",
    "k": "How many tokens the top-k overlap compares.",
    "Attribution read": "Which of the method's rows was read as the attribution.",
    "Tokens compared": "Tokens left out in turn (special tokens are not).",
}
DIRECTION_NOTE = (
    "Higher is better in both scores (↑): ρ = 1 orders the tokens exactly as leaving them out "
    "does, an overlap of 1 finds the same k most important tokens. Best agreement first."
)


CONSTANT_COLUMNS = ("k", "Tokens compared")
"""Columns that hold one value for every method of a table: said once in the caption rather
than repeated down the rows (at 1024 px the table had no room left for "Tokens compared")."""


def readable_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (`core.agreement_table`) with the columns of `SHOWN_COLUMNS`, renamed, best
    rank agreement first (methods without a ρ last), index 0..n-1."""
    shown = table[list(SHOWN_COLUMNS)].rename(columns=SHOWN_COLUMNS)
    shown = shown.sort_values(
        ["Rank agreement ρ ↑", "Top-k overlap ↑"], ascending=False, na_position="last"
    )
    shown.attrs = {}  # the leave-one-out table rides in attrs, which the browser cannot take
    return shown.reset_index(drop=True)


def constant_columns(shown: pd.DataFrame) -> dict[str, object]:
    """The `CONSTANT_COLUMNS` of `shown` (`readable_agreement`) that hold one value, and it."""
    return {
        name: shown[name].iloc[0]
        for name in CONSTANT_COLUMNS
        if name in shown and len(shown) and shown[name].nunique(dropna=False) == 1
    }


def show_agreement(table: pd.DataFrame) -> None:
    """Draw `table` readable (`readable_agreement`), the columns that hold one value said in
    the caption, with the direction note."""
    shown = readable_agreement(table)
    constants = constant_columns(shown)
    shown = shown.drop(columns=list(constants))
    number = {"Rank agreement ρ ↑": "%.2f", "Top-k overlap ↑": "%.2f"}
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            name: (
                st.column_config.NumberColumn(name, help=COLUMN_HELP[name], format=number[name])
                if name in number
                else st.column_config.Column(name, help=COLUMN_HELP[name])
            )
            for name in shown.columns
        },
    )
    said = []
    if "k" in constants:
        said.append(f"Top-k overlap over k = {constants['k']} tokens")
    if "Tokens compared" in constants:
        said.append(f"{constants['Tokens compared']} tokens left out in turn")
    st.caption(" ".join([DIRECTION_NOTE, *(f"{part}." for part in said)]))
