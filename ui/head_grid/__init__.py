"""Every head of a model as one canvas of thumbnails: ``from ui.head_grid import head_grid``."""

from ui.head_grid.component import COMPONENT_NAME, head_grid, opened_head
from ui.head_grid.measures import LABELS, measure_label, measure_options
from ui.head_grid.payload import MEASURE_STOPS, atlas_png, build_payload

__all__ = [
    "COMPONENT_NAME",
    "LABELS",
    "MEASURE_STOPS",
    "atlas_png",
    "build_payload",
    "head_grid",
    "measure_label",
    "measure_options",
    "opened_head",
]
