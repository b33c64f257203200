"""Attention explorer on canvases as a Streamlit component: ``from ui.explorer import explorer``."""

from ui.explorer.component import (
    change_in_callback,
    checked_change,
    compare_explorer,
    explorer,
)
from ui.explorer.payload import (
    MAX_TOKENS,
    build_long_payload,
    build_payload,
    decode_codes,
    decode_values,
    model_max,
    pack,
    unpack,
)

__all__ = [
    "MAX_TOKENS",
    "build_long_payload",
    "build_payload",
    "change_in_callback",
    "checked_change",
    "compare_explorer",
    "decode_codes",
    "decode_values",
    "explorer",
    "model_max",
    "pack",
    "unpack",
]
