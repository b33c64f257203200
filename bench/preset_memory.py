"""Memory each preset model needs in the app: resident size once loaded, and per cached result.

Run by hand:  python bench/preset_memory.py   (≈1 minute, no network)

The Hub is unreachable here, so each preset's architecture is rebuilt from its published config
with random weights (same shapes, hence the same memory), saved as safetensors and loaded through
`core.load_model` like the real checkpoint; the embedded model is the real one. Each model is
measured in a fresh Python process so the numbers do not mix:

* base RSS: the process after importing torch, transformers and core;
* + model: RSS growth from loading the model and reading all its weights once;
* + 256 / + 512 tokens: RSS growth (peak) from one `run_attention` of that many tokens;
* cache entry: pickled size of that `AttentionResult`, which is what st.cache_data stores.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `core` is the repo's package
TEXT_WORD = "the cat sat on the mat because it was tired "

# Published configs of the presets (only the fields that differ from the defaults).
PRESET_CONFIGS: dict[str, tuple[str, dict]] = {
    "bert-base-uncased": ("BertConfig", {"architectures": ["BertForMaskedLM"]}),
    "roberta-base": (
        "RobertaConfig",
        {
            "vocab_size": 50265,
            "max_position_embeddings": 514,
            "type_vocab_size": 1,
            "layer_norm_eps": 1e-5,
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "architectures": ["RobertaForMaskedLM"],
        },
    ),
    "distilbert-base-uncased": ("DistilBertConfig", {"architectures": ["DistilBertForMaskedLM"]}),
    "albert-base-v2": (
        "AlbertConfig",
        {
            "vocab_size": 30000,
            "embedding_size": 128,
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "architectures": ["AlbertForMaskedLM"],
        },
    ),
    "huawei-noah/TinyBERT_General_4L_312D": (
        "BertConfig",
        {
            "hidden_size": 312,
            "num_hidden_layers": 4,
            "num_attention_heads": 12,
            "intermediate_size": 1200,
            "architectures": ["BertForMaskedLM"],
        },
    ),
    "EdwinXhen/TinyBert_6Layer_MLM": (
        "BertConfig",
        {"num_hidden_layers": 6, "architectures": ["BertForMaskedLM"]},
    ),
}


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure(name: str, directory: str) -> dict:
    """In this (fresh) process: load `directory` and run attention at 256 and 512 tokens."""
    import warnings

    import torch

    torch.set_num_threads(1)
    import core

    warnings.simplefilter("ignore")
    base, _ = rss_mb()
    model = core.load_model(directory)
    # safetensors are memory-mapped: weights become resident when a forward pass first reads
    # them, so a short text is run before the model's size is taken.
    core.run_attention(model, "warm up")
    loaded, _ = rss_mb()
    row = {
        "name": name,
        "parameters": model.num_parameters,
        "layers": model.num_layers,
        "heads": model.num_heads,
        "base_mb": base,
        "model_mb": loaded - base,
    }
    pieces = model.tokenizer.tokenize(TEXT_WORD * 60)
    for tokens in (256, 512):  # smaller first: the peak (VmHWM) only ever grows
        text = model.tokenizer.convert_tokens_to_string(pieces[: tokens - 2])
        result = core.run_attention(model, text)
        _, peak = rss_mb()
        row[f"tokens_{tokens}"] = len(result.tokens)
        row[f"peak_{tokens}_mb"] = peak - loaded
        row[f"entry_{tokens}_mb"] = len(pickle.dumps(result)) / 1e6
        del result
    return row


def build(name: str, root: Path) -> str:
    """Save a random-weight copy of preset `name` (with the embedded tokenizer) under `root`."""
    import shutil

    import transformers

    from core.models import embedded_model_path

    class_name, fields = PRESET_CONFIGS[name]
    config = getattr(transformers, class_name)(**fields)
    auto = transformers.AutoModelForMaskedLM
    directory = root / name.replace("/", "--")
    auto.from_config(config).save_pretrained(directory)
    for file in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(embedded_model_path() / file, directory)
    return str(directory)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        return
    from core import EMBEDDED_MODEL

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [(EMBEDDED_MODEL, EMBEDDED_MODEL)]
        targets += [(name, build(name, Path(tmp))) for name in PRESET_CONFIGS]
        for name, location in targets:
            output = subprocess.run(
                [sys.executable, __file__, "--measure", name, location],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**env, "PYTHONPATH": str(ROOT)},
                timeout=600,
            )
            rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    print(
        "| Preset | Parameters | Layers × heads | Model in RAM | 256 tokens: peak / cached | "
        "512 tokens: peak / cached |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['name']} | {row['parameters'] / 1e6:.1f}M | {row['layers']} × {row['heads']} "
            f"| {row['model_mb']:.0f} MB | {row['peak_256_mb']:.0f} MB / "
            f"{row['entry_256_mb']:.0f} MB | {row['peak_512_mb']:.0f} MB / "
            f"{row['entry_512_mb']:.0f} MB |"
        )
    print(f"\nBase process (torch + transformers + core imported): {rows[0]['base_mb']:.0f} MB")


if __name__ == "__main__":
    main()
