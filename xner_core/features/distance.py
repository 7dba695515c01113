"""Language features stage: URIEL distances between languages and the diversity of a set of source languages.

Distances come from `urielplus` (URIEL+, offline; angular distance in [0, 1]) keyed by ISO 639-3 codes, which
`languages.iso3` supplies. Three layers keep callers from waiting for URIEL+ (about 1-3 s to load):

1. `data/uriel_distances.csv`: precomputed for every ordered pair of the 21 reference languages (committed;
   used when its urielplus version is the installed one, or when urielplus is not installed);
2. a small JSON file per unordered pair under `<cache>/uriel/urielplus-<version>/`;
3. URIEL+ itself, loaded once per process.

URIEL+'s own constructor copies its data files into its install directory on first use, which fails where
site-packages is read-only. We load the released matrices straight from the package's `original_uriel/`
folder instead and never write inside the package.

Run `python -m xner_core.features.distance` to regenerate `data/uriel_distances.csv`.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from xner_core.corpus.languages import get_language, iso3, reference_languages
from xner_core.errors import DataError
from xner_core.paths import cache_dir, repo_data_dir, write_json_cache

DISTANCE_KINDS: tuple[str, ...] = ("genetic", "geographic", "syntactic", "phonological", "inventory", "featural")
TABLE_NAME = "uriel_distances.csv"
TABLE_COLUMNS: tuple[str, ...] = ("source", "target", "source_iso3", "target_iso3", *DISTANCE_KINDS,
                                  "urielplus_version")
_URIEL_FILES = ("family_features.npz", "features.npz", "geocoord_features.npz", "script_features.npz")

_load_lock = threading.Lock()
_uriel_instance: Any = None


def urielplus_version() -> str | None:
    """Return the installed urielplus version, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("urielplus")
    except PackageNotFoundError:
        return None


def _import_urielplus() -> tuple[Any, Any]:
    """Import urielplus without letting it reconfigure logging.

    urielplus calls `logging.basicConfig(level=INFO)` at import time and logs every distance call with
    `logging.info`; restore the root logger so importing it changes nothing for the host program.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from urielplus import urielplus as up_module
        from urielplus.base_uriel import BaseURIEL
    except ImportError as exc:
        raise DataError("URIEL distances need the 'urielplus' package (pip install urielplus==1.3.2), or a pair "
                        f"listed in data/{TABLE_NAME}") from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return up_module, BaseURIEL


def _released_data_dir(up_module: Any) -> Path:
    """The package folder holding URIEL+'s released matrices (read only)."""
    return Path(up_module.__file__).resolve().parent / "database" / "original_uriel"


def _make_readonly_uriel(data_dir: Path | None = None) -> Any:
    """Build a URIEL+ querying object from the released matrices without writing anywhere.

    Args:
        data_dir: folder with the four URIEL+ `.npz` files; default the package's `original_uriel/`.

    Returns:
        A `URIELPlus` instance (distance API: `new_distance(kind, [a, b])`).
    """
    import numpy as np

    up_module, base_cls = _import_urielplus()
    src = data_dir or _released_data_dir(up_module)

    class ReadOnlyURIELPlus(up_module.URIELPlus):  # type: ignore[name-defined]
        """URIEL+ whose constructor reads the released data in place (the stock one copies it first)."""

        def __init__(self) -> None:  # mirrors URIELPlus.__init__ (1.3.2) minus the copy step
            self.files = list(_URIEL_FILES)
            # Only read by URIEL+ from here on (its bundled CSVs); nothing is written unless a caller asks
            # URIEL+ to integrate or impute with caching on, which this module never does.
            self.cur_dir = str(Path(up_module.__file__).resolve().parent)
            self.loaded_features = []
            for name in self.files:
                path = src / name
                if not path.is_file():
                    raise DataError(f"URIEL+ data file {path} is missing; reinstall urielplus==1.3.2")
                with np.load(path, allow_pickle=True) as arrays:
                    self.loaded_features.append(dict(arrays))
            self.feats = [m["feats"] for m in self.loaded_features]
            self.langs = [m["langs"] for m in self.loaded_features]
            self.data = [m["data"] for m in self.loaded_features]
            self.sources = [m["sources"] for m in self.loaded_features]
            base_cls.__init__(self, self.feats, self.langs, self.data, self.sources)
            self.databases = self.imputation = self.querying = self
            self._refresh_indexes()

        def _create_vectors(self, langs, loaded_features, list_shared_indices, distance_type, vec_num=-1):
            # For two languages URIEL+ tests `feat_index in list_shared_indices` against a list for each of
            # 3,718 genetic features (quadratic, ~80 ms a call) on a thread pool. Same vectors, same order,
            # with a set and no threads; tests check the results equal the stock code's (the packaged table).
            if len(langs) != 2:
                return super()._create_vectors(langs, loaded_features, list_shared_indices, distance_type, vec_num)
            shared = set(list_shared_indices)
            idx = loaded_features
            return [self._process_language(i, langs, self.feats[idx], self.data[idx], self.langs[idx], shared,
                                           vec_num + i, distance_type) for i in range(2)]

    return ReadOnlyURIELPlus()


def _uriel() -> Any:
    """The process-wide URIEL+ object, loaded on first use (thread-safe)."""
    global _uriel_instance
    with _load_lock:
        if _uriel_instance is None:
            _uriel_instance = _make_readonly_uriel()
        return _uriel_instance


def _raw_distance(uriel: Any, kind: str, a3: str, b3: str) -> float | None:
    """One URIEL+ distance, or None when URIEL+ cannot compute it (unknown language, no shared features)."""
    try:
        value = uriel.new_distance(kind, [a3, b3])
    except (ValueError, IndexError, KeyError):
        return None
    value = float(value)
    if math.isnan(value) or value < 0:  # URIEL+ marks "cannot compute" with -1 in matrix mode
        return None
    return round(value, 4)


def _compute(a3: str, b3: str) -> dict[str, float | None]:
    uriel = _uriel()
    return {kind: _raw_distance(uriel, kind, a3, b3) for kind in DISTANCE_KINDS}


def _parse_cell(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.cache
def _packaged_table() -> dict[tuple[str, str], dict[str, float | None]]:
    """Rows of data/uriel_distances.csv keyed by (source, target) codes; empty when unusable."""
    path = repo_data_dir() / TABLE_NAME
    if not path.is_file():
        return {}
    installed = urielplus_version()
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            # Rows from another urielplus release may differ from what this one computes; prefer computing.
            if installed is not None and row["urielplus_version"] != installed:
                continue
            out[(row["source"], row["target"])] = {k: _parse_cell(row[k]) for k in DISTANCE_KINDS}
    return out


def _cache_file(a3: str, b3: str) -> Path:
    lo, hi = sorted((a3, b3))
    return cache_dir() / "uriel" / f"urielplus-{urielplus_version() or 'none'}" / f"{lo}__{hi}.json"


def _read_cached(path: Path) -> dict[str, float | None] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(DISTANCE_KINDS):
        return None  # an old or foreign file: recompute
    return {k: (None if data[k] is None else float(data[k])) for k in DISTANCE_KINDS}


@functools.lru_cache(maxsize=4096)
def _distances_by_iso(a3: str, b3: str) -> tuple[tuple[str, float | None], ...]:
    path = _cache_file(a3, b3)
    cached = _read_cached(path)
    if cached is None:
        cached = _compute(a3, b3)
        write_json_cache(path, cached)
    return tuple(cached.items())


def uriel_distances(a: str, b: str) -> dict[str, float | None]:
    """URIEL+ distances between two languages, one per kind of DISTANCE_KINDS.

    Args:
        a: a language code (`languages.get_language`: any WikiANN code), e.g. "es".
        b: another code, e.g. "ca" or "bar".

    Returns:
        {kind: distance in [0, 1] or None where URIEL+ lacks data for either language}. Symmetric in a and b.
        Raises ConfigError for an unknown code.
    """
    la, lb = get_language(a), get_language(b)
    table = _packaged_table()
    for key in ((la.code, lb.code), (lb.code, la.code)):
        if key in table:
            return dict(table[key])
    a3, b3 = iso3(la.code), iso3(lb.code)
    if not a3 or not b3:  # a local language without an ISO 639-3 code: URIEL+ cannot know it
        return {kind: None for kind in DISTANCE_KINDS}
    return dict(_distances_by_iso(a3, b3))


def precompute_distances(codes: Sequence[str]) -> list[dict[str, Any]]:
    """Compute distances for every ordered pair of distinct languages (bypassing the packaged table).

    Args:
        codes: language codes.

    Returns:
        Rows with TABLE_COLUMNS as keys, in the order of `itertools.permutations(codes, 2)`.
    """
    version = urielplus_version()
    rows: list[dict[str, Any]] = []
    for a, b in itertools.permutations(dict.fromkeys(get_language(c).code for c in codes), 2):
        a3, b3 = iso3(a), iso3(b)
        values = dict(_distances_by_iso(a3, b3))
        rows.append({"source": a, "target": b, "source_iso3": a3, "target_iso3": b3, **values,
                     "urielplus_version": version})
    return rows


def write_distance_table(path: Path, codes: Sequence[str]) -> int:
    """Write `precompute_distances(codes)` as CSV (empty cell = no distance).

    Args:
        path: output file.
        codes: language codes.

    Returns:
        The number of rows written.
    """
    rows = precompute_distances(codes)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in TABLE_COLUMNS})
    return len(rows)


@dataclass(frozen=True)
class Diversity:
    """How varied a set of source languages is.

    Attributes:
        sources: the distinct source codes, in the given order.
        count: how many.
        mean_distance: {kind: mean URIEL distance over unordered source pairs that have one}; None for every
            kind when there are fewer than 2 sources, or when no pair has that kind.
        families: number of distinct language families.
        scripts: number of distinct scripts.
    """

    sources: tuple[str, ...]
    count: int
    mean_distance: dict[str, float | None]
    families: int
    scripts: int

    def features(self) -> dict[str, float | None]:
        """Flat columns for the results table: diversity_count, diversity_<kind>, diversity_families/scripts."""
        out: dict[str, float | None] = {"diversity_count": float(self.count)}
        out.update({f"diversity_{k}": v for k, v in self.mean_distance.items()})
        out["diversity_families"] = float(self.families)
        out["diversity_scripts"] = float(self.scripts)
        return out


def source_diversity(sources: Sequence[str]) -> Diversity:
    """Summarise the diversity of a set of source languages.

    Args:
        sources: language codes (duplicates are ignored).

    Returns:
        Count, mean pairwise URIEL distance per kind, and the numbers of families (the language table's; for other
        languages URIEL+'s top-level family, each language its own where that is unknown too) and scripts.
    """
    langs = [get_language(c) for c in dict.fromkeys(s.strip().lower() for s in sources)]
    codes = tuple(lang.code for lang in langs)
    mean: dict[str, float | None] = {k: None for k in DISTANCE_KINDS}
    if len(codes) >= 2:
        per_kind: dict[str, list[float]] = {k: [] for k in DISTANCE_KINDS}
        for a, b in itertools.combinations(codes, 2):
            for kind, value in uriel_distances(a, b).items():
                if value is not None:
                    per_kind[kind].append(value)
        mean = {k: (round(sum(v) / len(v), 4) if v else None) for k, v in per_kind.items()}
    # A language outside the table has no family there: URIEL+'s (its top-level family feature), else its own.
    families = {lang.family or uriel_family(lang.iso639_3) or f"?{lang.code}" for lang in langs}
    return Diversity(codes, len(codes), mean, len(families), len({lang.script for lang in langs}))


@functools.lru_cache(maxsize=1024)
def uriel_family(iso: str) -> str | None:
    """A language's top-level family by URIEL+ (of its family features, the one most languages share).

    Args:
        iso: ISO 639-3 code, e.g. "bar".

    Returns:
        e.g. "Indo-European"; None when URIEL+ is not installed, lacks the language or gives it no family (an
        isolate such as Basque).
    """
    if not iso:
        return None
    try:
        uriel = _uriel()
    except DataError:
        return None
    return _top_family(uriel, iso)


def _top_family(uriel: Any, iso: str) -> str | None:
    import numpy as np

    langs = [str(x) for x in uriel.langs[0]]  # matrix 0 is family_features.npz (`_URIEL_FILES`)
    if iso not in langs:
        return None
    data = np.asarray(uriel.data[0])
    values = data[langs.index(iso)].reshape(data.shape[1], -1)[:, 0]
    members = np.flatnonzero(values == 1)
    if members.size == 0:
        return None
    sizes = (data[:, members].reshape(data.shape[0], members.size, -1)[:, :, 0] == 1).sum(axis=0)
    name = str(uriel.feats[0][members[int(np.argmax(sizes))]])
    return name[2:] if name.startswith("F_") else name


def main() -> None:
    """Regenerate data/uriel_distances.csv for the 21 reference languages."""
    path = repo_data_dir() / TABLE_NAME
    n = write_distance_table(path, reference_languages())
    print(f"wrote {n} rows to {path}")


if __name__ == "__main__":
    main()
