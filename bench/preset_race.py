"""Many visitors loading every preset at once: does each one get the model it asked for?

Run by hand:  python bench/preset_race.py [--visitors 20] [--rounds 3]   (≈5 minutes, no network)

Issue 12, item 2: 12 visitors opening 6 presets at once on a cold server saw every masked-LM
preset come up "has no masked-word head", `roberta-base` refused as "163M parameters" and an
`ImportError` naming a server path, and the wrong model was then cached for everyone. The Hub
is unreachable here, so each preset is rebuilt from its published config with random weights
(`bench/preset_memory.py`: same shapes, same parameter counts) and laid out as an offline
Hugging Face cache under the preset's own name; the server loads them by name, exactly as from
the Hub.

Two checks, in one run:

1. **In process**, as the issue reproduced it without Streamlit: every preset loaded through
   `server.policy.load_model_for` under the public policy (which estimates parameters from the
   config first, the path that raced), from a thread pool, several rounds; each load's kind,
   layers, heads and parameter count must equal a serial load's.
2. **Through the app**: a fresh public-mode server and `--visitors` visitors (Streamlit's
   websocket protocol, as `bench/soak.py`) arriving at once, each opening the Masked page of
   one preset (round-robin over all presets) with a text holding a [MASK]. A masked-LM preset
   must draw its predictions and never say it has no masked-word head; the embedded encoder must
   say it; no visitor may see an error. Then `--rounds` − 1 more waves with the presets
   reassigned, so the two-model cache evicts and reloads under the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# huggingface_hub reads its cache directory once, when first imported: set it before anything
# imports it.
WORK = Path(tempfile.mkdtemp(prefix="atlas-presets-"))
os.environ["HF_HUB_CACHE"] = str(WORK / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from bench.preset_memory import PRESET_CONFIGS, build  # noqa: E402
from bench.soak import PAGES, RunFailed, Stats, Visitor, count_log_errors  # noqa: E402
from tests.e2e.harness import running_app  # noqa: E402

COMMIT = "0" * 40
NO_HEAD = "has no masked-word head"
TEXT = "The capital of France is [MASK], and its river is the Seine."


def offline_cache(root: Path) -> Path:
    """Random-weight copies of every preset, as a Hugging Face hub cache under their names."""
    builds = root / "builds"
    cache = root / "hub"
    for name in PRESET_CONFIGS:
        built = Path(build(name, builds))
        repo = cache / ("models--" + name.replace("/", "--"))
        shutil.copytree(built, repo / "snapshots" / COMMIT)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(COMMIT)
    return cache


def signature(model) -> tuple:
    return (model.kind.value, model.num_layers, model.num_heads, model.num_parameters)


def race_in_process(names: list[str], rounds: int, threads: int) -> tuple[dict, list]:
    """Serial signatures, and the concurrent loads that differ from them."""
    from server.policy import load_model_for
    from server.settings import policy_from_env

    policy = policy_from_env({"ATLAS_PUBLIC": "1"})

    def load(name: str) -> tuple:
        return signature(load_model_for(policy, name))

    serial = {name: load(name) for name in names}
    jobs = [name for _ in range(rounds) for name in names]
    random.Random(0).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        got = list(pool.map(load, jobs))
    wrong = [(n, g, serial[n]) for n, g in zip(jobs, got, strict=True) if g != serial[n]]
    return serial, wrong


class PresetVisitor(Visitor):
    """Opens the Masked page of one preset from a link, once, and checks what it shows."""

    def __init__(self, number: int, url: str, stats: Stats, preset: str, masked_lm: bool):
        super().__init__(number, url, stats, seed=number, actions=0)
        self.preset = preset
        self.masked_lm = masked_lm
        self.outcome = "not run"

    async def run(self, deadline: float) -> None:  # one session, one page
        await self.session(deadline)

    async def visit(self, ws, deadline: float) -> None:
        self.query = urllib.parse.urlencode({"model": self.preset, "text": TEXT})
        errors_before = len(self.stats.errors)
        await self.request(ws, "masked", page_name="masked")
        if len(self.stats.errors) > errors_before:
            self.outcome = "error"
            return
        said_no_head = any(NO_HEAD in note for note in self.notes)
        try:
            if self.masked_lm and said_no_head:
                raise RunFailed(f"{self.preset}: a masked-LM preset said it has no head")
            if not self.masked_lm and not said_no_head:
                raise RunFailed(f"{self.preset}: the encoder did not say it has no head")
        except RunFailed as error:
            self.stats.errors.append(str(error))
            self.outcome = "wrong kind"
            return
        self.outcome = "right"


async def wave(port: int, assignments: list[tuple[str, bool]], stats: Stats) -> list[str]:
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    visitors = [
        PresetVisitor(i, url, stats, preset, masked_lm)
        for i, (preset, masked_lm) in enumerate(assignments)
    ]
    deadline = time.monotonic() + 600
    await asyncio.gather(*(v.run(deadline) for v in visitors), return_exceptions=False)
    return [v.outcome for v in visitors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    import core

    print(
        f"Started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    try:
        cache = offline_cache(WORK)
        presets = [core.EMBEDDED_MODEL, *PRESET_CONFIGS]
        started = time.perf_counter()
        serial, wrong = race_in_process(presets, args.rounds, args.threads)
        print(
            f"\nIn process: {len(presets)} presets × {args.rounds} rounds from "
            f"{args.threads} threads, {time.perf_counter() - started:.0f} s; "
            f"loads differing from the serial load: {len(wrong)}"
        )
        for name, sig in serial.items():
            print(f"  {name}: {sig[0]}, {sig[1]} × {sig[2]}, {sig[3] / 1e6:.1f}M parameters")
        for item in wrong:
            print(f"  WRONG {item}")

        env = {"ATLAS_PUBLIC": "1", "HF_HUB_CACHE": str(cache)}
        kinds = {name: sig[0] == core.ModelKind.MASKED_LM.value for name, sig in serial.items()}
        with running_app(env=env) as app:
            stats = Stats()
            for round_ in range(args.rounds):
                shift = round_ * 3  # a different preset for each visitor in every wave
                assignments = [
                    (
                        presets[(i + shift) % len(presets)],
                        kinds[presets[(i + shift) % len(presets)]],
                    )
                    for i in range(args.visitors)
                ]
                began = time.perf_counter()
                outcomes = asyncio.run(wave(app.port, assignments, stats))
                counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
                print(
                    f"\nThrough the app, wave {round_ + 1}: {args.visitors} visitors at once "
                    f"over {len(presets)} presets, {time.perf_counter() - began:.0f} s: {counts}"
                )
            log_errors = count_log_errors(app)
        print(
            f"Errors seen by visitors: {len(stats.errors)}; server log lines with a traceback "
            f"or error: {log_errors}"
        )
        for error in stats.errors:
            print(f"  {error}")
        page_times = [t for page in PAGES for _, t in stats.times[page]]
        if page_times:
            print(
                f"Page times: median {sorted(page_times)[len(page_times) // 2]:.1f} s, "
                f"max {max(page_times):.1f} s"
            )
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"Finished, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
