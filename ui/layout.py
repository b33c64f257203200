"""Widths the pages draw for. Streamlit does not tell the server how wide the browser is, so
the charts are planned for the narrowest supported window (1024 px, `layout="wide"`): a chart
that fits there fits at every larger width, and side-by-side pairs stack instead of clipping."""

COLUMN_PX = 424
"""One of two `st.columns` at a 1024 px window (measured in Chromium; 632 px at 1440)."""
PAGE_PX = 864
"""The main area at a 1024 px window: two columns and the gap between them."""
