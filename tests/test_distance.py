"""Tests for xner_core.features.distance: URIEL+ distances (packaged table, disk cache, read-only load) and diversity.

The tests in the "real URIEL+" section load URIEL+'s matrices (about 1-3 s, once per process); all the others
read data/uriel_distances.csv only.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from xner_core.corpus.languages import get_language, reference_languages, reference_pairs
from xner_core.errors import ConfigError
from xner_core.features import distance as D
from xner_core.paths import repo_data_dir


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private cache root, and no in-process memo carried over from other tests."""
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path))
    D._distances_by_iso.cache_clear()
    yield tmp_path
    D._distances_by_iso.cache_clear()


def _no_uriel(*_args, **_kwargs):
    raise AssertionError("URIEL+ must not be loaded here")


def _table_rows() -> list[dict[str, str]]:
    with (repo_data_dir() / D.TABLE_NAME).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------------------------
# the packaged table (no URIEL+ load)


def test_packaged_table_covers_reference_languages_and_pairs():
    rows = _table_rows()
    codes = reference_languages()
    assert tuple(rows[0]) == D.TABLE_COLUMNS
    assert {(r["source"], r["target"]) for r in rows} == set(itertools.permutations(codes, 2))
    assert len(rows) == 21 * 20
    keys = {(r["source"], r["target"]) for r in rows}
    assert all((p.source, p.target) in keys for p in reference_pairs())
    assert {r["urielplus_version"] for r in rows} == {D.urielplus_version()}


def test_packaged_table_values_are_sane():
    rows = {(r["source"], r["target"]): r for r in _table_rows()}
    for (a, b), row in rows.items():
        assert row["source_iso3"] == get_language(a).iso639_3
        for kind in D.DISTANCE_KINDS:
            if row[kind]:
                assert 0.0 <= float(row[kind]) <= 1.0
            assert row[kind] == rows[(b, a)][kind], (a, b, kind)  # symmetric
    # every pair has the two kinds URIEL+ knows for all its languages
    assert all(r["genetic"] and r["geographic"] for r in rows.values())
    genetic = lambda a, b: float(rows[(a, b)]["genetic"])  # noqa: E731
    assert genetic("es", "ca") < genetic("es", "hi")
    assert genetic("en", "sco") < genetic("en", "cy")
    assert genetic("nl", "af") < genetic("nl", "ar")
    assert float(rows[("es", "ca")]["geographic"]) < float(rows[("es", "hi")]["geographic"])


def test_uriel_distances_reads_the_table_without_loading(tmp_cache, monkeypatch):
    monkeypatch.setattr(D, "_compute", _no_uriel)
    monkeypatch.setattr(D, "_uriel", _no_uriel)
    got = D.uriel_distances("es", "ca")
    assert set(got) == set(D.DISTANCE_KINDS)
    assert got == D.uriel_distances("ca", "es")
    assert got["genetic"] < D.uriel_distances("es", "hi")["genetic"]
    # Asturian has no typological data in URIEL+: None, not a crash and not 0
    ast = D.uriel_distances("es", "ast")
    assert ast["syntactic"] is None and ast["genetic"] is not None
    assert not list(tmp_cache.iterdir()), "table hits must not write cache files"


def test_unknown_language_is_a_configerror():
    with pytest.raises(ConfigError, match="unknown language 'xx'; choose one of"):
        D.uriel_distances("es", "xx")
    with pytest.raises(ConfigError):
        D.source_diversity(["es", "xx"])


def test_source_diversity_from_table(monkeypatch):
    monkeypatch.setattr(D, "_compute", _no_uriel)
    table = {(r["source"], r["target"]): r for r in _table_rows()}
    div = D.source_diversity(["es", "ca", "hi", "es"])
    assert div.sources == ("es", "ca", "hi") and div.count == 3
    assert (div.families, div.scripts) == (1, 2)  # all Indo-European; Latn + Deva
    expected = sum(float(table[p]["genetic"]) for p in [("es", "ca"), ("es", "hi"), ("ca", "hi")]) / 3
    assert div.mean_distance["genetic"] == pytest.approx(expected, abs=1e-4)
    feats = div.features()
    assert feats["diversity_count"] == 3.0 and feats["diversity_genetic"] == div.mean_distance["genetic"]
    assert set(feats) == {"diversity_count", "diversity_families", "diversity_scripts",
                          *(f"diversity_{k}" for k in D.DISTANCE_KINDS)}


def test_source_diversity_skips_missing_kinds(monkeypatch):
    monkeypatch.setattr(D, "_compute", _no_uriel)
    # ast and sk have no syntactic data: with only those two the mean is None, with a third it averages the rest
    assert D.source_diversity(["ast", "sk"]).mean_distance["syntactic"] is None
    table = {(r["source"], r["target"]): r for r in _table_rows()}
    three = D.source_diversity(["ast", "sk", "es"])
    assert three.mean_distance["syntactic"] is None  # no pair with es has it either (ast, sk lack it)
    with_fr = D.source_diversity(["ast", "es", "fr"])
    assert with_fr.mean_distance["syntactic"] == pytest.approx(float(table[("es", "fr")]["syntactic"]))
    assert with_fr.families == 1 and with_fr.scripts == 1


@pytest.mark.parametrize("sources", [[], ["es"], ["es", "es"]])
def test_source_diversity_of_fewer_than_two(sources, monkeypatch):
    monkeypatch.setattr(D, "_compute", _no_uriel)
    div = D.source_diversity(sources)
    assert div.count == len(set(sources))
    assert all(v is None for v in div.mean_distance.values())
    assert div.families == div.scripts == len(set(sources))


# ---------------------------------------------------------------------------------------------------------------
# real URIEL+ (loads its matrices)


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")
            if "__pycache__" not in p.parts}


def test_readonly_load_never_writes_into_the_package(monkeypatch):
    up_module, _ = D._import_urielplus()
    package = Path(up_module.__file__).resolve().parent
    before = _tree(package)

    def refuse(*args, **kwargs):
        raise PermissionError(f"read-only file system: {args}")

    # what a read-only site-packages would do to URIEL+'s own first-use copy (and to any save)
    monkeypatch.setattr(up_module.shutil, "copy", refuse)
    import numpy as np

    monkeypatch.setattr(np, "savez", refuse)
    uriel = D._make_readonly_uriel()
    assert D._raw_distance(uriel, "genetic", "spa", "cat") == pytest.approx(0.2677, abs=1e-4)
    assert _tree(package) == before
    assert not (package / "database" / "family_features.npz").exists()


@pytest.fixture(scope="module")
def uriel():
    return D._uriel()


def test_raw_distances_symmetric_bounded_and_ordered(uriel):
    for kind in D.DISTANCE_KINDS:
        for a, b in itertools.combinations(["spa", "cat", "hin", "ast"], 2):
            ab, ba = D._raw_distance(uriel, kind, a, b), D._raw_distance(uriel, kind, b, a)
            assert ab == ba
            assert ab is None or 0.0 <= ab <= 1.0
    assert D._raw_distance(uriel, "genetic", "spa", "cat") < D._raw_distance(uriel, "genetic", "spa", "hin")
    assert D._raw_distance(uriel, "geographic", "fra", "bre") < D._raw_distance(uriel, "geographic", "ara", "hin")
    # an ISO code URIEL+ does not know, and a kind a language has no data for, give None
    assert D._raw_distance(uriel, "genetic", "qqq", "spa") is None
    assert D._raw_distance(uriel, "syntactic", "ast", "spa") is None


def test_computed_values_match_the_packaged_table(uriel, tmp_cache):
    rows = {(r["source"], r["target"]): r for r in _table_rows()}
    for a, b in [("es", "ca"), ("fr", "br"), ("ar", "hi")]:
        computed = D._compute(get_language(a).iso639_3, get_language(b).iso639_3)
        expected = {k: (float(v) if v else None) for k, v in ((k, rows[(a, b)][k]) for k in D.DISTANCE_KINDS)}
        assert computed == expected, (a, b)


def test_fast_two_language_path_equals_stock_urielplus(uriel, monkeypatch):
    up_module, _ = D._import_urielplus()
    ours = {(a, b, k): D._raw_distance(uriel, k, a, b)
            for a, b in [("spa", "hin"), ("fra", "ast")] for k in D.DISTANCE_KINDS}
    # the stock URIEL+ method (list membership, thread pool) on the same instance
    monkeypatch.setattr(uriel, "_create_vectors", up_module.URIELPlus._create_vectors.__get__(uriel))
    stock = {key: D._raw_distance(uriel, key[2], key[0], key[1]) for key in ours}
    assert ours == stock
    assert ours[("fra", "ast", "syntactic")] is None and ours[("spa", "hin", "genetic")] is not None


def test_disk_cache_by_pair(uriel, tmp_cache, monkeypatch):
    got = D.uriel_distances("de", "fr")  # not in the table: computed once, then cached on disk
    path = tmp_cache / "uriel" / f"urielplus-{D.urielplus_version()}" / "deu__fra.json"
    assert json.loads(path.read_text()) == got
    assert got["genetic"] is not None and 0 < got["genetic"] < 1
    compute = D._compute
    D._distances_by_iso.cache_clear()
    monkeypatch.setattr(D, "_compute", _no_uriel)
    assert D.uriel_distances("fr", "de") == got  # same file, either order
    # a corrupt cache file is recomputed, not trusted
    path.write_text("{not json")
    D._distances_by_iso.cache_clear()
    monkeypatch.setattr(D, "_compute", compute)
    assert D.uriel_distances("de", "fr") == got
    assert json.loads(path.read_text()) == got


def test_language_uriel_lacks_gives_none(uriel, tmp_cache, monkeypatch):
    monkeypatch.setattr(D, "iso3", lambda code: "qqq" if code == "de" else get_language(code).iso639_3)
    got = D.uriel_distances("de", "fr")
    assert got == {k: None for k in D.DISTANCE_KINDS}


def test_precompute_distances_rows(uriel, tmp_cache):
    rows = D.precompute_distances(["es", "ca", "es"])
    assert [(r["source"], r["target"]) for r in rows] == [("es", "ca"), ("ca", "es")]
    assert tuple(rows[0]) == D.TABLE_COLUMNS
    assert rows[0]["genetic"] == rows[1]["genetic"] == pytest.approx(0.2677, abs=1e-4)
    out = tmp_cache / "t.csv"
    assert D.write_distance_table(out, ["es", "ca"]) == 2
    assert out.read_text().splitlines()[0] == ",".join(D.TABLE_COLUMNS)


def test_import_does_not_reconfigure_logging():
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    D._import_urielplus()
    assert root.handlers == handlers and root.level == level
