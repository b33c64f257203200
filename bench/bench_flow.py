"""Benchmark exact attention flow on real attention: today's solver against networkx.

Usage (from the repository root):

    python bench/bench_flow.py --json out.json   # the run quoted in bench/RESULTS.md
    python bench/bench_flow.py --quick           # a smoke run: short inputs, few layers

Inputs are real attention of real English text of five kinds (prose, a dialogue, a list,
code-like text, a sentence pair), from the embedded MiniLM (6 layers x 12 heads) and from a
randomly initialised BertModel with bert-base's shape (12 x 12, eager attention, built here:
no download) on the same text. Every layer index is timed where the section says so. The
previous benchmark's synthetic inputs (softmax of Gaussian logits, bert-base shape) are
timed too, since the solver must stay fast there.

Two solvers, in the same run:

* ours: ``core.flow.attention_flow``;
* networkx: the layered DiGraph built from the definition and ``nx.maximum_flow_value``
  per pair, on a sample of pairs (a full matrix at n = 128 would take hours); the table
  gives the worst difference on the sampled pairs.

The solver before issue 15, which earlier runs in bench/RESULTS.md also timed, is in git
(``bench/_flow_baseline.py`` up to commit 1a2c2bd).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import networkx as nx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.flow import FlowCancelled, attention_flow  # noqa: E402
from core.rollout import residual_attention  # noqa: E402

PROSE = (
    "The river had been rising for three days before anyone in the valley took it seriously. "
    "On the first morning the water only covered the lowest stones of the ford, and the "
    "children who crossed it on their way to school laughed at the cold. By the second "
    "evening the ford was gone, the footbridge near the mill was groaning under the weight of "
    "branches caught against its posts, and the miller's wife had moved the chickens to the "
    "loft. Still, the old men who gathered at the inn said that the river always rose in "
    "spring, that it had never once reached the square, and that the young engineer from the "
    "city, who kept measuring the banks and writing numbers in a small black book, was "
    "worrying about nothing. The engineer did not argue with them. He walked the length of "
    "the valley, from the gorge where the water entered to the narrow gap where it left, and "
    "he counted the places where a wall of debris could form. There were seven of them. At "
    "each one he talked to whoever lived nearest, explained what he had seen, and asked "
    "whether they had somewhere higher to go. Most of them listened politely and changed "
    "nothing. A few began, quietly, to carry their papers and photographs upstairs. "
)
DIALOGUE = (
    '"Are you coming to the meeting tonight?" asked Maria. "I don\'t think so," said Tom. '
    '"Why not? You said last week that you wanted to hear what the council has to say about '
    'the new bus route." "I did, but I have to finish the report for work, and it\'s already '
    'late." "Can\'t you finish it tomorrow morning?" "Not really. My manager wants it on her '
    'desk by nine, and I still have to check all the figures." "How many figures are there?" '
    '"Too many. Forty pages of tables, and half of them came from a spreadsheet that somebody '
    'sorted the wrong way." "Shall I take notes for you, then?" "Would you? That would be '
    'kind." "Of course. What do you want to know most?" "Whether the bus will still stop at '
    'the end of our street, and how often." "I\'ll ask them myself if nobody else does." '
)
LIST = (
    "Shopping list: 1. two loaves of brown bread; 2. a dozen eggs; 3. one litre of milk; 4. "
    "butter, unsalted; 5. three kinds of cheese (cheddar, goat, and something soft); 6. "
    "tomatoes, cucumbers, lettuce, and a red onion; 7. olive oil; 8. rice, pasta, and a tin of "
    "chickpeas; 9. apples, pears, bananas, and lemons; 10. coffee beans; 11. tea bags; 12. "
    "dish soap; 13. batteries, size AA. To do: call the plumber about the kitchen tap; return "
    "the library books (three, due Monday); pay the electricity bill; book the car in for its "
    "service; water the plants; send the photos to Grandma; fix the wobbly chair; sort the "
    "recycling; check the tyre pressure; renew the passport. Packing: passport, tickets, "
    "charger, adapter plug, sunglasses, hat, sunscreen, shorts, shirts, a jumper, sandals. "
)
CODE = (
    "def merge_sorted(left, right):\n    result = []\n    i, j = 0, 0\n"
    "    while i < len(left) and j < len(right):\n        if left[i] <= right[j]:\n"
    "            result.append(left[i])\n            i += 1\n        else:\n"
    "            result.append(right[j])\n            j += 1\n    result.extend(left[i:])\n"
    "    result.extend(right[j:])\n    return result\n\n\nclass Inventory:\n"
    "    def __init__(self):\n        self.counts = {}\n\n    def add(self, name, amount=1):\n"
    "        if amount < 0:\n            raise ValueError(f'amount must be positive: {amount}')\n"
    "        self.counts[name] = self.counts.get(name, 0) + amount\n\n"
    "config = {'retries': 3, 'timeout': 2.5, 'hosts': ['a.local', 'b.local']}\n"
)
PAIR = (
    "A man is playing a guitar on a small stage while a crowd listens in the rain, and several "
    "people near the front are singing along with every word of the chorus.",
    "Someone is performing music outdoors in bad weather for an audience that knows the song, "
    "although a few listeners have started to leave because they are getting wet.",
)
KINDS = ("prose", "dialogue", "list", "code", "pair")


def bert_like_attention(n: int, seed: int) -> np.ndarray:
    """The previous benchmark's input: random ``[12, 12, n, n]`` float32 attention.

    Softmax of Gaussian logits, each head with its own temperature (log-uniform in
    [0.5, 8]) so some heads are peaked and some flat; seeds as in that benchmark.
    """
    rng = np.random.default_rng(seed)
    temperature = np.exp(rng.uniform(np.log(0.5), np.log(8.0), size=(12, 12, 1, 1)))
    logits = rng.standard_normal((12, 12, n, n)) * temperature
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


class Attention:
    """Real attention ``[layers, heads, n, n]`` of each text kind at a given length."""

    def __init__(self) -> None:
        import torch
        from transformers import BertConfig, BertModel

        import core

        self.torch = torch
        loaded = core.load_model(core.EMBEDDED_MODEL)
        self.tokenizer, self.minilm = loaded.tokenizer, loaded.model
        torch.manual_seed(0)
        # bert-base's shape (12 layers x 12 heads, hidden 768), random weights, no download.
        config = BertConfig()
        config._attn_implementation = "eager"
        self.bert12 = BertModel(config, add_pooling_layer=False)
        self.bert12.eval()

    def encode(self, kind: str, n: int):
        """Token ids of exactly ``n`` tokens: the text is repeated until long enough."""
        if kind == "pair":
            first, second = PAIR
            reps = 1
            while True:
                enc = self.tokenizer(first * reps, second * reps, return_tensors="pt")
                if enc["input_ids"].shape[1] >= n or reps > 40:
                    break
                reps += 1
            enc = self.tokenizer(
                first * reps, second * reps, return_tensors="pt", truncation=True, max_length=n
            )
        else:
            text = {"prose": PROSE, "dialogue": DIALOGUE, "list": LIST, "code": CODE}[kind]
            enc = self.tokenizer(text * 12, return_tensors="pt", truncation=True, max_length=n)
        assert enc["input_ids"].shape[1] == n, (kind, n)
        return enc

    def __call__(self, kind: str, n: int, model: str = "minilm") -> np.ndarray:
        net = self.minilm if model == "minilm" else self.bert12
        with self.torch.inference_mode():
            out = net(**self.encode(kind, n), output_attentions=True)
        return self.torch.stack(out.attentions)[:, 0].float().numpy()


def networkx_pairs(att: np.ndarray, layer: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Unnormalised networkx max flows for ``pairs`` (source row, input token)."""
    mixed = residual_attention(att, n_layers=layer + 1)
    layers, n, _ = mixed.shape
    graph = nx.DiGraph()
    for level in range(1, layers + 1):
        for i in range(n):
            for j in range(n):
                graph.add_edge((level, i), (level - 1, j), capacity=float(mixed[level - 1, i, j]))
    return np.array([nx.maximum_flow_value(graph, (layers, i), (0, j)) for i, j in pairs])


def raw_ours(att: np.ndarray, layer: int, rows: list[int]) -> np.ndarray:
    """Unnormalised values of today's solver ``[len(rows), n]`` (for networkx checks)."""
    from core._maxflow import max_flows

    mixed = residual_attention(att, n_layers=layer + 1)
    return max_flows(mixed, np.array(rows), np.arange(att.shape[-1]))


CPU: list[float] = [0.0]


def wall(fn):
    """Wall seconds and the result; the process CPU seconds of the call go to ``CPU[0]``.

    On a shared machine CPU seconds say more than wall seconds: with the load average far
    above the 2 cores, a run gets a fraction of a core and wall time stretches with it.
    """
    began, cpu = time.perf_counter(), time.process_time()
    result = fn()
    CPU[0] = time.process_time() - cpu
    return time.perf_counter() - began, result


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


JSON_PATH: list[Path | None] = [None]


def save(results: dict) -> None:
    """Write the numbers so far, so that a run cut short still leaves them."""
    if JSON_PATH[0] is not None:
        JSON_PATH[0].write_text(json.dumps(results, indent=2))


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import numba
    import scipy

    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "networkx": nx.__version__,
        "loadavg_start": load(),
    }


def section_rows(att_of, results, n, kinds, model, layers, nx_pairs):
    """One row (the middle token) per kind and layer: ours vs a networkx sample."""
    print(f"\n## One row (middle token), n = {n}, {model}")
    print("| kind | layer | ours wall (s) | ours cpu (s) | networkx pairs "
          "| max diff vs networkx | load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        att = att_of(kind, n, model)
        row = n // 2
        for layer in layers:
            ours_s, _ = wall(lambda a=att, la=layer, r=row: attention_flow(a, layer=la, rows=[r]))
            ours_cpu = CPU[0]
            nx_diff = None
            if nx_pairs:
                sinks = np.linspace(0, n - 1, nx_pairs).astype(int).tolist()
                ref = networkx_pairs(att, layer, [(row, j) for j in sinks])
                nx_diff = float(np.abs(raw_ours(att, layer, [row])[0, sinks] - ref).max())
            results["rows"].append(
                dict(model=model, n=n, kind=kind, layer=layer, ours_s=ours_s, ours_cpu_s=ours_cpu,
                     networkx_pairs=nx_pairs, networkx_max_diff=nx_diff, load=load())
            )  # fmt: skip
            print(
                f"| {kind} | {layer} | {ours_s:.3f} | {ours_cpu:.3f} | {nx_pairs or '-'} | "
                + (f"{nx_diff:.1e}" if nx_diff is not None else "-")
                + f" | {load()} |",
                flush=True,
            )
            save(results)


def section_full(att_of, results, n, kinds, model, layers, nx_pairs):
    """Full n x n per kind and layer, with progress: seconds and the longest progress gap."""
    print(f"\n## Full n x n, n = {n}, {model}")
    print("| kind | layer | ours wall (s) | ours cpu (s) | progress calls | longest gap (s) "
          "| networkx pairs | max diff vs networkx | load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        att = att_of(kind, n, model)
        for layer in layers:
            calls = []

            def progress(done, total, calls=calls):
                calls.append(time.perf_counter())

            load_before = load()
            seconds, _ = wall(
                lambda a=att, la=layer, p=progress: attention_flow(a, layer=la, progress=p)
            )
            cpu = CPU[0]
            gaps = np.diff(calls) if len(calls) > 1 else np.zeros(1)
            nx_diff = None
            if nx_pairs:
                rng = np.random.default_rng(layer)
                pairs = [tuple(int(x) for x in rng.integers(0, n, 2)) for _ in range(nx_pairs)]
                ref = networkx_pairs(att, layer, pairs)
                raw = raw_ours(att, layer, sorted({i for i, _ in pairs}))
                where = {i: r for r, i in enumerate(sorted({i for i, _ in pairs}))}
                got = np.array([raw[where[i], j] for i, j in pairs])
                nx_diff = float(np.abs(got - ref).max())
            results["full"].append(
                dict(model=model, n=n, kind=kind, layer=layer, ours_s=seconds, ours_cpu_s=cpu,
                     progress_calls=len(calls), longest_gap_s=float(gaps.max()),
                     networkx_pairs=nx_pairs, networkx_max_diff=nx_diff,
                     load_before=load_before, load=load())
            )  # fmt: skip
            print(
                f"| {kind} | {layer} | {seconds:.2f} | {cpu:.2f} | {len(calls)} | "
                f"{gaps.max():.2f} | {nx_pairs or '-'} | "
                + (f"{nx_diff:.1e}" if nx_diff is not None else "-")
                + f" | {load()} |",
                flush=True,
            )  # fmt: skip
            save(results)


def section_synthetic(results, quick):
    """The previous benchmark's inputs, top layer (index 11): full n x n and one row."""
    print("\n## Synthetic (softmax of Gaussian logits, 12 x 12), top layer")
    print("| case | ours wall (s) | ours cpu (s) | networkx pairs | max diff vs networkx "
          "| load |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    cases = [("full", 32), ("full", 64)] if quick else [("full", 32), ("full", 64),
                                                          ("full", 128), ("row", 512)]  # fmt: skip
    for what, n in cases:
        att = bert_like_attention(n, seed=(1000 if what == "full" else 2000) + n)
        rows = list(range(n)) if what == "full" else [n // 2]
        ours_s, _ = wall(lambda a=att, r=rows: attention_flow(a, rows=r))
        ours_cpu = CPU[0]
        nx_pairs = 4 if n <= 64 else 0
        nx_diff = None
        if nx_pairs:
            pairs = [(rows[0], 0), (rows[-1], n - 1), (rows[len(rows) // 2], 1), (rows[0], n // 2)]
            ref = networkx_pairs(att, 11, pairs)
            raw = raw_ours(att, 11, rows)
            nx_diff = float(np.abs(np.array([raw[rows.index(i), j] for i, j in pairs]) - ref).max())
        results["synthetic"].append(
            dict(case=what, n=n, ours_s=ours_s, ours_cpu_s=ours_cpu, networkx_pairs=nx_pairs,
                 networkx_max_diff=nx_diff, load=load())
        )  # fmt: skip
        print(f"| {what} {n} | {ours_s:.3f} | {ours_cpu:.3f} | {nx_pairs or '-'} | "
              + (f"{nx_diff:.1e}" if nx_diff is not None else "-") + f" | {load()} |",
              flush=True)  # fmt: skip
        save(results)


def section_cancel(att_of, results, n, layer, after):
    """Stop: the progress callback returns False ``after`` seconds in; time until raised."""
    att = att_of("prose", n, "minilm")
    began = time.perf_counter()
    stop_asked = []

    def progress(done, total):
        if time.perf_counter() - began >= after:
            stop_asked.append(time.perf_counter())
            return False
        return True

    try:
        attention_flow(att, layer=layer, progress=progress)
        stopped = None
    except FlowCancelled:
        stopped = time.perf_counter()
    latency = None if stopped is None else stopped - stop_asked[0]
    results["cancel"] = dict(n=n, layer=layer, after_s=after, raise_latency_s=latency)
    print(f"\n## Stop: n = {n}, layer {layer}, Stop asked after {after} s: FlowCancelled "
          f"raised {latency:.3f} s after the callback returned False (load {load()})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--skip-256", action="store_true", help="leave out the 256 full run")
    parser.add_argument(
        "--targets",
        action="store_true",
        help="the issue's target cases only, at layers 2-5 (ours; no networkx)",
    )
    args = parser.parse_args()
    JSON_PATH[0] = args.json
    info = machine()
    print("## Machine")
    for key, val in info.items():
        print(f"- {key}: {val}")
    results: dict = {"machine": info, "rows": [], "full": [], "synthetic": [], "cancel": None}
    cache: dict = {}
    source = Attention()

    def att_of(kind, n, model="minilm"):
        if (kind, n, model) not in cache:
            cache[kind, n, model] = source(kind, n, model)
        return cache[kind, n, model]

    # A first call loads the compiled solver from numba's cache (or compiles it once after
    # an install or an edit: see bench/RESULTS.md for the cold figure).
    seconds, _ = wall(lambda: attention_flow(att_of("prose", 16), layer=3))
    print(f"\nfirst call (compile or load the solver): {seconds:.1f} s")
    results["first_call_s"] = seconds
    every = range(6)
    if args.targets:
        section_rows(att_of, results, 512, ("prose",), "minilm", (2, 3, 4, 5), 0)
        section_full(att_of, results, 128, KINDS, "minilm", (3, 4, 5), 0)
        section_full(att_of, results, 256, ("prose",), "minilm", (3, 4, 5), 0)
    elif args.quick:
        section_rows(att_of, results, 64, ("prose",), "minilm", every, 4)
        section_full(att_of, results, 32, ("prose", "code"), "minilm", every, 4)
        section_synthetic(results, quick=True)
        section_cancel(att_of, results, 64, 3, 0.3)
    else:
        # Ordered by the targets, so a run cut short still has the important numbers.
        section_rows(att_of, results, 512, ("prose",), "minilm", every, 0)
        section_full(att_of, results, 128, KINDS, "minilm", every, 2)
        section_synthetic(results, quick=False)
        section_rows(att_of, results, 128, KINDS, "minilm", every, 2)
        section_rows(att_of, results, 128, ("prose",), "bert12", (5, 11), 2)
        section_full(att_of, results, 128, ("prose",), "bert12", (11,), 0)
        section_rows(att_of, results, 512, ("prose",), "bert12", (11,), 0)
        section_full(att_of, results, 96, ("prose", "code"), "minilm", (3, 4, 5), 0)
        section_cancel(att_of, results, 256, 3, 2.0)
        if not args.skip_256:
            section_full(att_of, results, 256, ("prose",), "minilm", (2, 3, 4, 5), 0)
        section_rows(att_of, results, 512, ("prose",), "minilm", (2, 3, 4, 5), 0)
    results["machine"]["loadavg_end"] = load()
    print(f"\nload average at the end: {load()}")
    save(results)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
