"""Explain a prediction: the logit lens, which method agrees with the model, the routes in."""

from ui import explain
from ui import page as pages

ABOUT = (
    "Pick the position whose prediction you want explained: a `[MASK]` of a masked LM, or a "
    "position of a causal LM (it predicts the next token). The **logit lens** shows what each "
    "layer would already predict there. **Which explanation agrees with the model?** leaves "
    "each input token out, measures how much the prediction's probability drops, and ranks "
    "every attribution method against those drops. The **contribution graph** draws the "
    "routes information takes from the input tokens through attention and feed-forward "
    "blocks into that position, as Ferrando & Voita (2024) build them (edges above the "
    "threshold)."
)


def render(page: pages.Page) -> None:
    if explain.no_prediction_notice(page):
        return
    position = explain.position_picker(page)
    explain.logit_lens_panel(page, position)
    explain.agreement_panel(page, position)
    explain.graph_panel(page, position)


pages.run("explain", render, title="Explain a prediction", about=ABOUT)
