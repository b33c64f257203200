"""The Corpus page's pure parts: ties among the examples, the head table's column names."""

from __future__ import annotations

from core.corpus import TOP_K, statistic_descriptions
from ui.corpus import PINNED_SHARE, all_rows_tie, head_table_config, tie_note, tie_order
from ui.layout import PAGE_PX


def test_ties_are_ordered_longest_sentence_first_and_the_rest_by_value():
    values = [1.0, 1.0, 0.9996, 0.9, 1.0]
    lengths = [5, 12, 30, 40, 12]
    # 0.9996 shows as 1.000: a tie too. Equal length: the earlier example first.
    assert tie_order(values, lengths) == [2, 1, 4, 0, 3]


def test_the_note_counts_the_ties_and_says_when_there_may_be_more():
    assert tie_note([0.9, 0.8], "to previous") == ""
    note = tie_note([1.0, 1.0, 1.0, 0.5], "to previous")
    assert note.startswith("3 sentences tie at to previous 1.000")
    assert "longest sentence first" in note
    full = tie_note([1.0] * TOP_K, "to previous")
    assert full.startswith(f"At least {TOP_K} sentences tie")


def test_a_perfect_share_means_every_row_ties():
    assert all_rows_tie("to_previous") and all_rows_tie("rest_to_sep")
    assert not all_rows_tie("entropy") and not all_rows_tie("entropy_ratio")


def test_every_interval_column_names_its_statistic():
    statistics = statistic_descriptions("default")
    config = head_table_config(statistics)
    for name in statistics:
        label = config[f"{name} ±"]["label"]
        assert label != "±" and label.startswith(name.replace("_", " "))
    assert config["layer"]["pinned"] and config["head"]["pinned"]


def test_the_pinned_columns_stay_pinned_in_a_1024_px_window():
    # Beyond PINNED_SHARE of the table's width Streamlit pins nothing: with the 270 px labels
    # pinned too, the table at 1024 px scrolled layer and head out of view.
    config = head_table_config(statistic_descriptions("default"))
    pinned = [column for column in config.values() if column.get("pinned")]
    assert sum(column["width"] for column in pinned) <= PINNED_SHARE * PAGE_PX
    assert config["labels"]["width"] >= 270  # three rule names, whole
