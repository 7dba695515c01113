"""Tests for `xner sources rank` (xner_core/cli/sources.py): its --json output against `rank_sources`, the text
report, and user errors as exit code 2 with one `error: ...` line. Offline: a results file written here, a tiny
WikiANN folder (tests/test_source_rank.py's fixture) and fixed URIEL distances."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_source_rank import tiny_wikiann  # noqa: F401  (fixture)

from xner_core.analysis.source_rank import rank_sources
from xner_core.analysis.tidy import read_reference_tables, tidy_results
from xner_core.cli.main import main
from xner_core.corpus.languages import reference_pairs
from xner_core.experiments.store import COLUMN_NAMES
from xner_core.features.candidates import candidate_features


def store_row(**kw) -> dict:
    row = {c: None for c in COLUMN_NAMES}
    row.update(job_id="j", scope="overall", config_hash="h", model="e5-small", sources="es", target="ca",
               setting="transfer", perturbation="clean", f1=0.8, clean_f1=0.8, drop=0.0)
    row.update(kw)
    return row


@pytest.fixture
def results_file(tmp_path, monkeypatch):
    """es→ca and fr→ca transfer rows, clean and entity_replace; no committed tables, an empty store."""
    monkeypatch.setenv("XNER_RESULTS", str(tmp_path / "store.duckdb"))
    (tmp_path / "committed").mkdir()
    monkeypatch.setenv("XNER_COMMITTED_RESULTS", str(tmp_path / "committed"))
    rows = []
    for src, f1, drop in (("es", 0.80, 0.05), ("fr", 0.70, 0.02)):
        rows.append(store_row(job_id=f"{src}-c", sources=src, f1=f1, clean_f1=f1))
        rows.append(store_row(job_id=f"{src}-p", sources=src, perturbation="entity_replace", f1=f1 - drop,
                              clean_f1=f1, drop=drop))
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_matches_the_core(capsys, results_file, tiny_wikiann):  # noqa: F811
    code, out, err = run(capsys, ["sources", "rank", "--target", "ca", "--results", str(results_file),
                                  "--data-dir", str(tiny_wikiann), "--json"])
    assert code == 0, err
    got = json.loads(out)
    tables = read_reference_tables()
    tidy = tidy_results(tables["published"], pd.read_csv(results_file), tables["overlap"], tables["uriel"],
                        reference_pairs())
    cands = candidate_features("ca", include=["es", "fr"], data_dir=tiny_wikiann)
    want = rank_sources(tidy, "ca", model="e5-small", features=cands.features,
                        protocol=got["protocol"]).as_dict()
    assert got["measured"] == json.loads(json.dumps(want["measured"]))
    assert [r["source"] for r in got["measured"]] == ["es", "fr"]
    assert [r["drop_rank"] for r in got["measured"]] == [2, 1]  # fr lost less
    assert got["model"] == "e5-small" and got["perturbation"] == "entity_replace"
    assert got["shortlist"] == [] and got["candidates_problem"] is None  # es and fr are measured: no candidate
    assert "Only 2 measured sources" in got["message"] and got["correlations"] == []


def test_text_report_and_list_runs(capsys, results_file, tiny_wikiann):  # noqa: F811
    args = ["sources", "rank", "--target", "ca", "--results", str(results_file), "--data-dir", str(tiny_wikiann)]
    code, out, err = run(capsys, args)
    assert code == 0, err
    assert "Only 2 measured sources for ca" in out and "Measured sources (best clean F1 first" in out
    assert "uriel_genetic smaller = closer = better" in out and "entity_token_overlap larger = better" in out
    code, out, _ = run(capsys, [*args, "--list-runs"])
    assert code == 0 and "--model e5-small" in out and "--model mbert --protocol 'study'" in out
    # --model alone picks that model's run: the study's published mbert rows
    code, out, err = run(capsys, ["sources", "rank", "--target", "ca", "--results", str(results_file), "--data-dir",
                                  str(tiny_wikiann), "--model", "mbert", "--json"])
    assert code == 0, err
    assert json.loads(out)["protocol"] == "study"


def test_shortlist_for_an_unmeasured_target(capsys, tmp_path, tiny_wikiann, monkeypatch):  # noqa: F811
    monkeypatch.setenv("XNER_RESULTS", str(tmp_path / "store.duckdb"))
    (tmp_path / "committed").mkdir()
    monkeypatch.setenv("XNER_COMMITTED_RESULTS", str(tmp_path / "committed"))
    code, out, err = run(capsys, ["sources", "rank", "--target", "it", "--data-dir", str(tiny_wikiann),
                                  "--max-candidates", "0", "--json"])
    assert code == 0, err
    got = json.loads(out)
    assert got["measured"] == [] and "No measured transfer into it" in got["message"]
    assert [r["source"] for r in got["shortlist"]] == ["es", "fr"]  # es: closer by URIEL (no entity overlap either way)
    assert got["candidates"] == "all 2 candidates with local data"


@pytest.mark.parametrize("argv, expected", [
    (["--target", "xx"], "error: target: unknown language 'xx'"),
    (["--target", "ca", "--by", "best"], "error: --by 'best' is not one of: mean_rank"),
    (["--target", "ca", "--max-candidates", "-1"], "error: --max-candidates must be 0 (all) or a positive"),
    (["--target", "ca", "--model", "bert"], "error: no run with --model bert measured ca"),
    (["--target", "ca", "--perturbation", "person_swap"], "error: perturbation 'person_swap' was not run"),
    (["--target", "ca", "--results", "rows.txt"], "error: results file"),
])
def test_user_errors(capsys, results_file, tiny_wikiann, argv, expected):  # noqa: F811
    if "--results" not in argv:
        argv = [*argv, "--results", str(results_file)]
    else:
        (results_file.parent / "rows.txt").write_text("x")
        argv = [a if a != "rows.txt" else str(results_file.parent / "rows.txt") for a in argv]
    code, out, err = run(capsys, ["sources", "rank", *argv, "--data-dir", str(tiny_wikiann)])
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), err
    assert "Traceback" not in out + err


def test_missing_results_file_and_columns(capsys, tmp_path, tiny_wikiann):  # noqa: F811
    code, _, err = run(capsys, ["sources", "rank", "--target", "ca", "--results", str(tmp_path / "none.parquet"),
                                "--data-dir", str(tiny_wikiann)])
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"model": ["e5-small"]}).to_csv(bad, index=False)
    code, _, err = run(capsys, ["sources", "rank", "--target", "ca", "--results", str(bad),
                                "--data-dir", str(tiny_wikiann)])
    assert code == 2 and "lacks column(s) sources, target" in err
