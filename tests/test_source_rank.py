"""Tests for xner_core.analysis.source_rank (which source for a target), its figures (source_plots) and the
candidates' predictors (xner_core.features.candidates), on synthetic tidy frames and tiny WikiANN folders."""

from __future__ import annotations

import gzip
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from xner_core.analysis import source_plots
from xner_core.analysis.source_rank import (
    MEAN_RANK,
    MIN_MEASURED,
    PREDICTORS,
    rank_sources,
    ranking_runs,
    spearman,
)
from xner_core.analysis.tidy import TIDY_COLUMNS
from xner_core.errors import ConfigError
from xner_core.features import candidates as C
from xner_core.features.candidates import PairFeatures

PROTO = "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000"


def row(source: str, perturbation: str = "clean", f1: float = 80.0, drop: float = 0.0, *, target: str = "ca",
        model: str = "e5-small", protocol: str = PROTO, origin: str = "ours", seed: int = 0,
        setting: str = "transfer", scope: str = "overall", **features: float) -> dict:
    """One tidy row (F1 in points) with every TIDY_COLUMNS key."""
    out = {c: np.nan for c in TIDY_COLUMNS}
    out.update(origin=origin, pair=f"{source}→{target}", source=source, sources=source, target=target, model=model,
               setting=setting, perturbation=perturbation, scope=scope, f1=f1, clean_f1=f1 + drop, drop=drop,
               seed=seed, protocol=protocol, job_id=f"{source}-{perturbation}-{seed}-{model}")
    out.update(features)
    return out


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(TIDY_COLUMNS))


def measured_run(spec: dict[str, tuple[float, float, dict]], **kw) -> list[dict]:
    """Clean and entity_replace rows per source: {source: (clean F1, drop, features)}."""
    rows = []
    for source, (f1, drop, feats) in spec.items():
        rows.append(row(source, "clean", f1, 0.0, **feats, **kw))
        rows.append(row(source, "entity_replace", f1 - drop, drop, **feats, **kw))
    return rows


# Four sources of ca: F1 falls as the genetic distance grows, the entity overlap agrees except for pt.
FOUR = {
    "es": (82.0, 3.0, {"uriel_genetic": 0.1, "entity_token_overlap": 0.6}),
    "fr": (75.0, 1.0, {"uriel_genetic": 0.3, "entity_token_overlap": 0.5}),
    "pt": (70.0, 5.0, {"uriel_genetic": 0.4, "entity_token_overlap": 0.55}),
    "en": (60.0, 2.0, {"uriel_genetic": 0.8, "entity_token_overlap": 0.3}),
}


# ------------------------------------------------------------------------------------------------ ranking


def test_measured_sources_ranked_by_f1_and_by_drop():
    r = rank_sources(frame(*measured_run(FOUR)), "ca")
    m = r.measured
    assert list(m["source"]) == ["es", "fr", "pt", "en"]
    assert list(m["f1_rank"]) == [1, 2, 3, 4]
    assert dict(zip(m["source"], m["drop_rank"])) == {"fr": 1, "en": 2, "es": 3, "pt": 4}
    assert m.set_index("source").loc["pt", "f1_perturbed"] == pytest.approx(65.0)
    assert (r.model, r.protocol, r.perturbation) == ("e5-small", PROTO, "entity_replace")
    assert r.enough and "4 measured sources" in r.message


def test_ties_share_the_best_rank_and_are_ordered_by_drop_then_code():
    spec = {"fr": (80.0, 2.0, {}), "es": (80.0, 2.0, {}), "it": (80.0, 1.0, {}), "en": (70.0, 0.5, {})}
    m = rank_sources(frame(*measured_run(spec)), "ca").measured
    assert list(m["source"]) == ["it", "es", "fr", "en"]
    assert list(m["f1_rank"]) == [1, 1, 1, 4]
    assert list(m["drop_rank"]) == [2, 3, 3, 1]


def test_seeds_are_averaged_and_runs_of_other_protocols_are_not_mixed():
    rows = [row("es", f1=80.0, seed=0), row("es", f1=84.0, seed=1), row("fr", f1=70.0),
            row("it", f1=99.0, protocol="other"), row("pt", f1=50.0, origin="published", model="mbert",
                                                        protocol="study")]
    r = rank_sources(frame(*rows), "ca", model="e5-small", protocol=PROTO)
    m = r.measured.set_index("source")
    assert list(m.index) == ["es", "fr"]
    assert m.loc["es", "f1"] == pytest.approx(82.0) and m.loc["es", "runs"] == 2
    assert r.perturbation is None and m["drop"].isna().all()  # only clean rows: no drop to rank by
    runs = ranking_runs(frame(*rows), "ca")
    assert list(zip(runs["model"], runs["protocol"], runs["sources"])) == [
        ("e5-small", PROTO, 2), ("e5-small", "other", 1), ("mbert", "study", 1)]


def test_multi_source_rows_other_targets_and_scopes_are_not_measured_sources():
    rows = [row("es"), row("es,fr", f1=90.0), row("fr", target="an"), row("it", scope="PER"),
            row("pt", setting="multi_source")]
    rows[1]["sources"] = "es,fr"
    assert list(rank_sources(frame(*rows), "ca").measured["source"]) == ["es"]


def test_spearman_picks_the_predictor_and_its_direction():
    r = rank_sources(frame(*measured_run(FOUR)), "ca")
    c = r.correlations.set_index(["predictor", "outcome"])
    gen = c.loc[("uriel_genetic", "F1")]
    assert gen["rho"] == pytest.approx(-1.0) and gen["n"] == 4
    assert gen["p"] == pytest.approx(2 / 24)  # exact: 2 of the 24 orderings reach |rho| = 1
    assert gen["expected"] == "-" and gen["agrees"] and gen["top_pick"] == "es" and gen["picks_best"]
    ent = c.loc[("entity_token_overlap", "F1")]
    assert ent["rho"] == pytest.approx(0.8) and ent["agrees"] and ent["expected"] == "+"
    assert ("entity_token_overlap", "drop") in c.index and c.loc[("uriel_genetic", "drop"), "agrees"] is None
    assert "o_word_overlap" not in set(r.correlations["predictor"])  # no values: no row
    assert set(r.correlations["direction"]) <= {"larger = better", "smaller = closer = better"}


def test_spearman_against_scipy_for_more_points():
    from scipy import stats

    x = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.4, 0.8, 0.6, 0.05]
    y = [3, 1, 4, 1.5, 9, 2, 6, 5, 3.5, 8]
    rho, p, n, method = spearman(x, y)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic) and n == 10 and method == "Fisher z"
    rho5, p5, n5, method5 = spearman(x[:5], y[:5])
    assert method5.startswith("exact") and n5 == 5
    every = [stats.spearmanr(x[:5], perm).statistic for perm in itertools.permutations(y[:5])]
    assert p5 == pytest.approx(np.mean(np.abs(every) >= abs(rho5) - 1e-12))
    assert math.isnan(spearman([1, 2], [3, 4])[0]) and math.isnan(spearman([1, 1, 1], [1, 2, 3])[1])


def test_too_few_measured_sources_say_so():
    two = {k: FOUR[k] for k in ("es", "fr")}
    r = rank_sources(frame(*measured_run(two)), "ca")
    assert not r.enough and r.correlations.empty and len(r.measured) == 2 < MIN_MEASURED
    assert "Only 2 measured sources" in r.message and f"at least {MIN_MEASURED}" in r.message
    one = rank_sources(frame(*measured_run({"es": FOUR["es"]})), "ca")
    assert "Only 1 measured source for ca" in one.message and "(es)" in one.message
    none = rank_sources(frame(*measured_run(FOUR)), "an")
    assert none.measured.empty and none.model is None and "No measured transfer into an" in none.message


def test_missing_predictors_are_filled_from_features_and_marked():
    spec = dict(FOUR)
    spec["pt"] = (70.0, 5.0, {"uriel_genetic": 0.4})  # no entity overlap in the rows
    feats = [PairFeatures("pt", "ca", {"entity_token_overlap": 0.58, "uriel_genetic": 0.99}, 20000)]
    bare = rank_sources(frame(*measured_run(spec)), "ca").measured.set_index("source")
    assert math.isnan(bare.loc["pt", "entity_token_overlap"]) and bare.loc["pt", "n_predictors"] == 1
    m = rank_sources(frame(*measured_run(spec)), "ca", features=feats).measured.set_index("source")
    assert m.loc["pt", "entity_token_overlap"] == pytest.approx(0.58)
    assert m.loc["pt", "filled"] == "entity_token_overlap"
    assert m.loc["pt", "uriel_genetic"] == pytest.approx(0.4)  # the row's own value wins
    assert m.loc["es", "filled"] == ""


def test_shortlist_ranks_unmeasured_candidates_by_the_predictors():
    feats = [PairFeatures("gl", "ca", {"uriel_genetic": 0.2, "entity_token_overlap": 0.7}, 15000),
             PairFeatures("it", "ca", {"uriel_genetic": 0.3, "entity_token_overlap": 0.4}, 20000),
             PairFeatures("ru", "ca", {"uriel_genetic": 0.9, "entity_token_overlap": 0.1}, 20000),
             PairFeatures("oc", "ca", {"uriel_genetic": 0.1}, 100),
             PairFeatures("es", "ca", {"uriel_genetic": 0.1}, 20000),  # measured: not a candidate
             PairFeatures("fr", "an", {"uriel_genetic": 0.0}, 20000)]  # another target: ignored
    r = rank_sources(frame(*measured_run({"es": FOUR["es"]})), "ca", features=feats)
    s = r.shortlist
    assert r.by == MEAN_RANK
    # mean ranks: gl (2 + 1) / 2, it (3 + 2) / 2, oc (1 + 4: no entity overlap ranks below the three that have
    # one) / 2, ru (4 + 3) / 2; it and oc tie and are ordered by code
    assert list(s["source"]) == ["gl", "it", "oc", "ru"]
    assert list(s["score"]) == [1.5, 2.5, 2.5, 3.5] and list(s["predicted_rank"]) == [1, 2, 2, 4]
    assert list(s["n_predictors"]) == [2, 2, 1, 2]
    by_gen = rank_sources(frame(*measured_run({"es": FOUR["es"]})), "ca", features=feats, by="uriel_genetic").shortlist
    assert list(by_gen["source"]) == ["oc", "gl", "it", "ru"] and list(by_gen["predicted_rank"]) == [1, 2, 3, 4]
    by_ent = rank_sources(frame(*measured_run({"es": FOUR["es"]})), "ca", features=feats,
                          by="entity_token_overlap").shortlist
    assert list(by_ent["source"]) == ["gl", "it", "ru", "oc"] and math.isnan(by_ent["predicted_rank"].iloc[-1])
    assert by_ent.set_index("source").loc["oc", "train_sentences"] == 100


def test_unknown_names_are_refused_with_the_choices():
    tidy = frame(*measured_run(FOUR))
    with pytest.raises(ConfigError, match="unknown language 'xx'"):
        rank_sources(tidy, "xx")
    with pytest.raises(ConfigError, match="model 'bert'.*e5-small"):
        rank_sources(tidy, "ca", model="bert", protocol=PROTO)
    with pytest.raises(ConfigError, match="protocol 'nope'.*study"):
        rank_sources(tidy, "ca", model="e5-small", protocol="nope")
    with pytest.raises(ConfigError, match="'person_swap' was not run.*entity_replace"):
        rank_sources(tidy, "ca", perturbation="person_swap")
    with pytest.raises(ConfigError, match="ranking 'best'.*mean_rank"):
        rank_sources(tidy, "ca", by="best")


def test_as_dict_is_strict_json():
    r = rank_sources(frame(*measured_run(FOUR)), "ca", features=[PairFeatures("gl", "ca", {"uriel_genetic": 0.2})])
    payload = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert payload["measured"][0]["source"] == "es" and payload["shortlist"][0]["source"] == "gl"
    assert payload["shortlist"][0]["entity_token_overlap"] is None
    assert [p["column"] for p in payload["predictors"]] == [p.column for p in PREDICTORS]


def test_figures():
    r = rank_sources(frame(*measured_run(FOUR)), "ca",
                     features=[PairFeatures("gl", "ca", {"uriel_genetic": 0.2, "entity_token_overlap": 0.7}),
                               PairFeatures("it", "ca", {"uriel_genetic": 0.3, "entity_token_overlap": 0.4})])
    fig = source_plots.measured_vs_predictors(r)
    traces = {t.meta["predictor"]: t for t in fig.data}
    assert set(traces) == {"entity_token_overlap", "uriel_genetic"}
    assert list(traces["uriel_genetic"].y) == [82.0, 75.0, 70.0, 60.0]
    assert any("rho -1.00" in a.text and "smaller" in a.text for a in fig.layout.annotations)
    short = source_plots.shortlist_ranks(r)
    kinds = [t.meta["kind"] for t in short.data]
    assert kinds.count("predictor") == 2 and "mean_rank" in kinds
    assert list(short.data[-1].y) == ["gl", "it"]
    one = rank_sources(frame(*measured_run({"es": FOUR["es"]})), "ca")
    assert source_plots.measured_vs_predictors(one) is None and source_plots.shortlist_ranks(one) is None


# ------------------------------------------------------------------------------------------------ candidates


def _write_split(root, lang: str, split: str, sentences: list[list[tuple[str, str]]]) -> None:
    folder = root / lang
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join("\n".join(f"{lang}:{tok}\t{tag}" for tok, tag in s) for s in sentences) + "\n"
    (folder / f"{split}.gz").write_bytes(gzip.compress(text.encode("utf-8")))


@pytest.fixture
def tiny_wikiann(tmp_path, monkeypatch):
    """Four languages: target ca, sources es (shares Madrid), fr (shares nothing), it (no train split)."""
    root = tmp_path / "wikiann"
    madrid = [("Madrid", "B-LOC"), ("és", "O"), ("gran", "O")]
    _write_split(root, "ca", "test", [madrid, [("Joan", "B-PER"), ("viu", "O")]])
    _write_split(root, "es", "train", [[("Madrid", "B-LOC"), ("es", "O")], [("Juan", "B-PER")]])
    _write_split(root, "es", "test", [[("Madrid", "B-LOC")]])
    _write_split(root, "fr", "train", [[("Paris", "B-LOC"), ("est", "O")]])
    _write_split(root, "fr", "test", [[("Paris", "B-LOC")]])
    _write_split(root, "it", "test", [[("Roma", "B-LOC")]])
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))
    distances = {"es": 0.1, "fr": 0.3, "it": 0.2}
    monkeypatch.setattr(C, "_uriel_values", lambda s, t: {"uriel_genetic": distances.get(s), "uriel_syntactic": None,
                                                          "uriel_geographic": None})
    return root


def test_candidate_features_measure_and_cache(tiny_wikiann, monkeypatch):
    assert C.candidate_sources("ca", tiny_wikiann) == ["es", "fr"]  # it has no train split
    got = C.candidate_features("ca", data_dir=tiny_wikiann)
    assert [f.source for f in got.features] == ["es", "fr"] and got.considered == 2 and got.problem is None
    es = got.features[0]
    assert es.values["entity_token_overlap"] == pytest.approx(0.5)  # Madrid/B-LOC: 1 of the 2 target entity lines
    assert es.values["uriel_genetic"] == 0.1 and es.train_sentences == 2
    assert got.features[1].values["entity_token_overlap"] == 0.0
    assert len(list((tiny_wikiann.parent / "cache" / "source_rank").glob("*.json"))) == 2

    def boom(*a, **k):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr("xner_core.features.overlap.overlap_features", boom)
    again = C.candidate_features("ca", data_dir=tiny_wikiann)
    assert [f.values for f in again.features] == [f.values for f in got.features]


def test_candidate_features_cut_include_and_problems(tiny_wikiann):
    one = C.candidate_features("ca", max_candidates=1, data_dir=tiny_wikiann)
    assert [f.source for f in one.features] == ["es"]  # the closest by URIEL
    assert "the 1 of 2 candidates closest to ca" in one.preselected_by
    inc = C.candidate_features("ca", max_candidates=1, include=["fr", "it"], data_dir=tiny_wikiann)
    assert [f.source for f in inc.features] == ["fr", "es"] and inc.considered == 1  # it: no train, skipped
    missing = C.candidate_features("es", data_dir=tiny_wikiann / "nowhere")
    assert missing.features == () and "no local WikiANN test split for 'es'" in missing.problem
    with pytest.raises(ConfigError, match="max_candidates"):
        C.candidate_features("ca", max_candidates=-1, data_dir=tiny_wikiann)
