"""Widths and heights the pages draw for (`ui.layout`)."""

from ui.layout import TABLE_ROW_PX, table_height


def test_a_table_is_as_tall_as_its_rows_up_to_its_most():
    assert table_height(8, most=520) == TABLE_ROW_PX * 9 + 3  # header and 8 rows, no empty rows
    assert table_height(72, most=520) == 520  # longer tables scroll
    assert table_height(0, most=520) == TABLE_ROW_PX + 3
