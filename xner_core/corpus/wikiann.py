"""Stage 1, corpus: Sentence/Corpus types and readers (WikiANN local files or the HF hub, CoNLL user files).

A Sentence is tokens + IOB2 tags of equal length, with its language code and a stable id.
"""

from __future__ import annotations

import gzip
import math
import os
import random
import re
import socket
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlparse

from xner_core import paths
from xner_core.corpus.tags import ENTITY_TYPES, LABELS, first_invalid, iob1_to_iob2, is_valid_iob2, spans
from xner_core.errors import ConfigError, DataError


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence. `tags` may be all "O" for unlabeled text."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    lang: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(
                f"sentence {self.id!r}: {len(self.tokens)} tokens but {len(self.tags)} tags; they must be equal"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    def replace(self, tokens: Sequence[str] | None = None, tags: Sequence[str] | None = None) -> "Sentence":
        """Return a copy with new tokens and/or tags (same lang and id)."""
        return Sentence(
            tuple(self.tokens if tokens is None else tokens),
            tuple(self.tags if tags is None else tags),
            self.lang,
            self.id,
        )

    @property
    def valid(self) -> bool:
        """True when the tags are valid IOB2."""
        return is_valid_iob2(self.tags)


@dataclass(frozen=True)
class Corpus:
    """An ordered collection of sentences of one language and split."""

    sentences: tuple[Sentence, ...]
    lang: str = ""
    split: str = ""
    meta: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[Sentence]:
        return iter(self.sentences)

    def __getitem__(self, i: int) -> Sentence:
        return self.sentences[i]

    @property
    def tags(self) -> list[list[str]]:
        """The seqeval interface: one list of tags per sentence."""
        return [list(s.tags) for s in self.sentences]

    @property
    def tokens(self) -> list[list[str]]:
        """One list of tokens per sentence."""
        return [list(s.tokens) for s in self.sentences]

    def head(self, n: int | None) -> "Corpus":
        """Return the first `n` sentences (all when n is None)."""
        if n is None or n >= len(self.sentences):
            return self
        return Corpus(self.sentences[:n], self.lang, self.split, self.meta)


# --------------------------------------------------------------------------------------------------------------
# WikiANN readers: local files (`<data_dir>/<lang>/<split>[.gz]`) or the Hugging Face hub.
# --------------------------------------------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("train", "dev", "test", "extra")

# The hub repository of `load_dataset("wikiann", lang)` (un-namespaced hub datasets moved under organisations; this
# one is stored as parquet, which `datasets` >= 4 needs since loading scripts are gone). Naming it directly does not
# depend on the old name's redirect.
HF_DATASET_ID = "unimelb-nlp/wikiann"
# Our split names -> the hub's. Rahimi's `extra` pool was never published on the hub.
HF_SPLITS: dict[str, str] = {"train": "train", "dev": "validation", "test": "test"}
# WikiANN's ner_tags order on the hub (used when the dataset's features carry no names).
HF_TAG_NAMES: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

_OFFLINE_HINT = (
    "put the WikiANN files in a local directory (<dir>/<lang>/<split>.gz) and pass it with --data-dir "
    "or set XNER_DATA_DIR"
)
# Canonical tag objects: every loaded tag is the same string object, so tags cost one pointer per token.
_CANON_TAGS: dict[str, str] = {t: t for t in LABELS}
_LANG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_CACHE_MAX_ENTRIES = 64
_CACHE_MAX_TOKENS = 3_000_000  # ~ a few hundred MB of token strings at most
_cache: "OrderedDict[tuple[object, ...], tuple[Corpus, int]]" = OrderedDict()  # key -> (corpus, tokens)
_cache_tokens = 0
_cache_lock = threading.Lock()


def _check_lang(lang: str) -> None:
    """Reject language codes that are not plain identifiers (they become path components)."""
    if not isinstance(lang, str) or not _LANG_RE.match(lang):
        raise ConfigError(
            f"invalid language code {lang!r}; use a WikiANN code such as 'br', 'es' or 'zh-yue' "
            "(letters, digits, '-' or '_')"
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


def wikiann_file(lang: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the local file of one WikiANN split (`<split>.gz` preferred over plain `<split>`), or None.

    Args:
        lang: WikiANN language code.
        split: one of SPLITS.
        data_dir: the WikiANN directory (default: `paths.data_dir()`).

    Returns:
        The existing file's path, or None when there is no local copy.
    """
    _check_lang(lang)
    _check_split(split)
    base = paths.data_dir(data_dir) / lang
    for name in (f"{split}.gz", split):
        cand = base / name
        if cand.is_file():
            return cand
    return None


def _repair_iob2(tags: list[str]) -> list[str]:
    """Turn each stray I-X (after O or another type) into B-X.

    WikiANN's ja/zh (and one el) sentences contain such chunks; seqeval and `tags.spans` already read a stray I-X
    as the start of a new chunk, so this keeps the entity reading and restores the IOB2 contract.
    """
    return iob1_to_iob2(tags)


def _decode(data: bytes, name: str) -> str:
    """Decode UTF-8 (BOM tolerated) or raise DataError naming the line of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{name}: line {line}: not valid UTF-8 (byte {data[err.start]:#04x}); files must be UTF-8 text"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_wikiann_text(text: str, lang: str, split: str, name: str = "<text>") -> Corpus:
    """Parse WikiANN CoNLL text (`[<lang>:]<token>\\t<TAG>` lines, blank line between sentences).

    The `<lang>:` prefix is stripped only when the file's first token carries this language's prefix (files of
    source A), so tokens of unprefixed files (source B) that contain ':' are kept whole.

    Args:
        text: the decoded file content.
        lang: the file's language code (sentence ids and prefix).
        split: the split name (sentence ids).
        name: the file name, for error messages.

    Returns:
        A Corpus with ids `f"{lang}-{split}-{i}"`. Stray I- tags are repaired to IOB2; meta records how many.

    Raises:
        DataError: a line without a tag column, an empty token or a tag outside O, B/I-PER/ORG/LOC.
    """
    prefix = lang + ":"
    prefixed = text.lstrip("\r\n").startswith(prefix)
    fast = _parse_blocks(text, lang, split, prefix if prefixed else "")
    sentences, repaired = fast if fast is not None else _parse_lines(text, lang, split, name, prefixed)
    meta = (("source", name), ("format", "prefixed" if prefixed else "plain"), ("repaired_iob2", str(repaired)))
    return Corpus(tuple(sentences), lang, split, meta)


# Tag bigrams (previous, current) allowed by IOB2; a sentence whose bigrams are all here needs no repair.
_IOB2_BIGRAMS: frozenset[tuple[str, str]] = frozenset(
    (prev, cur)
    for prev in LABELS
    for cur in LABELS
    if not (cur.startswith("I-") and prev[2:] != cur[2:])
)
_TWO_TABS = re.compile("\t[^\n]*\t")


def _parse_blocks(text: str, lang: str, split: str, prefix: str) -> tuple[list[Sentence], int] | None:
    """Fast path for well-formed files: split whole sentence blocks with C-level string operations.

    Returns None at the first irregularity (CR, a line without exactly one tab, an empty token, an unknown tag,
    blank lines with spaces); the line parser then handles the file and reports exact line numbers.
    """
    if "\r" in text:
        return None
    if prefix:
        # Drop the prefix at every line start in one pass (a token "br:x" in a br file is written "br:br:x").
        text = text.replace("\n" + prefix, "\n")
        if text.startswith(prefix):
            text = text[len(prefix) :]
    canon = _CANON_TAGS.__getitem__
    bigrams = _IOB2_BIGRAMS
    sentences: list[Sentence] = []
    repaired = 0
    if _TWO_TABS.search(text):
        return None
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        # No line has two tabs (checked above), so 2 parts per line means exactly one tab on every line.
        parts = block.replace("\t", "\n").split("\n")
        if len(parts) != 2 * (block.count("\n") + 1):
            return None
        toks = parts[0::2]
        if "" in toks:
            return None
        try:
            tags = tuple(map(canon, parts[1::2]))
        except KeyError:
            return None
        if not bigrams.issuperset(zip(("O",) + tags[:-1], tags)):
            tags = tuple(_repair_iob2(list(tags)))
            repaired += 1
        sentences.append(Sentence(tuple(toks), tags, lang, f"{lang}-{split}-{len(sentences)}"))
    return sentences, repaired


def _parse_lines(text: str, lang: str, split: str, name: str, prefixed: bool) -> tuple[list[Sentence], int]:
    """Line-by-line parser: tolerates CRLF, space-separated columns and whitespace-only blank lines, and raises
    DataError with the line number of the first malformed line."""
    prefix = lang + ":"
    plen = len(prefix)
    canon = _CANON_TAGS
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    stray = False
    repaired = 0
    prev_type = ""  # "-PER" etc. of the previous tag, "" after O

    def flush() -> None:
        nonlocal tokens, tags, stray, repaired, prev_type
        if tokens:
            if stray:
                tags = _repair_iob2(tags)
                repaired += 1
            sentences.append(Sentence(tuple(tokens), tuple(tags), lang, f"{lang}-{split}-{len(sentences)}"))
        tokens, tags, stray, prev_type = [], [], False, ""

    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            flush()
            continue
        # Token first, tag last (CoNLL convention); tab-separated, or whitespace-separated without a tab.
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise DataError(
                f"{name}: line {lineno}: expected '<token><TAB><tag>', got {line[:80]!r}; "
                "sentences are separated by blank lines"
            )
        tok, tag = fields[0], fields[-1]
        ctag = canon.get(tag)
        if ctag is None:
            ctag = canon.get(tag.strip())
            if ctag is None:
                raise DataError(
                    f"{name}: line {lineno}: unknown tag {tag.strip()[:40]!r}; allowed: {', '.join(LABELS)}"
                )
        if prefixed and tok.startswith(prefix):
            tok = tok[plen:]
        if not tok:
            raise DataError(f"{name}: line {lineno}: empty token; every line needs a non-empty token before the tag")
        if ctag[0] == "I" and ctag[1:] != prev_type:
            stray = True
        prev_type = ctag[1:]
        tokens.append(tok)
        tags.append(ctag)
    flush()
    return sentences, repaired


def _cache_get(key: tuple[object, ...]) -> Corpus | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is None:
            return None
        _cache.move_to_end(key)
        return hit[0]


def _cache_put(key: tuple[object, ...], corpus: Corpus) -> None:
    """Insert and evict least-recently-used entries beyond the entry and total-token budgets."""
    global _cache_tokens
    n_tokens = sum(len(s.tokens) for s in corpus.sentences)
    with _cache_lock:
        if key in _cache:
            _cache_tokens -= _cache.pop(key)[1]
        _cache[key] = (corpus, n_tokens)
        _cache_tokens += n_tokens
        while len(_cache) > 1 and (len(_cache) > _CACHE_MAX_ENTRIES or _cache_tokens > _CACHE_MAX_TOKENS):
            _, (_, old_tokens) = _cache.popitem(last=False)
            _cache_tokens -= old_tokens


def clear_cache() -> None:
    """Forget every corpus loaded so far (tests; long-running processes after data changes)."""
    global _cache_tokens
    with _cache_lock:
        _cache.clear()
        _cache_tokens = 0


def _load_local(path: Path, lang: str, split: str) -> Corpus:
    """Load one local split through the in-process cache keyed by (resolved path, mtime, size)."""
    try:
        resolved = path.resolve()
        st = resolved.stat()
        key: tuple[object, ...] = (str(resolved), st.st_mtime_ns, st.st_size, lang, split)
        hit = _cache_get(key)
        if hit is not None:
            return hit
        raw = resolved.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err}); check its permissions") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: not a readable gzip file ({err}); expected gzip-compressed CoNLL text") from None
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: binary data (NUL byte); expected UTF-8 CoNLL text")
    corpus = parse_wikiann_text(_decode(raw, str(path)), lang, split, str(path))
    _cache_put(key, corpus)
    return corpus


def hf_rows_to_corpus(
    rows: Iterable[Mapping[str, Any]], names: Sequence[str], lang: str, split: str
) -> Corpus:
    """Convert Hugging Face `wikiann` rows (`tokens`, integer `ner_tags`) into a Corpus.

    Args:
        rows: dicts with `tokens` (list of str) and `ner_tags` (list of int).
        names: the dataset's tag names by id (`features["ner_tags"].feature.names`).
        lang: language code for the sentences.
        split: our split name (ids are `f"{lang}-{split}-{i}"`).

    Returns:
        The corpus; empty rows are dropped, stray I- tags repaired to IOB2 (as for local files).

    Raises:
        DataError: a tag name outside our label set, a tag id out of range, or tokens/tags of unequal length.
    """
    mapping: list[str] = []
    for name in names:
        if name not in _CANON_TAGS:
            raise DataError(f"hub dataset tag {name!r} is not supported; allowed: {', '.join(LABELS)}")
        mapping.append(_CANON_TAGS[name])
    sentences: list[Sentence] = []
    repaired = 0
    for r, row in enumerate(rows):
        toks = [str(t) for t in row["tokens"]]
        try:
            ids = [int(i) for i in row["ner_tags"]]  # numpy / arrow integers too
        except (TypeError, ValueError):
            raise DataError(f"hub row {r}: ner_tags must be integers, got {list(row['ner_tags'])[:10]!r}") from None
        if len(toks) != len(ids):
            raise DataError(f"hub row {r}: {len(toks)} tokens but {len(ids)} tags; they must be equal")
        if not toks:
            continue
        bad = [i for i in ids if not 0 <= i < len(mapping)]
        if bad:
            raise DataError(f"hub row {r}: tag id {bad[0]!r} outside 0..{len(mapping) - 1}")
        tags = [mapping[i] for i in ids]
        if first_invalid(tags) is not None:
            tags = _repair_iob2(tags)
            repaired += 1
        sentences.append(Sentence(tuple(toks), tuple(tags), lang, f"{lang}-{split}-{len(sentences)}"))
    meta = (("source", f"hf:{HF_DATASET_ID}/{lang}"), ("format", "hub"), ("repaired_iob2", str(repaired)))
    return Corpus(tuple(sentences), lang, split, meta)


def _hub_offline() -> bool:
    """True when the user asked the HF libraries to stay offline (then `datasets` may still answer from its cache)."""
    flags = (os.environ.get(v, "").strip().upper() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in ("1", "ON", "YES", "TRUE") for f in flags)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP probe of the hub endpoint, so an unreachable hub fails in seconds, not after the hub
    client's ~25 s of retries. Behind a proxy we cannot tell, so we let the hub client try."""
    proxies = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
    if any(os.environ.get(v) for v in proxies):
        return True
    parsed = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_load(lang: str, split: str, data_dir: str | os.PathLike[str] | None) -> Corpus:
    """Download one WikiANN split from the Hugging Face hub (on disk by `datasets` under our cache dir, in memory
    by our LRU cache).

    Every failure becomes a DataError that names the offline alternative.
    """
    if split not in HF_SPLITS:
        raise DataError(
            f"no local WikiANN {split!r} split for {lang!r} and the Hugging Face hub has none "
            f"(hub splits: {', '.join(HF_SPLITS)}); {_OFFLINE_HINT}"
        )
    key = ("hf", HF_DATASET_ID, lang, split)
    hit = _cache_get(key)
    if hit is not None:
        return hit
    where = f"no local WikiANN files for {lang!r} under {paths.data_dir(data_dir)}"
    if not _hub_offline() and not _hub_reachable():
        raise DataError(f"{where} and the Hugging Face hub is unreachable; {_OFFLINE_HINT}")
    try:
        import datasets  # heavy import (~1 s): only on this path
    except ImportError:
        raise DataError(f"{where} and the `datasets` package is not installed; {_OFFLINE_HINT}") from None
    try:
        ds = datasets.load_dataset(
            HF_DATASET_ID, lang, split=HF_SPLITS[split], cache_dir=str(paths.cache_dir() / "hf_datasets")
        )
        feature = ds.features["ner_tags"]
        names = list(getattr(getattr(feature, "feature", None), "names", None) or HF_TAG_NAMES)
        rows = ({"tokens": r["tokens"], "ner_tags": r["ner_tags"]} for r in ds)
        corpus = hf_rows_to_corpus(rows, names, lang, split)
    except DataError:
        raise
    except Exception as err:  # the hub client raises many types (ConnectionError, HfHubHTTPError, ValueError...)
        detail = " ".join(str(err).split())[:200]
        raise DataError(
            f"{where}, and loading {HF_DATASET_ID!r} ({lang}, {HF_SPLITS[split]}) from the Hugging Face hub failed "
            f"({type(err).__name__}: {detail}); {_OFFLINE_HINT}"
        ) from None
    _cache_put(key, corpus)
    return corpus


def load_wikiann(
    lang: str, split: str, data_dir: str | os.PathLike[str] | None = None, limit: int | None = None
) -> Corpus:
    """Load one WikiANN split: the local file when the language is there, else the Hugging Face hub.

    Args:
        lang: WikiANN language code, e.g. "br".
        split: one of SPLITS ("dev" is the hub's "validation"; "extra" exists only locally).
        data_dir: the WikiANN directory (`--data-dir`); default XNER_DATA_DIR, then `<cache>/wikiann`.
        limit: keep only the first `limit` sentences (None: all).

    Returns:
        The corpus (ids `f"{lang}-{split}-{i}"`). Repeated full loads of an unchanged local file return the same
        immutable object from an in-process cache.

    Raises:
        ConfigError: unknown split, bad language code or negative limit.
        DataError: a malformed local file (with file and line), a missing split of a local language, or no local
            copy and no reachable hub.
    """
    _check_lang(lang)
    _check_split(split)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"invalid limit {limit!r}; use a non-negative number of sentences or None for all")
    path = wikiann_file(lang, split, data_dir)
    if path is not None:
        corpus = _load_local(path, lang, split)
    elif (paths.data_dir(data_dir) / lang).is_dir():
        have = [s for s in SPLITS if wikiann_file(lang, s, data_dir) is not None]
        raise DataError(
            f"no {split!r} split for {lang!r} in {paths.data_dir(data_dir) / lang}; "
            f"available: {', '.join(have) or 'none'}"
        )
    else:
        corpus = _hub_load(lang, split, data_dir)
    return corpus.head(limit)


def available_languages(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Return the languages that have a local test split, sorted.

    Args:
        data_dir: the WikiANN directory (default: `paths.data_dir()`).

    Returns:
        Language codes (empty when the directory does not exist).
    """
    base = paths.data_dir(data_dir)
    if not base.is_dir():
        return []
    return sorted(
        p.name
        for p in base.iterdir()
        if p.is_dir() and _LANG_RE.match(p.name) and ((p / "test.gz").is_file() or (p / "test").is_file())
    )


def split_sizes(lang: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Return the number of sentences of each local split of a language (local files only, no hub).

    Args:
        lang: WikiANN language code.
        data_dir: the WikiANN directory.

    Returns:
        `{split: sentences}` in SPLITS order, only for splits present; empty when the language is not local.
    """
    return {
        s: len(_load_local(p, lang, s))
        for s in SPLITS
        if (p := wikiann_file(lang, s, data_dir)) is not None
    }


def paper_resplit(
    lang: str,
    data_dir: str | os.PathLike[str] | None = None,
    cap: int | None = 17003,
    seed: int = 1,
    train_fraction: float = 0.8,
    splits: Sequence[str] = ("train", "dev", "test", "extra"),
) -> tuple[Corpus, Corpus]:
    """Re-split a language the way the reference study did: pool, deduplicate, shuffle, cap, 80/20.

    The study capped each language at 17,003 sentences and split them 80/20 into train/test (13,602 / 3,401).
    We pool the labeled sentences of `splits` (those present locally; without a local copy, the hub's
    train/dev/test), drop repeated (tokens, tags) sequences keeping the first, shuffle with `random.Random(seed)`,
    keep the first `cap` and cut at `floor(n * train_fraction)`.

    Args:
        lang: WikiANN language code.
        data_dir: the WikiANN directory.
        cap: maximum pooled sentences (None: no cap).
        seed: shuffle seed; the same seed gives the same split.
        train_fraction: share of the capped pool that goes to train, in (0, 1).
        splits: which source splits to pool.

    Returns:
        (train, test) corpora with split names "train"/"test", sentences keeping their original ids, and meta
        recording the protocol, seed, cap and pool size.

    Raises:
        ConfigError: an unknown split, a cap < 2 or a fraction outside (0, 1).
        DataError: no data for the language.
    """
    _check_lang(lang)
    for s in splits:
        _check_split(s)
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"invalid train_fraction {train_fraction!r}; use a number strictly between 0 and 1")
    if cap is not None and (not isinstance(cap, int) or cap < 2):
        raise ConfigError(f"invalid cap {cap!r}; use at least 2 sentences, or None for no cap")
    local = [s for s in SPLITS if wikiann_file(lang, s, data_dir) is not None]
    use = [s for s in splits if s in local] if local else [s for s in splits if s in HF_SPLITS]
    if not use:
        raise DataError(
            f"no WikiANN data for {lang!r} in splits {', '.join(splits)}; local splits: {', '.join(local) or 'none'}"
        )
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    pool: list[Sentence] = []
    for s in use:
        for sent in load_wikiann(lang, s, data_dir):
            key = (sent.tokens, sent.tags)
            if key not in seen:
                seen.add(key)
                pool.append(sent)
    pooled = len(pool)
    random.Random(seed).shuffle(pool)
    if cap is not None:
        pool = pool[:cap]
    n_train = int(math.floor(len(pool) * train_fraction + 1e-9))
    meta = (
        ("protocol", "paper_resplit"),
        ("seed", str(seed)),
        ("cap", str(cap)),
        ("train_fraction", str(train_fraction)),
        ("pooled_unique", str(pooled)),
        ("from_splits", ",".join(use)),
    )
    return (
        Corpus(tuple(pool[:n_train]), lang, "train", meta),
        Corpus(tuple(pool[n_train:]), lang, "test", meta),
    )


@dataclass(frozen=True)
class CorpusStats:
    """Size and entity counts of one corpus (`xner data stats`)."""

    lang: str
    split: str
    sentences: int
    tokens: int
    entities: int
    entities_by_type: dict[str, int] = field(hash=False)
    entity_tokens: int
    mean_length: float
    max_length: int
    vocab_size: int


def corpus_stats(corpus: Corpus) -> CorpusStats:
    """Count sentences, tokens, entity chunks (total and per type), entity tokens and distinct token strings.

    Args:
        corpus: any corpus (tags read as IOB2 chunks via `tags.spans`).

    Returns:
        A CorpusStats; mean_length is 0.0 for an empty corpus. `entities_by_type` lists every known type.
    """
    by_type = {t: 0 for t in ENTITY_TYPES}
    n_tokens = entity_tokens = max_len = 0
    vocab: set[str] = set()
    for sent in corpus.sentences:
        n = len(sent.tokens)
        n_tokens += n
        max_len = max(max_len, n)
        vocab.update(sent.tokens)
        for sp in spans(sent.tags):
            by_type[sp.etype] = by_type.get(sp.etype, 0) + 1
            entity_tokens += sp.end - sp.start
    n_sent = len(corpus.sentences)
    return CorpusStats(
        lang=corpus.lang,
        split=corpus.split,
        sentences=n_sent,
        tokens=n_tokens,
        entities=sum(by_type.values()),
        entities_by_type=by_type,
        entity_tokens=entity_tokens,
        mean_length=n_tokens / n_sent if n_sent else 0.0,
        max_length=max_len,
        vocab_size=len(vocab),
    )
