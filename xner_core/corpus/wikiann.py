"""Stage 1, corpus: the WikiANN readers: local files (`<data_dir>/<lang>/<split>[.gz]`), HF rows, the hub.

Sentences are tokens + IOB2 tags (`xner_core.corpus.sentences`); stray I- tags are repaired to IOB2 on load. Loaded
corpora are kept in an in-process LRU cache bounded by entries and total tokens.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

from xner_core import paths
from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.tags import LABELS, first_invalid, repair_iob2
from xner_core.errors import ConfigError, DataError

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
            tags = tuple(repair_iob2(list(tags)))
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
                tags = repair_iob2(tags)
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
            tags = repair_iob2(tags)
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
        from xner_core.corpus.languages import on_hub

        has = (f"its WikiANN has {lang!r}: go online to download it, or" if on_hub(lang)
               else f"its WikiANN has no {lang!r} either:")
        raise DataError(f"{where} and the Hugging Face hub is unreachable ({has} {_OFFLINE_HINT})")
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
