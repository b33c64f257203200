"""Screenshots of the Attention page at 4,096 tokens, read in pieces (docs/long-inputs.md).

    python docs/make_long_screenshots.py
    # docs/screenshots/long_4096_<width>[_dark].png

A tiny random Llama-shaped checkpoint (2 layers, 4 query heads in 2 key-value groups, hidden
64, the tiny Llama tokenizer of `tests/tiny_models.py`) that accepts 4,200 positions is saved
to a temporary folder and opened by its path; the text is the start of the bundled Austen
corpus, cut to 4,096 tokens, opened as a view file from the sidebar (too long for a link). Its
weights are random: the shots show the page, not a model's behaviour. Same harness as the
end-to-end tests (`tests/e2e`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.harness import (  # noqa: E402
    block_external_requests,
    launch_browser,
    running_app,
    wait_for_explorer,
    wait_for_run,
)

OUT = REPO / "docs" / "screenshots"
TOKENS = 4096
POSITIONS = 4200
WIDTHS = (1024, 1440)
THEMES = ("light", "dark")
CORPUS = REPO / "core" / "corpus" / "data" / "austen.txt"
SELECTED = {"layer": 1, "head": 0, "token": 3000, "log_scale": True}
"""Log colour scale: a random model's weights fall off as 1/i, flat on a linear scale."""


def build_checkpoint(directory: Path) -> Path:
    """The tiny Llama with `POSITIONS` positions and hidden size 64, saved to `directory`."""
    import torch

    from tests.tiny_models import build_config, build_tokenizer, model_class

    tokenizer = build_tokenizer("llama")
    tokenizer.model_max_length = POSITIONS
    config = build_config("llama", tokenizer)
    config.max_position_embeddings = POSITIONS
    config.hidden_size, config.head_dim, config.intermediate_size = 64, 16, 128
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class("llama")(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def text_of(tokens: int, directory: Path) -> str:
    """The start of the Austen corpus, cut where the checkpoint reads `tokens` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    text = " ".join(CORPUS.read_text().split())
    ids = tokenizer(text, add_special_tokens=False).input_ids
    while len(ids) < tokens:
        text, ids = f"{text} {text}", ids + ids
    cut = tokenizer.decode(ids[: tokens - 1])  # the beginning-of-text token makes `tokens`
    return cut


def view_file_of(model: str, text: str) -> str:
    from ui.state import ViewState, to_view_file

    return to_view_file(ViewState(model=model, text=text, **SELECTED))


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="atlas-long-") as scratch:
        path = build_checkpoint(Path(scratch) / "tiny-llama-4k")
        view_file = Path(scratch) / "view.json"
        view_file.write_text(view_file_of(str(path), text_of(TOKENS, path)))
        for theme in THEMES:
            with (
                running_app(env={"STREAMLIT_THEME_BASE": theme}) as app,
                sync_playwright() as pw,
            ):
                browser = launch_browser(pw)
                for width in WIDTHS:
                    take(browser, app.url("/", model=path), view_file, width, theme)
                browser.close()


def take(browser, url: str, view_file: Path, width: int, theme: str) -> None:
    context = browser.new_context(viewport={"width": width, "height": 1100})
    block_external_requests(context)
    page = context.new_page()
    page.set_default_timeout(600_000)
    page.goto(url)
    wait_for_run(page, 600)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(view_file))
    page.get_by_text("Overview pooling").first.wait_for(timeout=600_000)
    wait_for_run(page, 600)
    wait_for_explorer(page, 600)
    page.wait_for_timeout(1500)
    # The explorer sizes itself to the window (a full-page shot would stretch it to the page):
    # the shot is the window, scrolled so the explorer's top is near the top of it.
    # Scrolled to the page's "Matrix" heading (the app's header then covers the heading only).
    page.get_by_role("heading", name="Matrix").first.evaluate(
        "el => el.scrollIntoView({block: 'start'})"
    )
    page.wait_for_timeout(800)
    target = OUT / f"long_{TOKENS}_{width}{'_dark' if theme == 'dark' else ''}.png"
    page.screenshot(path=str(target))
    context.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
