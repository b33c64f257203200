"""Widths the pages draw for. Streamlit does not tell the server how wide the browser is, so
the charts are planned for the narrowest supported window (1024 px, `layout="wide"`, sidebar
open): a chart that fits there fits at every larger width, and side-by-side pairs stack
instead of clipping."""

COLUMN_PX = 272
"""One of two `st.columns` at a 1024 px window with the sidebar open (measured in Chromium:
the main area is about 560 px; 424 px with the sidebar closed, 632 px at 1440)."""
PAGE_PX = 560
"""The main area at a 1024 px window with the sidebar open."""

TABLE_ROW_PX = 35
"""Height of a row (and of the header) of `st.dataframe` (Streamlit's default row height)."""


def table_height(rows: int, most: int) -> int:
    """px of an `st.dataframe` showing `rows` rows and its header: every row, up to `most` px
    (then it scrolls); a fixed height left empty rows under a short table."""
    return min(int(most), TABLE_ROW_PX * (int(rows) + 1) + 3)
