"""Language features stage: language metadata and the reference study's source->target pairs.

The facts live in data files, not code: `data/languages.csv` (one row per WikiANN language, plus `cs`, which
the reference pairs need although its data is missing here) and `data/pairs.csv` (the 13 pairs of Manafi &
Krishnaswamy 2024, in the study's order). Both are read once per process.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from xner_core.errors import ConfigError, DataError, choices_message
from xner_core.paths import repo_data_dir

RESOURCE_LEVELS: tuple[str, ...] = ("high", "low")
RELATIONS: tuple[str, ...] = ("geographic", "genetic", "borrowing", "control")
# Relation given to a pair that is not one of the study's 13.
OTHER_RELATION = "other"
# `resource` is a WikiANN size tier (Rahimi train split), not the role a language plays in the study:
# ca, sk and ms have full-size splits although the study uses them as targets.
HIGH_RESOURCE_MIN_TRAIN = 15000

_LANGUAGE_COLUMNS = ("code", "name", "iso639_3", "family", "genus", "script", "resource", "wikiann_train", "note")
_PAIR_COLUMNS = ("order", "source", "target", "relation", "note")
_SCRIPT_RE = re.compile(r"^[A-Z][a-z]{3}$")  # ISO 15924 alpha-4, e.g. Latn
_ISO3_RE = re.compile(r"^[a-z]{3}$")
# Separators accepted between the two codes of a pair: "fr-br", "fr→br", "fr->br", "fr,br", "fr>br", "fr br".
_PAIR_SPLIT_RE = re.compile(r"\s*(?:->|→|>|,|-|\s)\s*")


@dataclass(frozen=True)
class Language:
    """One language as the project knows it.

    Attributes:
        code: the WikiANN code (ISO 639-1 where one exists, else ISO 639-3, e.g. `scn`).
        name: English name.
        iso639_3: ISO 639-3 code (the macrolanguage code where the 639-1 code maps to one); URIEL key.
        family: top-level family, e.g. Indo-European.
        genus: genus/branch, e.g. Romance.
        script: ISO 15924 code of the script of its WikiANN text, e.g. Latn.
        resource: "high" or "low", a WikiANN train-size tier (>= HIGH_RESOURCE_MIN_TRAIN sentences is high).
        wikiann_train: sentences in the WikiANN (Rahimi) train split; None when we have no data.
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
        """The pair as `source-target`, e.g. `fr-br` (stable, URL- and file-name-safe)."""
        return f"{self.source}-{self.target}"

    @property
    def label(self) -> str:
        """The pair for display, e.g. `fr→br`."""
        return f"{self.source}→{self.target}"


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with exactly `columns` as header; return (line number, row) pairs."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != columns:
                raise DataError(f"{path}: line 1: header {reader.fieldnames} must be {list(columns)}")
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items()}) for row in reader]
    except FileNotFoundError:
        raise DataError(f"language table {path} is missing; it ships in the repository's data/ folder") from None


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
    """Return every known language, in the order of `data/languages.csv` (alphabetical by code).

    Returns:
        The languages.
    """
    return tuple(_languages().values())


def language_codes() -> tuple[str, ...]:
    """Return the codes of every known language.

    Returns:
        WikiANN codes, e.g. ("af", "an", ...).
    """
    return tuple(_languages())


def get_language(code: str) -> Language:
    """Look a language up by its WikiANN code.

    Args:
        code: e.g. "br" (surrounding space and case are ignored).

    Returns:
        The language; raises ConfigError naming the known codes when it is unknown.
    """
    key = code.strip().lower() if isinstance(code, str) else code
    langs = _languages()
    if key not in langs:
        raise ConfigError(choices_message("language", code, list(langs)))
    return langs[key]


def iso3(code: str) -> str:
    """Return the ISO 639-3 code (URIEL's key) of a WikiANN code.

    Args:
        code: e.g. "es".

    Returns:
        e.g. "spa"; raises ConfigError for an unknown code.
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


def parse_pair(text: str) -> LanguagePair:
    """Parse "fr-br", "fr→br", "fr->br" or "fr,br" into a pair.

    Args:
        text: two language codes with a separator between them.

    Returns:
        The reference pair when it is one of the study's 13 (with its relation and note), else a pair with
        relation "other". Raises ConfigError for a malformed string or an unknown code.
    """
    parts = [p for p in _PAIR_SPLIT_RE.split(text.strip().lower()) if p] if isinstance(text, str) else []
    if len(parts) != 2:
        raise ConfigError(f"cannot read language pair {text!r}; write source and target codes like 'fr-br', "
                          f"'fr→br' or 'fr,br'")
    source, target = (get_language(p).code for p in parts)
    for pair in reference_pairs():
        if (pair.source, pair.target) == (source, target):
            return pair
    return LanguagePair(source, target, OTHER_RELATION, "")
