"""One model against another on the same test sentences (`xner_core.analysis.paired`): which jobs are paired and
what the paired bootstrap says."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xner_core.analysis.paired import (
    PAIRED_COLUMNS,
    TRAINED_AGAIN,
    comparison_of_method,
    comparison_pairs,
    mark_trained_again,
    paired_difference,
    paired_differences,
    paired_rows,
    paired_summary,
    pairs_without_paired_test,
    read_paired_differences,
    reproduces,
    retrained_jobs,
    same_compute,
    with_same_code,
)
from xner_core.analysis.tidy import PLAIN, read_reference_tables, tidy_results
from xner_core.corpus.languages import reference_pairs
from xner_core.errors import DataError
from xner_core.experiments.store import COLUMN_NAMES


def _row(**kw) -> dict:
    row = {c: None for c in COLUMN_NAMES}
    row.update(scope="overall", model="e5-small", target="ca", perturbation="clean", seed=1, clean_f1=0.8, drop=0.0,
               options=json.dumps({"epochs": 1}), data_protocol="paper-resplit")
    row.update(kw)
    return row


def _tidy(rows: list[dict]) -> pd.DataFrame:
    t = read_reference_tables()
    return tidy_results(t["published"], pd.DataFrame(rows), t["overlap"], t["uriel"], reference_pairs())


def _preds(pred_tags: list[list[str]]) -> list[dict]:
    gold = [["B-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"]] * 40
    return [{"id": f"s{i}", "gold": g, "pred": p} for i, (g, p) in enumerate(zip(gold, pred_tags))]


GOLD = [["B-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"]] * 40


def _measured(pairs: pd.DataFrame, store: dict[str, list[dict]]) -> pd.DataFrame:
    """The pairs as if each stored job's row had been scored from those predictions (its F1 theirs)."""
    from xner_core.metrics.scores import score

    out = pairs.copy()
    for side in ("candidate", "baseline"):
        for i, job in out[f"{side}_job"].items():
            if job in store:
                gold, pred = [s["gold"] for s in store[job]], [s["pred"] for s in store[job]]
                out.loc[i, f"{side}_f1"] = 100 * score(gold, pred).overall.f1
    return out


def test_a_better_candidate_is_a_positive_difference_whose_interval_and_p_agree():
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40  # finds 1 of 3 entities
    d = paired_difference(_preds(worse), _preds(GOLD), n_resamples=500)
    assert d.diff == pytest.approx(100.0 - 50.0)  # F1 1.0 against P 1.0, R 1/3 -> F1 0.5
    assert 0 < d.low <= d.diff <= d.high and d.p < 0.05
    assert d.n_sentences == 120 and d.n_resamples == 500
    back = paired_difference(_preds(GOLD), _preds(worse), n_resamples=500)
    assert back.diff == pytest.approx(-d.diff) and back.high < 0 and back.p < 0.05
    same = paired_difference(_preds(GOLD), _preds(GOLD), n_resamples=200)
    assert (same.diff, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0) and same.same_sentences


def test_it_says_when_the_two_models_were_scored_on_different_versions_of_the_sentences():
    tokens = [{"tokens": ["Ana", "canta"]}, {"tokens": ["en", "Lleida"]}, {"tokens": ["la", "ONU"]}] * 40
    mine = [{**p, **t} for p, t in zip(_preds(GOLD), tokens)]
    theirs = [dict(p) for p in mine]
    assert paired_difference(mine, theirs, n_resamples=50).same_sentences
    theirs[4] = {**theirs[4], "tokens": ["en", "Girona"]}  # e.g. P1 replaced an entity only the other model saw
    assert not paired_difference(mine, theirs, n_resamples=50).same_sentences


def test_jobs_over_different_sentences_are_refused_with_where_they_differ():
    a = _preds(GOLD)
    b = [dict(s) for s in a]
    b[7] = {**b[7], "id": "other"}
    with pytest.raises(DataError, match="first difference at position 7"):
        paired_difference(a, b)
    with pytest.raises(DataError, match="120 and 119 sentences"):
        paired_difference(a, a[:-1])


def _grid_rows() -> list[dict]:
    capped = json.dumps({"epochs": 1, "max_steps": 1000})
    return [
        _row(job_id="t-es", sources="es", setting="transfer", f1=0.80, train_steps=1701),
        _row(job_id="t-fr", sources="fr", setting="transfer", f1=0.70, train_steps=1701),
        _row(job_id="t-it", sources="it", setting="transfer", f1=0.90, train_steps=1701),  # not a teacher of es+fr
        _row(job_id="t-es-p1", sources="es", setting="transfer", perturbation="entity_replace", f1=0.60),
        _row(job_id="t-fr-p1", sources="fr", setting="transfer", perturbation="entity_replace", f1=0.65),
        _row(job_id="s-esfr", sources="es,fr", setting="distill", f1=0.82, train_steps=1000),
        _row(job_id="s-esfr-p1", sources="es,fr", setting="distill", perturbation="entity_replace", f1=0.66),
        _row(job_id="s-esfr-2", sources="es,fr", setting="distill", f1=0.81, seed=2),  # no teachers at seed 2
        _row(job_id="m-esfr", sources="es,fr", setting="multi_source", f1=0.83, train_steps=3401),
        _row(job_id="m-esfr-1k", sources="es,fr", setting="multi_source", options=capped, f1=0.79, train_steps=1000),
        _row(job_id="tapt-es", sources="es", setting="tapt", f1=0.81, train_steps=1701),
        _row(job_id="n-ca", sources="", setting="native", f1=0.95),
    ]


def test_each_candidate_is_paired_with_its_baseline_of_the_same_run_seed_and_perturbation():
    pairs = comparison_pairs(_tidy(_grid_rows()))
    got = {(r.comparison, r.candidate_job): r.baseline_job for r in pairs.itertuples()}
    assert got == {
        ("student_vs_best_teacher", "s-esfr"): "t-es",  # es (80) beats fr (70); it (90) is no teacher of es+fr
        # fr scores higher under P1, but the best teacher is the clean test's best (es), held to each perturbation
        ("student_vs_best_teacher", "s-esfr-p1"): "t-es-p1",
        ("student_vs_multi_source", "s-esfr"): "m-esfr-1k",  # the multi-source model with the student's 1,000 steps
        ("multi_source_vs_best_single", "m-esfr"): "t-es",  # the step-capped one is not held to the full recipe
        ("tapt_vs_plain", "tapt-es"): "t-es",
    }
    row = pairs[pairs["candidate_job"] == "tapt-es"].iloc[0]
    assert (row["candidate"], row["baseline"], row["candidate_f1"], row["baseline_f1"]) == (
        "tapt es", "transfer es", pytest.approx(81.0), pytest.approx(80.0))


def test_paired_differences_score_what_has_predictions_here_and_skip_the_rest(tmp_path):
    pairs = comparison_pairs(_tidy(_grid_rows()))
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40
    store = {"t-es": _preds(worse), "s-esfr": _preds(GOLD), "m-esfr-1k": _preds(worse)}
    reads: list[str] = []

    def load(job: str):
        reads.append(job)
        return store.get(job)

    table = paired_differences(_measured(pairs, store), load, n_resamples=200)
    assert sorted(reads) == sorted(set(reads))  # each job's predictions read once, however many pairs use them
    assert list(table.columns) == list(PAIRED_COLUMNS)
    assert set(zip(table["comparison"], table["candidate_job"])) == {
        ("student_vs_best_teacher", "s-esfr"), ("student_vs_multi_source", "s-esfr")}
    assert table["diff"].tolist() == pytest.approx([50.0, 50.0]) and (table["p"] < 0.05).all()
    path = tmp_path / "paired.csv"
    table.to_csv(path, index=False)
    back = read_paired_differences(path)
    cols = ["candidate_job", "diff", "seed"]
    assert back[cols].values.tolist() == table[cols].values.tolist()
    assert read_paired_differences(tmp_path / "absent.csv").empty
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a paired-differences table"):
        read_paired_differences(tmp_path / "bad.csv")


def test_a_pair_whose_predictions_are_gone_keeps_its_earlier_measurement_and_holm_is_taken_again():
    # the cache is machine-local: the committed table keeps what was measured; a fresh cache measures the rest
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40
    everything = {"t-es": _preds(worse), "s-esfr": _preds(GOLD), "t-es-p1": _preds(worse),
                  "s-esfr-p1": _preds(worse), "tapt-es": _preds(GOLD)}
    pairs = _measured(comparison_pairs(_tidy(_grid_rows())), everything)
    first = {k: everything[k] for k in ("t-es", "s-esfr", "t-es-p1", "s-esfr-p1")}
    before = paired_differences(pairs, first.get, n_resamples=200)
    assert before.attrs["carried"] == 0 and len(before) == 2
    # later, on another machine: only the TAPT pair's predictions exist; the students' two tests are carried
    later = {k: everything[k] for k in ("t-es", "tapt-es")}
    after = paired_differences(pairs, later.get, n_resamples=200, previous=before)
    assert after.attrs["carried"] == 2 and after.attrs["stale"] == []
    got = after.set_index(["comparison", "candidate_job"])
    was = before.set_index(["comparison", "candidate_job"])
    for key in was.index:
        assert got.loc[key, ["diff", "low", "high", "p", "n_sentences"]].tolist() == \
            was.loc[key, ["diff", "low", "high", "p", "n_sentences"]].tolist()
    assert got.loc[("tapt_vs_plain", "tapt-es"), "diff"] == pytest.approx(50.0)
    # measured again with the predictions at hand, a carried pair gives the very same numbers (seeded bootstrap)
    again = paired_differences(pairs, first.get, n_resamples=200)
    key = ("student_vs_best_teacher", "s-esfr")
    assert again.set_index(["comparison", "candidate_job"]).loc[key, "p"] == was.loc[key, "p"]
    # a row measured again since (its F1 changed) no longer carries the earlier test
    moved = pairs.copy()
    moved.loc[moved["candidate_job"] == "s-esfr", "candidate_f1"] += 1.0
    assert set(paired_differences(moved, {}.get, n_resamples=200, previous=before)["candidate_job"]) == {"s-esfr-p1"}
    # another resampling count is another measurement: not carried
    assert paired_differences(pairs, {}.get, n_resamples=300, previous=before).empty
    # Holm runs over the family as it stands: two clean tests of one family, carried or not, give p_holm = 2 p
    fam = before.assign(comparison="student_vs_best_teacher", perturbation="clean")
    fam.loc[:, "p"] = [0.01, 0.02]
    pairs2 = pairs[pairs["candidate_job"].isin(fam["candidate_job"])].assign(perturbation="clean")
    pairs2 = pairs2.assign(comparison="student_vs_best_teacher")
    held = paired_differences(pairs2, {}.get, n_resamples=200, previous=fam)
    assert sorted(held["p_holm"].tolist()) == pytest.approx([0.02, 0.02]) and set(held["family_size"]) == {2}


def test_predictions_that_do_not_reproduce_their_rows_f1_are_never_paired_with_that_row():
    # the same configuration trained again (another code version) overwrites the job's predictions in the cache;
    # its committed row is the first model's: pairing the new predictions with that row would mix two measurements
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40
    first = {"t-es": _preds(worse), "tapt-es": _preds(GOLD)}
    pairs = _measured(comparison_pairs(_tidy(_grid_rows())), first)
    before = paired_differences(pairs, first.get, n_resamples=200)
    retrained = {"t-es": _preds(GOLD), "tapt-es": _preds(GOLD)}  # the plain model again: now as good as TAPT
    after = paired_differences(pairs, retrained.get, n_resamples=200, previous=before)
    assert after.attrs["stale"] == ["t-es"] and after.attrs["carried"] == 1
    row = after.set_index("candidate_job").loc["tapt-es"]
    assert row["diff"] == pytest.approx(50.0) and row["baseline_f1"] == pytest.approx(50.0)  # the first measurement
    assert paired_differences(pairs, retrained.get, n_resamples=200).empty  # and none without it
    assert reproduces(_preds(worse), 50.0) and not reproduces(_preds(worse), 50.1)
    assert not reproduces(_preds(worse), float("nan"))


def test_a_similarity_weighted_student_is_its_own_candidate_and_is_tested_against_the_uniform_one():
    sim = json.dumps({"epochs": 1, "distill_weights": "similarity"})
    rows = [*_grid_rows(), _row(job_id="s-esfr-sim", sources="es,fr", setting="distill", options=sim, f1=0.84,
                                train_steps=1000)]
    pairs = comparison_pairs(_tidy(rows))
    mine = pairs[pairs["candidate_job"] == "s-esfr-sim"]
    assert dict(zip(mine["comparison"], mine["baseline_job"])) == {
        "student_vs_best_teacher": "t-es", "student_vs_multi_source": "m-esfr-1k", "similarity_vs_uniform": "s-esfr"}
    assert set(mine["candidate"]) == {"distill es+fr · similarity weights"}
    assert mine.loc[mine["comparison"] == "similarity_vs_uniform", "baseline"].tolist() == ["distill es+fr"]
    # the uniform student's own pairs are unchanged: it is never compared with the similarity one
    uniform = pairs[pairs["candidate_job"] == "s-esfr"]
    assert set(uniform["comparison"]) == {"student_vs_best_teacher", "student_vs_multi_source"}


def test_holm_corrects_within_a_family_of_like_tests_and_leaves_other_families_alone():
    rows = [*_grid_rows(),
            _row(job_id="s-es", sources="es", setting="distill", f1=0.81, train_steps=1000),
            _row(job_id="s-esfr-an", sources="es,fr", setting="distill", target="an", f1=0.70, train_steps=1000),
            _row(job_id="t-es-an", sources="es", setting="transfer", target="an", f1=0.69, train_steps=1701)]
    pairs = comparison_pairs(_tidy(rows))
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40
    slightly = [["B-PER", "O"], ["B-LOC", "O"], ["O", "O"]] * 39 + [["B-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"]]
    store = {"t-es": _preds(worse), "s-esfr": _preds(GOLD), "s-es": _preds(slightly), "m-esfr-1k": _preds(worse),
             "t-es-an": _preds(slightly), "s-esfr-an": _preds(GOLD)}
    table = paired_differences(_measured(pairs, store), store.get, n_resamples=300).set_index(
        ["comparison", "candidate_job"])
    family = table.loc["student_vs_best_teacher"]
    assert set(family.index) == {"s-esfr", "s-es", "s-esfr-an"}  # clean, seed 1, all targets: one family of 3
    assert (family["family_size"] == 3).all()
    assert (family["p_holm"] >= family["p"]).all() and (family["p_holm"] <= 1).all()
    smallest = family["p"].idxmin()
    assert family.loc[smallest, "p_holm"] == pytest.approx(min(1.0, 3 * family.loc[smallest, "p"]))
    alone = table.loc[("student_vs_multi_source", "s-esfr")]  # a family of one: Holm changes nothing
    assert alone["family_size"] == 1 and alone["p_holm"] == alone["p"]


def test_a_set_of_like_tests_is_summed_up_by_where_its_intervals_lie_and_what_holm_keeps():
    rows = pd.DataFrame({"low": [0.2, -1.0, -3.0, 0.5], "high": [4.0, 2.0, -0.1, 3.0], "p": [0.01, 0.5, 0.04, 0.002],
                         "p_holm": [0.03, 1.0, 0.08, 0.008]})
    assert paired_summary(rows) == ("4 tests: 2 intervals above 0, 1 below, 1 spans 0; after Holm's correction 2 stay "
                                    "below 0.05")
    assert paired_summary(rows.iloc[[1]].drop(columns="p_holm")) == "1 test: 0 intervals above 0, 0 below, 1 spans 0"
    assert paired_summary(rows.iloc[:0]) == "no tests"


def test_a_robust_model_is_paired_with_plain_transfer_of_its_source_and_named_by_its_method():
    pgd = json.dumps({"epochs": 1, "robust": "pgd", "robust_epsilon": 0.1})
    rows = [*_grid_rows(), _row(job_id="pgd-es", sources="es", setting="transfer", options=pgd, f1=0.81,
                                train_steps=1701)]
    pairs = comparison_pairs(_tidy(rows))
    mine = pairs[pairs["candidate_job"] == "pgd-es"]
    assert mine[["comparison", "baseline_job", "method", "candidate", "baseline"]].values.tolist() == [
        ["robust_vs_plain", "t-es", "pgd · ε 0.1", "transfer es · pgd · ε 0.1", "transfer es"]]
    assert [comparison_of_method(m) for m in ("pgd · ε 0.1", "tapt", "lora", PLAIN)] == [
        "robust_vs_plain", "tapt_vs_plain", None, None]
    # the robust model is nobody's teacher or best single source: the students still pair with plain es
    assert set(pairs.loc[pairs["comparison"] == "student_vs_best_teacher", "baseline_job"]) == {"t-es", "t-es-p1"}
    both = {"pgd-es": _preds(GOLD), "t-es": _preds(GOLD)}
    assert paired_rows(paired_differences(_measured(pairs, both), both.get,
                                          n_resamples=50), ("robust_vs_plain",), method="pgd · ε 0.1"
                       )["candidate"].tolist() == ["transfer es · pgd · ε 0.1"]


def test_the_pairs_of_a_method_comparison_without_a_paired_test_are_named_in_order():
    comparison = pd.DataFrame({"pair": ["fr→br", "fr→br", "es→an", "it→scn", "es→an"],
                               "target": ["br", "br", "an", "scn", "an"], "seed": [1, 1, 1, 1, 2],
                               "perturbation": ["clean", "entity_replace", "clean", "clean", "clean"]})
    paired = pd.DataFrame({"target": ["an"], "seed": [1]})
    assert pairs_without_paired_test(comparison, paired) == ["fr→br", "it→scn", "es→an"]  # an at seed 2 too
    assert pairs_without_paired_test(comparison, paired.iloc[:0]) == ["fr→br", "es→an", "it→scn"]
    assert pairs_without_paired_test(comparison.iloc[:0], paired) == []


def test_tests_against_a_model_trained_again_are_labelled_and_shown_beside_the_committed_ones():
    # committed: the TAPT model against the committed plain row (its predictions were at hand then); same code: the
    # same two jobs, but the plain row is a retraining (another F1), and a pair the committed table could not test
    worse = [["B-PER", "O"], ["O", "O"], ["O", "O"]] * 40
    everything = {"t-es": _preds(worse), "s-esfr": _preds(GOLD), "t-es-p1": _preds(worse),
                  "s-esfr-p1": _preds(worse), "tapt-es": _preds(GOLD)}
    pairs = _measured(comparison_pairs(_tidy(_grid_rows())), everything)
    committed = paired_differences(pairs, everything.get, n_resamples=100)
    retrained = {"t-es"}
    same = mark_trained_again(committed, retrained)
    labelled = same[same["baseline_job"] == "t-es"]
    assert len(labelled) and all(b.endswith(TRAINED_AGAIN) for b in labelled["baseline"])
    assert not any(c.endswith(TRAINED_AGAIN) for c in same["candidate"])
    assert mark_trained_again(same, retrained)["baseline"].tolist() == same["baseline"].tolist()  # marked once
    # the very same measurement (same jobs, same F1s) is not shown twice ...
    assert with_same_code(committed, same).equals(committed)
    # ... another training of the baseline (its F1 moved) is shown after the committed tests, labelled
    moved = same.copy()
    moved.loc[moved["baseline_job"] == "t-es", "baseline_f1"] += 1.0
    both = with_same_code(committed, moved)
    assert len(both) == len(committed) + len(labelled)
    assert both.iloc[:len(committed)].equals(committed)
    assert all(b.endswith(TRAINED_AGAIN) for b in both.iloc[len(committed):]["baseline"])
    # either table alone is itself
    empty = read_paired_differences("/nonexistent.csv")
    assert with_same_code(committed, empty).equals(committed)
    assert with_same_code(empty, moved).equals(moved.reset_index(drop=True))


def test_a_student_is_paired_with_the_multi_source_model_of_its_steps_up_to_rounding_and_no_other():
    # ca: the student takes 3 x 1,701 = 5,103 steps; the es+fr+it model one epoch over three sources' batches, 5,102
    rows = [_row(job_id="t-es", sources="es", setting="transfer", f1=0.80, train_steps=1701),
            _row(job_id="s3", sources="es,fr,it", setting="distill", f1=0.82, train_steps=5103),
            _row(job_id="m3", sources="es,fr,it", setting="multi_source", f1=0.84, train_steps=5102),
            _row(job_id="s2", sources="es,fr", setting="distill", f1=0.81, train_steps=5103),
            _row(job_id="m2", sources="es,fr", setting="multi_source", f1=0.83, train_steps=3401),
            _row(job_id="s4", sources="es,fr,it,pt", setting="distill", f1=0.81, train_steps=5103),
            _row(job_id="m4", sources="es,fr,it,pt", setting="multi_source", f1=0.83, train_steps=5140)]  # 0.7 % off
    pairs = comparison_pairs(_tidy(rows))
    equal = pairs[pairs["comparison"] == "student_vs_multi_source"]
    assert list(zip(equal["candidate_job"], equal["baseline_job"])) == [("s3", "m3")]
    assert same_compute(pd.Series([5102, 5103, 5108, 5109, None]), 5103).tolist() == [True, True, True, False,
                                                                                     False]
    assert not same_compute(pd.Series([1000]), None).any()


def test_only_a_stored_job_that_replaces_a_committed_row_with_another_f1_counts_as_trained_again():
    committed = pd.DataFrame([_row(job_id="t-es", f1=0.8105), _row(job_id="t-fr", f1=0.7908),
                              _row(job_id="t-es", scope="PER", f1=0.5)])
    stored = pd.DataFrame([_row(job_id="t-es", f1=0.7986),   # trained again: another model
                           _row(job_id="t-fr", f1=0.79081),  # imported: the committed measurement
                           _row(job_id="s-new", f1=0.82)])   # a new job
    assert retrained_jobs(committed, stored) == {"t-es"}
    assert retrained_jobs(committed, stored.iloc[:0]) == set() == retrained_jobs(committed.iloc[:0], stored)
