"""Language features stage: language metadata and the reference study's source->target pairs.

The facts live in data files, not code: `data/languages.csv` (the language table: one row per language of the
shared WikiANN copy, plus `cs`, which the reference pairs need although its data is missing here, with family,
genus and WikiANN size), `data/wikiann_languages.csv` (the 176 languages of WikiANN on the Hugging Face hub, by
their Wikipedia codes, e.g. `bar`, `zh-yue`, `be-x-old`) and `data/pairs.csv` (the 13 pairs of Manafi &
Krishnaswamy 2024, in the study's order). Each is read once per process.

Any WikiANN language is known (`get_language`): a code of the table has its row; any other WikiANN code, or a
code with local data under the WikiANN directory (`<dir>/<lang>/<split>.gz`), gets its name, ISO 639-3 code and
script from the `langcodes` library (with the corrections `wikiann_languages.csv` holds for Wikipedia codes that
are not BCP 47 tags); family and genus are then unknown (""). Unknown codes fail with the codes allowed and, where
one is close (`zh_yue`, `spa`, `Bavarian`), a suggestion.
"""

from __future__ import annotations

import csv
import difflib
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from xner_core import paths
from xner_core.errors import ConfigError, DataError
from xner_core.paths import repo_data_dir

RESOURCE_LEVELS: tuple[str, ...] = ("high", "low")
RELATIONS: tuple[str, ...] = ("geographic", "genetic", "borrowing", "control")
# Relation given to a pair that is not one of the study's 13.
OTHER_RELATION = "other"
# `resource` is a WikiANN size tier (Rahimi train split), not the role a language plays in the study:
# ca, sk and ms have full-size splits although the study uses them as targets.
HIGH_RESOURCE_MIN_TRAIN = 15000

_LANGUAGE_COLUMNS = ("code", "name", "iso639_3", "family", "genus", "script", "resource", "wikiann_train", "note")
WIKIANN_TABLE = "wikiann_languages.csv"
_WIKIANN_COLUMNS = ("code", "tag", "name", "iso639_3", "script", "note")
# The hub dataset whose configs `data/wikiann_languages.csv` lists (`corpus.wikiann.HF_DATASET_ID` loads it).
HUB_DATASET = "unimelb-nlp/wikiann"
UNKNOWN_SCRIPT = "Zzzz"  # ISO 15924 "uncoded script": a local language the library does not know
_LOCAL_CODE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # a local data folder's name that can be a language code
_PAIR_COLUMNS = ("order", "source", "target", "relation", "note")
_SCRIPT_RE = re.compile(r"^[A-Z][a-z]{3}$")  # ISO 15924 alpha-4, e.g. Latn
_ISO3_RE = re.compile(r"^[a-z]{3}$")
# Separators accepted between the two codes of a pair: "fr-br", "fr→br", "fr->br", "fr,br", "fr>br", "fr br".
_PAIR_SPLIT_RE = re.compile(r"\s*(?:->|→|>|,|-|\s)\s*")


@dataclass(frozen=True)
class Language:
    """One language as the project knows it.

    Attributes:
        code: the WikiANN code (ISO 639-1 where one exists, else ISO 639-3, e.g. `scn`, or a Wikipedia code such
            as `zh-yue`).
        name: English name.
        iso639_3: ISO 639-3 code (the macrolanguage code where the 639-1 code maps to one); URIEL key. "" when
            unknown (a local language the library does not know).
        family: top-level family, e.g. Indo-European ("" outside the language table).
        genus: genus/branch, e.g. Romance ("" outside the language table).
        script: ISO 15924 code of the script of its WikiANN text, e.g. Latn (`UNKNOWN_SCRIPT` when unknown).
        resource: "high" or "low", a WikiANN train-size tier (>= HIGH_RESOURCE_MIN_TRAIN sentences is high); ""
            outside the language table.
        wikiann_train: sentences in the WikiANN (Rahimi) train split; None when we have no data or no count.
        note: free text.
    """

    code: str
    name: str
    iso639_3: str
    family: str
    genus: str
    script: str
    resource: str
    wikiann_train: int | None
    note: str = ""


@dataclass(frozen=True)
class LanguagePair:
    """A source (training) language and a target (test) language, with how they are related."""

    source: str
    target: str
    relation: str
    note: str = ""

    @property
    def key(self) -> str:
        """The pair as `source-target`, e.g. `fr-br` (stable, URL- and file-name-safe; `parse_pair` reads it back
        also when a code holds a hyphen, e.g. `es-zh-yue`)."""
        return f"{self.source}-{self.target}"

    @property
    def label(self) -> str:
        """The pair for display, e.g. `fr→br`."""
        return f"{self.source}→{self.target}"


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with exactly `columns` as header (after any leading `#` comment lines); return (line number,
    row) pairs."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = fh.read().splitlines(keepends=True)
    except FileNotFoundError:
        raise DataError(f"language table {path} is missing; it ships in the repository's data/ folder") from None
    skip = 0
    while skip < len(lines) and lines[skip].startswith("#"):
        skip += 1
    reader = csv.DictReader(lines[skip:])
    if tuple(reader.fieldnames or ()) != columns:
        raise DataError(f"{path}: line {skip + 1}: header {reader.fieldnames} must be {list(columns)}")
    return [(skip + reader.line_num, {k: (v or "").strip() for k, v in row.items()}) for row in reader]


def _parse_language(path: Path, line: int, row: dict[str, str]) -> Language:
    """Validate one languages.csv row."""
    where = f"{path.name}: line {line}"
    if not row["code"] or not row["name"]:
        raise DataError(f"{where}: code and name must not be empty")
    if not _ISO3_RE.match(row["iso639_3"]):
        raise DataError(f"{where}: iso639_3 {row['iso639_3']!r} must be three lowercase letters")
    if not _SCRIPT_RE.match(row["script"]):
        raise DataError(f"{where}: script {row['script']!r} must be an ISO 15924 code like Latn, Arab, Cyrl")
    if row["resource"] not in RESOURCE_LEVELS:
        raise DataError(f"{where}: resource {row['resource']!r}; choose one of: {', '.join(RESOURCE_LEVELS)}")
    train: int | None = None
    if row["wikiann_train"]:
        try:
            train = int(row["wikiann_train"])
        except ValueError:
            raise DataError(f"{where}: wikiann_train {row['wikiann_train']!r} must be an integer or empty") from None
    return Language(row["code"], row["name"], row["iso639_3"], row["family"], row["genus"], row["script"],
                    row["resource"], train, row["note"])


@functools.cache
def _languages() -> dict[str, Language]:
    path = repo_data_dir() / "languages.csv"
    out: dict[str, Language] = {}
    for line, row in _read_rows(path, _LANGUAGE_COLUMNS):
        lang = _parse_language(path, line, row)
        if lang.code in out:
            raise DataError(f"{path.name}: line {line}: language {lang.code!r} appears twice")
        out[lang.code] = lang
    return out


def all_languages() -> tuple[Language, ...]:
    """Return the languages of the language table, in the order of `data/languages.csv` (alphabetical by code).

    Returns:
        The languages (`known_languages` adds every other WikiANN language and local data).
    """
    return tuple(_languages().values())


def language_codes() -> tuple[str, ...]:
    """Return the codes of the language table.

    Returns:
        WikiANN codes, e.g. ("af", "an", ...).
    """
    return tuple(_languages())


@functools.cache
def _wikiann_rows() -> dict[str, dict[str, str]]:
    path = repo_data_dir() / WIKIANN_TABLE
    out: dict[str, dict[str, str]] = {}
    for line, row in _read_rows(path, _WIKIANN_COLUMNS):
        if not row["code"] or row["code"] != row["code"].lower():
            raise DataError(f"{path.name}: line {line}: code {row['code']!r} must be a lowercase WikiANN code")
        if row["code"] in out:
            raise DataError(f"{path.name}: line {line}: language {row['code']!r} appears twice")
        if row["iso639_3"] and not _ISO3_RE.match(row["iso639_3"]):
            raise DataError(f"{path.name}: line {line}: iso639_3 {row['iso639_3']!r} must be three lowercase letters")
        if row["script"] and not _SCRIPT_RE.match(row["script"]):
            raise DataError(f"{path.name}: line {line}: script {row['script']!r} must be an ISO 15924 code like Latn")
        out[row["code"]] = row
    return out


def wikiann_codes() -> tuple[str, ...]:
    """Return the codes of the 176 WikiANN languages of the Hugging Face hub (`data/wikiann_languages.csv`).

    Returns:
        Wikipedia codes in alphabetical order, e.g. ("ace", "af", "als", ..., "zh-yue").
    """
    return tuple(_wikiann_rows())


def on_hub(code: str) -> bool:
    """Whether the hub's WikiANN (`HUB_DATASET`) has this language (a config named by the code)."""
    return code in _wikiann_rows()


def _has_local_data(code: str, data_dir: str | os.PathLike[str] | None) -> bool:
    """A folder `<data_dir>/<code>/` with at least one WikiANN split (`<split>.gz` or `<split>`)."""
    if not _LOCAL_CODE_RE.match(code):
        return False
    folder = paths.data_dir(data_dir) / code
    return any((folder / f"{split}{ext}").is_file() for split in ("train", "dev", "test") for ext in (".gz", ""))


def local_codes(data_dir: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """Return the codes of the languages with local WikiANN data (any split), sorted.

    Args:
        data_dir: the WikiANN directory (default: `paths.data_dir()`).

    Returns:
        Folder names under it that hold a train, dev or test split.
    """
    base = paths.data_dir(data_dir)
    if not base.is_dir():
        return ()
    return tuple(sorted(p.name for p in base.iterdir() if p.is_dir() and _has_local_data(p.name, data_dir)))


@functools.cache
def _library_language(code: str, tag: str, name: str, iso: str, script: str, note: str) -> Language:
    """A language outside the table, described by `langcodes` (name, ISO 639-3, likely script) for `tag`; the
    non-empty arguments override the library (the 176 WikiANN rows have all three filled: no library load)."""
    if name and iso and script:
        return Language(code, name, iso, "", "", script, "", None, note or "name, ISO 639-3 and script from langcodes")
    import langcodes

    try:
        lang = langcodes.Language.get(tag)
        display = lang.display_name()
    except (ValueError, LookupError):
        lang, display = None, ""
    known = lang is not None and bool(display) and not display.startswith("Unknown language")
    if not name:
        name = display if known else code
    if not iso and lang is not None and known:
        try:
            iso = lang.to_alpha3()
        except LookupError:
            iso = ""
    if not iso and _ISO3_RE.match(code):
        iso = code
    if not script:
        script = (lang.maximize().script if lang is not None and known else None) or UNKNOWN_SCRIPT
    return Language(code, name, iso, "", "", script, "", None, note or "name, ISO 639-3 and script from langcodes")


def get_language(code: str, data_dir: str | os.PathLike[str] | None = None) -> Language:
    """Look a language up by its WikiANN code.

    Args:
        code: e.g. "br", "bar" or "zh-yue" (surrounding space and case are ignored).
        data_dir: the WikiANN directory where a code outside WikiANN may have local data (default:
            `paths.data_dir()`).

    Returns:
        The language table's row; for another WikiANN code, or a code with local data, a Language described by
        `langcodes`. Raises ConfigError naming the allowed codes (and a close match, if any) when it is unknown.
    """
    found = _lookup(code, data_dir)
    if found is None:
        raise ConfigError(unknown_language_message(code, data_dir))
    return found


def _lookup(code: object, data_dir: str | os.PathLike[str] | None = None) -> Language | None:
    key = code.strip().lower() if isinstance(code, str) else code
    langs = _languages()
    if key in langs:
        return langs[key]
    if not isinstance(key, str) or not key:
        return None
    row = _wikiann_rows().get(key)
    if row is not None:
        return _library_language(key, row["tag"] or key, row["name"], row["iso639_3"], row["script"], row["note"])
    if _has_local_data(key, data_dir):
        return _library_language(key, key, "", "", "", f"local data only (not one of WikiANN's "
                                                        f"{len(_wikiann_rows())} languages)")
    return None


def known_languages(data_dir: str | os.PathLike[str] | None = None) -> tuple[Language, ...]:
    """Return every language `get_language` knows: the table, the other WikiANN languages and local data.

    Args:
        data_dir: the WikiANN directory (default: `paths.data_dir()`).

    Returns:
        The languages, sorted by code (the first call reads the library's names, about a second).
    """
    codes = sorted({*_languages(), *_wikiann_rows(), *local_codes(data_dir)})
    return tuple(get_language(c, data_dir) for c in codes)


def _suggestion(text: str) -> str | None:
    """A known code the user probably meant: the same language by another code or name (`spa`, `yue`,
    `Bavarian`), else a close spelling (`zh_yue`)."""
    if not isinstance(text, str) or not text.strip():
        return None
    key = text.strip().lower()
    by_subtag = _subtag_index()
    import langcodes

    candidates = [key, key.replace("_", "-")]
    for cand in candidates:
        try:
            subtag = langcodes.Language.get(cand).language
        except (ValueError, LookupError):
            continue
        if subtag in by_subtag:
            return by_subtag[subtag]
    if len(key) >= 4 and re.fullmatch(r"[a-z][a-z .()'-]+", key):
        try:
            found = langcodes.find(key).language
        except (ValueError, LookupError):
            found = None
        if found in by_subtag:
            return by_subtag[found]
    codes = list(dict.fromkeys(by_subtag.values()))
    close = difflib.get_close_matches(key.replace("_", "-"), codes, n=1, cutoff=0.75)
    return close[0] if close else None


@functools.cache
def _subtag_index() -> dict[str, str]:
    """The library's language subtag -> our code, for every code of the table and of WikiANN (table first)."""
    import langcodes

    codes = [*_languages(), *(c for c in _wikiann_rows() if c not in _languages())]
    out: dict[str, str] = {c: c for c in codes}  # a code itself first: `sr` is sr, though sh reads as sr-Latn
    for c in codes:
        row = _wikiann_rows().get(c, {})
        try:
            out.setdefault(langcodes.Language.get(row.get("tag") or c).language or c, c)
        except (ValueError, LookupError):
            continue
    return out


def unknown_language_message(code: object, data_dir: str | os.PathLike[str] | None = None) -> str:
    """The error for a code `get_language` does not know: the allowed codes (the table's first, then WikiANN's
    others, then local data) and a close match when there is one.

    Args:
        code: what the user gave.
        data_dir: the WikiANN directory.

    Returns:
        e.g. "unknown language 'zz'; choose one of: af, an, ..., zh, or another of WikiANN's 176 languages: ace,
        als, ...".
    """
    table = list(_languages())
    others = [c for c in _wikiann_rows() if c not in _languages()]
    hint = _suggestion(code) if isinstance(code, str) else None
    msg = f"unknown language {code!r}; "
    if hint is not None:
        msg += f"did you mean {hint!r} ({get_language(hint).name})? "
    msg += f"choose one of: {', '.join(sorted(table))}, or another of WikiANN's {len(_wikiann_rows())} languages: "
    msg += ", ".join(others)
    return msg + (f" (a language outside WikiANN needs its data under {paths.data_dir(data_dir)}/<code>/"
                  "<split>.gz)")


def data_hint(code: str, data_dir: str | os.PathLike[str] | None = None) -> str:
    """Where a language's WikiANN data goes when it is not local, and whether the hub has it.

    Args:
        code: a known language code.
        data_dir: the WikiANN directory.

    Returns:
        e.g. "put its splits at /data/wikiann/bar/{train,dev,test}.gz (gzip CoNLL: a token and its IOB2 tag per
        line), or go online: the Hugging Face hub's WikiANN (unimelb-nlp/wikiann) has 'bar'".
    """
    where = f"put its splits at {paths.data_dir(data_dir)}/{code}/{{train,dev,test}}.gz (gzip CoNLL: a token and " \
            f"its IOB2 tag per line; set XNER_DATA_DIR or --data-dir to use another folder)"
    if on_hub(code):
        return f"{where}, or go online: the Hugging Face hub's WikiANN ({HUB_DATASET}) has {code!r}"
    return f"{where}; the Hugging Face hub's WikiANN does not have {code!r}"


def iso3(code: str) -> str:
    """Return the ISO 639-3 code (URIEL's key) of a WikiANN code.

    Args:
        code: e.g. "es".

    Returns:
        e.g. "spa" ("" when unknown); raises ConfigError for an unknown code.
    """
    return get_language(code).iso639_3


@functools.cache
def reference_pairs() -> tuple[LanguagePair, ...]:
    """Return the reference study's 13 source->target pairs, in its order.

    Returns:
        The pairs, each with its primary relation (geographic, genetic, borrowing or control).
    """
    path = repo_data_dir() / "pairs.csv"
    known = _languages()
    rows = sorted(_read_rows(path, _PAIR_COLUMNS), key=lambda lr: int(lr[1]["order"] or 0))
    pairs: list[LanguagePair] = []
    for line, row in rows:
        where = f"{path.name}: line {line}"
        for side in ("source", "target"):
            if row[side] not in known:
                raise DataError(f"{where}: {side} {row[side]!r} is not in languages.csv")
        if row["relation"] not in RELATIONS:
            raise DataError(f"{where}: relation {row['relation']!r}; choose one of: {', '.join(RELATIONS)}")
        pairs.append(LanguagePair(row["source"], row["target"], row["relation"], row["note"]))
    return tuple(pairs)


def reference_languages() -> tuple[str, ...]:
    """Return the distinct languages of the reference pairs, in order of first appearance (21 codes).

    Returns:
        Codes, e.g. ("fr", "br", "ar", "fa", ...).
    """
    return tuple(dict.fromkeys(code for p in reference_pairs() for code in (p.source, p.target)))


def split_pair(text: str) -> tuple[str, str]:
    """Split "fr-br", "fr→br", "fr->br", "fr,br" or "fr br" into two known language codes.

    A hyphen may also be part of a code (`zh-yue`, `be-x-old`): "es-zh-yue" is read as es and zh-yue, the one way
    of cutting it at a hyphen that gives two known codes.

    Args:
        text: two language codes with a separator between them.

    Returns:
        (source, target) codes. ConfigError for a malformed string or an unknown code.
    """
    malformed = ConfigError(f"cannot read language pair {text!r}; write source and target codes like 'fr-br', "
                            f"'fr→br' or 'fr,br'")
    if not isinstance(text, str):
        raise malformed
    low = text.strip().lower()
    parts = [p for p in _PAIR_SPLIT_RE.split(low) if p]
    if len(parts) > 2 and not re.search(r"->|→|>|,|\s", low):  # only hyphens: one of them may be inside a code
        halves = [(low[:i], low[i + 1:]) for i, ch in enumerate(low) if ch == "-"]
        known = [h for h in halves if all(_is_known(x) for x in h)]
        if len(known) == 1:
            parts = list(known[0])
    elif len(parts) > 2:
        outer = [p for p in re.split(r"\s*(?:->|→|>|,|\s)\s*", low) if p]
        parts = outer if len(outer) == 2 else parts
    if len(parts) != 2:
        raise malformed
    source, target = (get_language(p).code for p in parts)
    return source, target


def _is_known(code: str) -> bool:
    return _lookup(code) is not None


def parse_pair(text: str) -> LanguagePair:
    """Parse "fr-br", "fr→br", "fr->br" or "fr,br" into a pair (codes may hold hyphens: "es-zh-yue").

    Args:
        text: two language codes with a separator between them.

    Returns:
        The reference pair when it is one of the study's 13 (with its relation and note), else a pair with
        relation "other". Raises ConfigError for a malformed string or an unknown code.
    """
    source, target = split_pair(text)
    for pair in reference_pairs():
        if (pair.source, pair.target) == (source, target):
            return pair
    return LanguagePair(source, target, OTHER_RELATION, "")
