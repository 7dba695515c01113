"""Tests for the `xner` CLI (xner_core/cli/main.py): every command's `--json` output against the core function it wraps,
and user errors as exit code 2 with one `error: ...` line that says what is allowed (never a traceback).

Commands run in-process through `cli.main(argv)`. Data commands read the shared WikiANN directory (skipped without
it); train/eval/predict/models use the `tiny` model with small caps in a temporary cache, trained once per module.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from sentences import make_sentence

from xner_core.cli.main import main
from xner_core.corpus.conll import read_conll, write_conll
from xner_core.corpus.languages import get_language, reference_pairs
from xner_core.corpus.resplit import split_sizes
from xner_core.corpus.sentences import Corpus, corpus_stats
from xner_core.corpus.wikiann import available_languages, load_wikiann
from xner_core.metrics.bootstrap import bootstrap_ci
from xner_core.metrics.breakdown import error_breakdown
from xner_core.evaluation.evaluate import evaluate
from xner_core.evaluation.inputs import donor_corpus
from xner_core.evaluation.jobs import EvalOptions
from xner_core.evaluation.memo import clear_caches
from xner_core.evaluation.modelstore import model_cache, train_model
from xner_core.metrics.scores import score, scores_table
from xner_core.runs.config import make_config
from xner_core.features.overlap import overlap_features
from xner_core.perturb.apply import perturb_corpus
from xner_core.perturb.context import build_context
from xner_core.perturb.registry import PERTURBATIONS, perturbation_names

pytestmark = pytest.mark.data

# Tiny training caps: ~100 sentences train in well under a second with the tiny model.
TRAIN = ["--model", "tiny", "--source", "es", "--target", "ca", "--max-train", "100", "--max-dev", "20",
         "--batch-size", "16"]
CFG = dict(model="tiny", target="ca", setting="transfer", sources=("es",), max_train_sentences=100,
           max_dev_sentences=20, batch_size=16)


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]):
    """Run a command with --json; return its parsed stdout (asserting exit code 0)."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def run_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command that must fail as a user error; return its one `error: ...` line."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def jsonish(obj):
    """The JSON round trip of a value (tuples become lists), to compare with parsed CLI output."""
    return json.loads(json.dumps(obj, ensure_ascii=False))


@pytest.fixture(scope="module")
def data(wikiann_dir: Path) -> list[str]:
    return ["--data-dir", str(wikiann_dir)]


@pytest.fixture(scope="module")
def trained(wikiann_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A cache holding the tiny es->ca transfer model of CFG (trained through the library)."""
    cache = tmp_path_factory.mktemp("cli-cache")
    clear_caches()
    cfg = make_config(**CFG)
    lm = train_model(cfg, data_dir=wikiann_dir, cache=cache)
    return {"cache": cache, "config": cfg, "model": lm, "data": wikiann_dir,
            "args": ["--data-dir", str(wikiann_dir), "--cache-dir", str(cache)]}


# ------------------------------------------------------------------------------------------------------------ data


def test_data_stats(capsys, data, wikiann_dir):
    got = run_json(capsys, ["data", "stats", "ca", "--split", "test", *data])
    assert got == {"test": jsonish(asdict(corpus_stats(load_wikiann("ca", "test", wikiann_dir))))}
    every = run_json(capsys, ["data", "stats", "scn", *data])
    assert list(every) == list(split_sizes("scn", wikiann_dir))
    assert {s: v["sentences"] for s, v in every.items()} == split_sizes("scn", wikiann_dir)


def test_data_languages_and_pairs(capsys, data, wikiann_dir):
    langs = run_json(capsys, ["data", "languages", *data])
    assert [r["code"] for r in langs] == available_languages(wikiann_dir)
    assert langs == [jsonish(asdict(get_language(c))) for c in available_languages(wikiann_dir)]
    pairs = run_json(capsys, ["data", "pairs"])
    assert pairs == [jsonish(asdict(p)) for p in reference_pairs()] and len(pairs) == 13


def test_overlap(capsys, data, wikiann_dir):
    got = run_json(capsys, ["overlap", "es", "ca", "--limit", "300", "--no-uriel", *data])
    src = load_wikiann("es", "train", wikiann_dir, limit=300)
    tgt = load_wikiann("ca", "test", wikiann_dir, limit=300)
    assert got == {"source": "es", "target": "ca", **overlap_features(src, tgt)}


# ---------------------------------------------------------------------------------------------------- perturbations


def test_perturbations_lists_the_registry(capsys):
    rows = run_json(capsys, ["perturbations"])
    assert [r["name"] for r in rows] == perturbation_names()
    assert all(r["needs"] == list(PERTURBATIONS[r["name"]].needs) and r["title"] for r in rows)
    assert "context_noise" in [r["name"] for r in rows]


def test_perturb_report_and_file(capsys, data, wikiann_dir, tmp_path):
    out = tmp_path / "p1.conll"
    got = run_json(capsys, ["perturb", "es", "ca", "entity_replace", "--limit", "50", "--seed", "4",
                            "--out", str(out), *data])
    src = load_wikiann("es", "train", wikiann_dir)
    tgt = load_wikiann("ca", "test", wikiann_dir, limit=50)
    want = perturb_corpus("entity_replace", tgt, build_context(src, tgt, lang="ca"), seed=4)
    assert got == {"report": jsonish(want.report.as_dict()), "out": str(out)}
    assert got["report"]["sentences_eligible"] >= got["report"]["sentences_changed"] > 0
    written = read_conll(out).corpus
    assert [s.tokens for s in written] == [s.tokens for s in want.corpus]
    assert written.tags == want.corpus.tags


def test_perturb_against_capped_native_or_resplit_data(capsys, data, wikiann_dir, tmp_path):
    """--max-train / --setting / --data pick the seen data and test set a model of that config has."""
    from xner_core.corpus.resplit import paper_resplit

    tgt = load_wikiann("ca", "test", wikiann_dir, limit=60)
    cases = [
        (["--max-train", "300"], load_wikiann("es", "train", wikiann_dir, limit=300), tgt),
        (["--setting", "native", "--max-train", "400"], load_wikiann("ca", "train", wikiann_dir, limit=400), tgt),
        (["--data", "paper-resplit", "--max-train", "300"], paper_resplit("es", wikiann_dir, seed=1)[0].head(300),
         paper_resplit("ca", wikiann_dir, seed=1)[1].head(60)),
    ]
    reports = []
    for options, seen, test in cases:
        out = tmp_path / "p.conll"
        got = run_json(capsys, ["perturb", "es", "ca", "entity_replace", "--limit", "60", "--out", str(out),
                                *options, *data])
        want = perturb_corpus("entity_replace", test, build_context(seen, test, lang="ca"), seed=0)
        assert got["report"] == jsonish(want.report.as_dict())
        written = read_conll(out).corpus
        assert [s.tokens for s in written] == [s.tokens for s in want.corpus] and written.tags == want.corpus.tags
        reports.append(got["report"])
    full = run_json(capsys, ["perturb", "es", "ca", "entity_replace", "--limit", "60", *data])["report"]
    # 300 source sentences share fewer entity strings with the ca test set than the whole 20k split
    assert reports[0]["entities_eligible"] < full["entities_eligible"]
    assert run_error(capsys, ["perturb", "es", "ca", "entity_replace", "--setting", "multi_source", *data]).count(
        "transfer, native") == 1
    assert "--max-train" in run_error(capsys, ["perturb", "es", "ca", "entity_replace", "--max-train", "-1", *data])
    assert "paper-resplit" in run_error(capsys, ["perturb", "es", "ca", "entity_replace", "--data", "rahimi", *data])


@pytest.mark.parametrize("donor", [None, "an"])
def test_perturb_location_swap_uses_the_runner_donor_corpus(capsys, data, wikiann_dir, tmp_path, donor):
    """`xner perturb` draws names from what `xner eval` uses: evaluation.inputs.donor_corpus, default donor = target."""
    out = tmp_path / "loc.conll"
    argv = ["perturb", "es", "ca", "location_swap", "--limit", "80", "--seed", "3", "--out", str(out), *data]
    got = run_json(capsys, argv + (["--donor", donor] if donor else []))
    tgt = load_wikiann("ca", "test", wikiann_dir, limit=80)
    donor_c = donor_corpus(donor or "ca", wikiann_dir)  # the extra split, not the train split
    want = perturb_corpus("location_swap", tgt, build_context(None, tgt, donor=donor_c, lang="ca"), seed=3)
    assert got["report"] == jsonish(want.report.as_dict()) and want.report.entities_changed > 0
    written = read_conll(out).corpus
    assert [s.tokens for s in written] == [s.tokens for s in want.corpus]
    assert written.tags == want.corpus.tags


# ---------------------------------------------------------------------------------------------------------- score


def _score_files(tmp_path: Path) -> tuple[Path, Path, Corpus, Corpus]:
    gold = Corpus((make_sentence("Joan viu a Barcelona", "B-PER O O B-LOC", "ca"),
                   make_sentence("El Barça guanya", "O B-ORG O", "ca"),
                   make_sentence("Maria Puig és de Girona", "B-PER I-PER O O B-LOC", "ca")), "ca")
    pred = Corpus((make_sentence("Joan viu a Barcelona", "B-PER O O B-ORG", "ca"),
                   make_sentence("El Barça guanya", "O B-ORG O", "ca"),
                   make_sentence("Maria Puig és de Girona", "B-PER O O O B-LOC", "ca")), "ca")
    g, p = tmp_path / "gold.conll", tmp_path / "pred.conll"
    write_conll(gold, g)
    write_conll(pred, p)
    return g, p, gold, pred


def test_score(capsys, tmp_path):
    g, p, gold, pred = _score_files(tmp_path)
    got = run_json(capsys, ["score", str(g), str(p), "--bootstrap", "50", "--seed", "1"])
    assert got["scores"] == jsonish(scores_table(score(gold.tags, pred.tags)))
    assert got["errors"] == jsonish(asdict(error_breakdown(gold.tags, pred.tags)))
    assert got["f1_ci95"] == list(bootstrap_ci(gold.tags, pred.tags, n_resamples=50, seed=1))


def test_score_errors(capsys, tmp_path):
    g, p, _, _ = _score_files(tmp_path)
    bad = tmp_path / "bad.conll"
    bad.write_text("Joan\tB-PER\nviu\tB-FOO\n\n", encoding="utf-8")
    msg = run_error(capsys, ["score", str(g), str(bad)])
    assert "line 2" in msg and "B-FOO" in msg and "PER" in msg  # where, what, and the allowed tags
    msg = run_error(capsys, ["score", str(g), str(tmp_path / "missing.conll")])
    assert "missing.conll: no such file" in msg and "give an existing CoNLL file" in msg
    short = tmp_path / "short.conll"
    short.write_text("Joan\tB-PER\n\n", encoding="utf-8")
    assert "must match one to one" in run_error(capsys, ["score", str(g), str(short)])


# ------------------------------------------------------------------------------------------- user errors elsewhere


def test_unknown_language_and_perturbation(capsys, data):
    for argv in (["data", "stats", "zz", *data], ["overlap", "es", "zz", "--no-uriel", *data],
                 ["perturb", "zz", "ca", "entity_mask", *data]):
        msg = run_error(capsys, argv)
        assert "unknown language 'zz'; choose one of: af, an," in msg, msg
    msg = run_error(capsys, ["train", "--model", "tiny", "--source", "es", "--target", "zz", *data])
    assert msg.startswith("error: target: unknown language 'zz'; choose one of: af, an,")
    msg = run_error(capsys, ["perturb", "es", "ca", "nope", *data])
    assert msg == ("error: unknown perturbation 'nope'; choose one of: " + ", ".join(sorted(perturbation_names())))
    # eval checks the names before it trains anything
    msg = run_error(capsys, ["eval", *TRAIN, "--perturb", "nope", *data, "--cache-dir", "/nonexistent/never"])
    assert "unknown perturbation 'nope'; choose one of: char_noise, context_noise," in msg
    assert not Path("/nonexistent/never").exists()


def test_invalid_training_options_exit_2_with_the_rule(capsys, data):
    msg = run_error(capsys, ["train", *TRAIN, "--warmup", "1.5", *data])
    assert msg == "error: option warmup_ratio=1.5 is invalid; allowed: a number >= 0.0 and < 1.0"
    msg = run_error(capsys, ["train", *TRAIN, "--max-length", "4", *data])
    assert msg == "error: option max_length=4 is invalid; allowed: an integer >= 8"
    msg = run_error(capsys, ["train", *TRAIN, "--early-stopping", "2", "--max-dev", "0", *data])
    assert "early_stopping_patience needs a dev set" in msg
    msg = run_error(capsys, ["train", *TRAIN, "--robust", "smoothing", "--robust-rate", "0", *data])
    assert "option robust_rate=0.0 is invalid" in msg


# ------------------------------------------------------------------------------------- train / eval / predict / models


def test_train_finds_the_cached_model_and_options_change_the_hash(capsys, trained):
    got = run_json(capsys, ["train", *TRAIN, *trained["args"]])
    cfg = trained["config"]
    assert got["hash"] == cfg.hash == trained["model"].hash
    assert got["path"] == str(model_cache(trained["cache"]).path(cfg)) and Path(got["path"]).is_dir()
    # a training option given on the command line is part of the config: new hash, equal to make_config's
    warm = run_json(capsys, ["train", *TRAIN, "--warmup", "0.2", "--max-length", "64", *trained["args"]])
    want = make_config(**CFG, warmup_ratio=0.2, max_length=64)
    assert warm["hash"] == want.hash != cfg.hash
    assert model_cache(trained["cache"]).has(want)
    frozen = make_config(**CFG, freeze_embeddings=True, early_stopping_patience=1)
    assert frozen.hash != cfg.hash  # (not trained: the hash alone is what the options feed)


def test_eval_matches_runner_evaluate_and_scores_the_perturb_file(capsys, trained, tmp_path):
    args = ["--perturb", "location_swap", "--perturb-seed", "3", "--test-limit", "40", "--bootstrap", "20"]
    rows = run_json(capsys, ["eval", *TRAIN, *args, *trained["args"]])
    outcomes = evaluate(trained["config"], ["location_swap"], EvalOptions(perturb_seed=3, test_limit=40, bootstrap=20),
                        data_dir=trained["data"], cache=trained["cache"], loaded=trained["model"])
    want = [r for o in outcomes for r in o.rows]
    assert [(r["perturbation"], r["scope"]) for r in rows] == [(r["perturbation"], r["scope"]) for r in want]
    for got, exp in zip(rows, want):
        assert got == jsonish({k: exp.get(k) for k in got})
    # the file `xner perturb` writes for the same perturbation/seed (default donor) is what eval scored
    out = tmp_path / "loc.conll"
    assert main(["perturb", "es", "ca", "location_swap", "--seed", "3", "--limit", "40", "--out", str(out),
                 "--data-dir", str(trained["data"])]) == 0
    capsys.readouterr()
    scored = next(o for o in outcomes if o.job.perturbation == "location_swap").sentences
    written = read_conll(out).corpus
    assert [s.tokens for s in written] == [s.tokens for s in scored]
    assert [s.tags for s in written] == [s.tags for s in scored]


def _conll2002_file(path: Path, n: int = 25) -> tuple[Path, int]:
    """The first `n` ca test sentences as a CoNLL-2002 file: token, POS, tag, with each sentence's first O token
    tagged B-MISC; returns the path and the number of MISC entities."""
    lines = []
    misc = 0
    for s in load_wikiann("ca", "test").sentences[:n]:
        first_o = next((i for i, t in enumerate(s.tags) if t == "O"), None)
        misc += first_o is not None
        for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
            lines.append(f"{tok} {'NP' if tag != 'O' else 'X'} {'B-MISC' if i == first_o else tag}\n")
        lines.append("\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path, misc


def test_eval_on_a_users_conll2002_file(capsys, trained, tmp_path):
    path, misc = _conll2002_file(tmp_path / "ca.conll", n=20)
    assert misc > 5
    (tmp_path / "longer.conll").write_text(path.read_text(encoding="utf-8") * 2, encoding="utf-8")
    path = tmp_path / "longer.conll"  # 40 sentences, 20 scored: the counts are those of the sentences scored
    args = ["--test-file", str(path), "--perturb", "entity_mask", "--bootstrap", "20", "--test-limit", "20"]
    got = run_json(capsys, ["eval", *TRAIN, *args, *trained["args"]])
    parsed = read_conll(path, lang="ca")
    corpus = parsed.corpus.head(20)
    report = got["test_file"]
    assert report["other_types_as_O"] == {"MISC": misc} and report["mapped_entities"] == misc
    assert report["lang"] == "ca" and report["sentences"] == 20 and report["extra_columns"] == 1
    assert report["entities"] == corpus_stats(corpus).entities
    assert any(f"{2 * misc} entities of other types as O" in w for w in report["warnings"])  # the whole file
    # the same numbers as the library's evaluation of that corpus (one builder of the perturbed sentences)
    outcomes = evaluate(trained["config"], ["entity_mask"], EvalOptions(test_limit=20, bootstrap=20),
                        data_dir=trained["data"], cache=trained["cache"], loaded=trained["model"], text=corpus,
                        lang="ca")
    want = [r for o in outcomes for r in o.rows]
    rows = got["rows"]
    assert [(r["perturbation"], r["scope"]) for r in rows] == [(r["perturbation"], r["scope"]) for r in want]
    for row, exp in zip(rows, want):
        assert row == jsonish({k: exp.get(k) for k in row})
    assert {r["test_split"] for r in want} == {"user"} and rows[0]["n_sentences"] == 20
    assert outcomes[0].sentences == corpus.sentences
    # text output names the file and the count
    assert main(["eval", *TRAIN, *args, *trained["args"]]) == 0
    out = capsys.readouterr().out
    assert f"other types read as O: {misc} MISC" in out and "entity_mask" in out


def test_eval_test_file_errors(capsys, trained, tmp_path):
    path = tmp_path / "ca.conll"
    path.write_text("Joan NP B-PER\nviu X O\n\nla X O\nCopa NC B-MISC\n", encoding="utf-8")
    msg = run_error(capsys, ["eval", *TRAIN, "--test-file", str(path), "--other-types", "error", *trained["args"]])
    assert "ca.conll: line 5: entity type 'MISC' is unsupported" in msg
    msg = run_error(capsys, ["eval", *TRAIN, "--test-file", str(path), "--other-types", "x", *trained["args"]])
    assert "choose one of: o, error" in msg
    msg = run_error(capsys, ["eval", *TRAIN, "--test-file", str(path), "--store", str(tmp_path / "r.duckdb"),
                             *trained["args"]])
    assert "--store" in msg
    msg = run_error(capsys, ["eval", *TRAIN, "--lang", "ca", *trained["args"]])
    assert "--test-file" in msg
    (tmp_path / "plain.txt").write_text("Joan\nviu\n", encoding="utf-8")
    msg = run_error(capsys, ["eval", *TRAIN, "--test-file", str(tmp_path / "plain.txt"), *trained["args"]])
    assert "nothing to score" in msg


def test_predict(capsys, trained):
    from xner_core.inference.text import predict_text

    text = "Joan Miró va néixer a Barcelona ."
    got = run_json(capsys, ["predict", text, "--lang", "ca", "--model", "tiny", "--source", "es", "--max-train",
                            "100", "--max-dev", "20", "--batch-size", "16", *trained["args"]])
    lm = trained["model"]
    want = predict_text(lm.model, lm.tokenizer, text)
    assert got == {"model": lm.hash, "tokens": list(want.tokens), "tags": list(want.tags),
                   "entities": jsonish([list(e) for e in want.entities])}
    assert got["tokens"] == ["Joan", "Miró", "va", "néixer", "a", "Barcelona", "."]


def test_models_ls_rm_gc(capsys, wikiann_dir, tmp_path):
    cache = tmp_path / "cache"
    cfg = make_config(**{**CFG, "max_train_sentences": 30, "max_dev_sentences": 0})
    train_model(cfg, data_dir=wikiann_dir, cache=cache)
    args = ["--cache-dir", str(cache)]
    rows = run_json(capsys, ["models", "ls", *args])
    entries = model_cache(cache).entries()
    assert [r["hash"] for r in rows] == [e.hash for e in entries] == [cfg.hash]
    assert rows[0]["model"] == "tiny" and rows[0]["target"] == "ca" and rows[0]["valid"] is True
    # gc removes what ModelCache.gc removes: here only the orphan lock left by training, never the valid model
    locks = sorted(p.name for p in (cache / "models").glob("*.lock"))
    assert sorted(run_json(capsys, ["models", "gc", *args])["removed"]) == locks
    assert run_json(capsys, ["models", "gc", *args]) == {"removed": []}
    assert [r["hash"] for r in run_json(capsys, ["models", "ls", *args])] == [cfg.hash]
    msg = run_error(capsys, ["models", "rm", "ffff", *args])
    assert msg == f"error: no cached model matches 'ffff'; cached: {cfg.hash}"
    assert "give 1-16 hex digits" in run_error(capsys, ["models", "rm", "xyz!", *args])
    assert run_json(capsys, ["models", "rm", cfg.hash[:6], *args]) == {"removed": cfg.hash}
    assert run_json(capsys, ["models", "ls", *args]) == []
