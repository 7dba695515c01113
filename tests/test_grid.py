"""Experiment grid: spec validation, expansion and deduplication, status, resumable runs (SIGKILL mid-run), the
store's schema, the CLI commands, and the Ray executor on the smoke preset."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoints import save_checkpoint

from xner_core.errors import ConfigError, DataError
from xner_core.evaluation.memo import clear_caches
from xner_core.evaluation.predictions import load_predictions
from xner_core.experiments.execute import run_plan
from xner_core.experiments.plan import expand
from xner_core.experiments.ray_executor import gpu_request
from xner_core.experiments.spec import GridSpec, load_spec, parse_spec, preset_names
from xner_core.experiments.status import claims_dir, plan_status
from xner_core.experiments.store import COLUMN_NAMES, ROW_SCOPES, SCHEMA, ResultsStore, parse_filters
from xner_core.runs.config import config_hash

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}  # same thread count as this process: same numbers
# Columns that legitimately differ between two runs of the same jobs.
VOLATILE = ["eval_seconds", "created_at", "train_seconds", "trained_at"]  # when, not what: differ run to run


# ---------------------------------------------------------------------------------------------------------- presets


def test_presets_exist_and_load():
    assert {"paper", "diversity", "smoke"} <= set(preset_names())
    for name in preset_names():
        spec = load_spec(name)
        assert isinstance(spec, GridSpec) and spec.name == name and spec.origin == f"preset {name}"


def test_paper_preset_is_the_study_grid():
    from xner_core.corpus.languages import reference_pairs

    spec = load_spec("paper")
    assert spec.pairs == tuple((p.source, p.target) for p in reference_pairs()) and len(spec.pairs) == 13
    assert spec.models == ("e5-small",) and spec.settings == ("native", "transfer") and spec.seeds == (0,)
    assert spec.perturbations == ("clean", "entity_replace", "context_replace", "entity_context", "person_swap",
                                  "location_swap")
    assert (spec.options.epochs, spec.options.max_train_sentences, spec.test_limit) == (1, 5000, 2000)
    assert spec.embed_model == "e5-small"


def test_spec_rates_are_checked_and_enter_the_job_ids():
    from xner_core.evaluation.jobs import eval_jobs
    from xner_core.runs.config import make_config

    base = '''name = "r"
models = ["e5-small"]
pairs = ["es-ca"]
perturbations = ["entity_replace", "entity_replace_matched"]
'''
    spec = parse_spec(base + "[eval]\nrates = { entity_replace_matched = 0.1 }\n")
    cfg = make_config("e5-small", "ca", "native")
    jobs = {j.perturbation: j for j in eval_jobs(cfg, spec.perturbations, spec.eval_options())}
    assert jobs["entity_replace_matched"].perturb_rate == 0.1 and jobs["entity_replace"].perturb_rate == 1.0
    other = parse_spec(base + "[eval]\nrates = { entity_replace_matched = 0.2 }\n")
    other_jobs = {j.perturbation: j for j in eval_jobs(cfg, other.perturbations, other.eval_options())}
    assert other_jobs["entity_replace_matched"].id != jobs["entity_replace_matched"].id
    assert other_jobs["entity_replace"].id == jobs["entity_replace"].id
    with pytest.raises(ConfigError, match="'context_replace' is not one of this spec's perturbations; allowed: "
                                          "entity_replace, entity_replace_matched"):
        parse_spec(base + "[eval]\nrates = { context_replace = 0.1 }\n")
    with pytest.raises(ConfigError, match="1.5 is invalid; allowed: a number in \\[0, 1\\]"):
        parse_spec(base + "[eval]\nrates = { entity_replace_matched = 1.5 }\n")


def test_faithful_preset_is_the_study_recipe():
    from xner_core.corpus.languages import reference_pairs

    spec = load_spec("paper-faithful")
    study = [(p.source, p.target) for p in reference_pairs()]
    assert spec.pairs == tuple(p for p in study if p != ("cs", "sk")) and len(spec.pairs) == 12  # no cs data
    assert spec.data == "paper-resplit" and spec.seeds == (0, 1, 2) and spec.precision == "auto"
    o = spec.options
    assert (o.epochs, o.batch_size, o.warmup_ratio, o.weight_decay, o.max_length) == (1, 8, 0.06, 0.0, 128)
    assert o.max_train_sentences is None and o.max_dev_sentences == 0 and spec.test_limit is None
    assert o.lr == 1e-4  # picked by scripts/lr_sweep.py on held-out es data (data/results/lr_sweep_e5-small.csv)
    assert spec.perturbations == ("clean", "entity_replace", "context_replace_study", "entity_context_study",
                                  "person_swap", "location_swap", "entity_replace_matched", "entity_random_matched")
    # the matched P1 and its control change 4 % of all gold entities; every other perturbation runs at rate 1
    assert spec.rates == (("entity_random_matched", 0.04), ("entity_replace_matched", 0.04))
    options = spec.eval_options()
    assert options.rate_for("entity_replace_matched") == 0.04 and options.rate_for("entity_replace") == 1.0
    assert options.rate_for("clean") == 1.0


def test_spec_precision_is_validated(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nmodels = ["tiny"]\npairs = ["es-ca"]\nprecision = "fp16"\n')
    with pytest.raises(ConfigError, match=r"precision.*auto, bf16, fp32"):
        load_spec(str(path))
    path.write_text('name = "p"\nmodels = ["tiny"]\npairs = ["es-ca"]\nprecision = "fp32"\n')
    assert load_spec(str(path)).precision == "fp32"


def test_diversity_preset_grows_source_sets():
    spec = load_spec("diversity")
    assert len(spec.targets) >= 3 and {"multi_source", "distill", "transfer"} <= set(spec.settings)
    assert {"clean", "entity_replace", "context_replace"} <= set(spec.perturbations)
    for ts in spec.targets:
        sizes = [len(s) for s in ts.source_sets]
        assert sizes[0] == 1 and max(sizes) >= 4 and sizes == sorted(sizes)


def test_smoke_preset_is_tiny():
    spec = load_spec("smoke")
    assert spec.models == ("tiny",) and spec.embed_model == "tiny" and len(spec.pairs) == 2
    assert spec.options.max_train_sentences <= 200 and spec.test_limit <= 100


# ------------------------------------------------------------------------------------------------- spec validation

BASE = """name = "t"
models = ["tiny"]
pairs = ["es-ca"]
settings = ["native", "transfer"]
perturbations = ["clean", "entity_replace"]
"""

TARGETS = """name = "t"
models = ["tiny"]
settings = ["multi_source"]

[[targets]]
target = "ca"
source_sets = ["es+fr"]

[[targets]]
target = "an"
sourcesets = ["es+fr"]
"""

# (spec text, substrings the ConfigError must contain)
INVALID = [
    (BASE.replace('["tiny"]', '["bert"]'),
     ["line 2", "(models[0])", "unknown model 'bert'; choose one of: mbert, xlmr, e5-small, tiny"]),
    (BASE.replace("es-ca", "es-xx"), ["line 3", "unknown language 'xx'; choose one of:"]),
    (BASE.replace('"entity_replace"', '"p9"'),
     ["line 5", "unknown perturbation 'p9'; choose one of: clean, entity_replace, context_replace"]),
    (BASE.replace('"transfer"]', '"zero_shot"]'),
     ["line 4", "unknown setting 'zero_shot'; choose one of: native, transfer, multi_source, distill, tapt"]),
    (BASE + 'modles = ["x"]\n', ["line 6 (modles)", "unknown key 'modles'; allowed at the top level: name,"]),
    (BASE + "[training]\nepochs = 1\nepoch = 2\n",
     ["line 8 (training.epoch)", "unknown key 'epoch'; allowed in [training]:", "max_train_sentences"]),
    (BASE + "[training]\nepochs = 0\n", ["line 7 (training.epochs)", "epochs=0 is invalid"]),
    (BASE + "[eval]\ntest_limt = 5\n", ["line 7 (eval.test_limt)", "allowed in [eval]: test_limit"]),
    (BASE + "[eval]\nembed_model = \"glove\"\n", ["(eval.embed_model)", "unknown model 'glove'"]),
    (BASE + "[eval]\ndonor = \"zz\"\n", ["(eval.donor)", "unknown language 'zz'"]),
    (BASE + "[eval]\nperturb_rate = 2\n", ["(eval.perturb_rate)", "allowed: a number in [0, 1]"]),
    (BASE + "seeds = [-1]\n", ["(seeds[0])", "-1 is invalid"]),
    (BASE + "data = \"conll\"\n", ["(data)", "unknown data protocol 'conll'"]),
    (BASE.replace("es-ca", "es-es"), ["same source and target"]),
    (TARGETS, ["line 11 (targets[1].sourcesets)",
               "unknown key 'sourcesets'; allowed in a [[targets]] entry: target, source_sets"]),
    (TARGETS.replace("sourcesets", "source_sets").replace('"es+fr"]\n\n[[targets]]', '"es+ca"]\n\n[[targets]]'),
     ["(targets[0].source_sets[0])", "contains the target 'ca'"]),
    (BASE.replace('"transfer"]', '"multi_source"]'), ["setting 'multi_source' applies to nothing"]),
    (BASE.replace('"transfer"]', '"tapt"]'), ["tiny es→ca tapt: tapt needs tapt_steps >= 1"]),
    (BASE.replace('models = ["tiny"]\n', ""), ["names no models"]),
    (BASE.replace('pairs = ["es-ca"]\n', ""), ["neither pairs nor targets"]),
    ("models = [\n", ["invalid TOML"]),
]


@pytest.mark.parametrize("text,messages", INVALID, ids=[m[-1][:40] for _, m in INVALID])
def test_invalid_specs_say_what_and_where(text, messages):
    with pytest.raises(ConfigError) as info:
        parse_spec(text, "toml", origin="my.toml")
    msg = str(info.value)
    assert msg.startswith("my.toml")
    for m in messages:
        assert m in msg, msg


def test_yaml_specs_match_toml_and_report_lines(tmp_path):
    yaml_text = "name: t\nmodels: [tiny]\npairs: [es-ca]\nsettings: [native, transfer]\n" \
                "perturbations: [clean, entity_replace]\n"
    (tmp_path / "g.yaml").write_text(yaml_text)
    (tmp_path / "g.toml").write_text(BASE)
    a, b = load_spec(tmp_path / "g.yaml"), load_spec(tmp_path / "g.toml")
    assert {**a.__dict__, "origin": ""} == {**b.__dict__, "origin": ""}
    with pytest.raises(ConfigError, match=r"line 8 \(training.epoch\): unknown key 'epoch'"):
        parse_spec(yaml_text + "training:\n  epochs: 1\n  epoch: 2\n", "yaml", origin="g.yaml")
    with pytest.raises(ConfigError, match=r"line 4 \(models\[1\]\): unknown model 'bert'"):
        parse_spec(yaml_text.replace("[tiny]", "\n  - tiny\n  - bert"), "yaml", origin="g.yaml")


def test_spec_value_forms(tmp_path):
    text = BASE.replace('["es-ca"]', '["es→ca", ["fr", "br"], "it,scn"]') + \
        '[training]\nmax_train_sentences = "all"\n[eval]\ntest_limit = "all"\ndonor = "AN"\n'
    spec = parse_spec(text)
    assert spec.pairs == (("es", "ca"), ("fr", "br"), ("it", "scn"))
    assert spec.options.max_train_sentences is None and spec.test_limit is None and spec.donor == "an"
    assert spec.perturbations[0] == "clean"
    assert parse_spec(BASE.replace('["clean", "entity_replace"]', '["entity_replace"]')).perturbations == (
        "clean", "entity_replace")  # clean is always evaluated (the drop's reference)


def test_unknown_preset_and_bad_files(tmp_path):
    assert {"demo", "diversity", "paper", "paper-faithful", "smoke"} <= set(preset_names())
    names = ", ".join(preset_names())
    with pytest.raises(ConfigError, match=f"unknown preset or spec file 'nosuch'; presets: {names}"):
        load_spec("nosuch")
    (tmp_path / "g.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"must end in \.toml, \.yaml or \.yml"):
        load_spec(tmp_path / "g.json")


# ------------------------------------------------------------------------------------------ expansion / dedup

SHARED = """name = "shared"
models = ["tiny"]
settings = ["native", "transfer"]
perturbations = ["clean", "entity_replace"]
[[targets]]
target = "ca"
source_sets = ["es"]
[[targets]]
target = "an"
source_sets = ["es"]
[[targets]]
target = "ast"
source_sets = ["es"]
"""


def test_one_es_transfer_model_serves_three_targets():
    plan = expand(parse_spec(SHARED), online=True)
    transfer = [g for g in plan.groups if g.train.config.setting == "transfer"]
    assert len(transfer) == 1  # one training job ...
    assert [b.config.target for b in transfer[0].batches] == ["ca", "an", "ast"]  # ... evaluated on 3 targets
    assert len(plan.train_jobs) == 4  # + 3 native models
    ids = [j.id for j in plan.eval_jobs]
    assert len(ids) == len(set(ids)) == 4 * 2 + 2 * 2  # (3 transfer + 3 native targets) x 2 conditions
    # the same grid written as pairs gives the same jobs
    pairs = parse_spec(BASE.replace('["es-ca"]', '["es-ca", "es-an", "es-ast"]'))
    assert {j.id for j in expand(pairs, online=True).eval_jobs} == set(ids)


def test_seeds_and_models_multiply_jobs():
    spec = parse_spec(SHARED.replace('settings = ["native", "transfer"]',
                                     'settings = ["transfer"]\nseeds = [0, 1]'))
    plan = expand(spec, online=True)
    assert len(plan.train_jobs) == 2 and len(plan.eval_jobs) == 2 * 3 * 2
    assert len({g.train.hash for g in plan.groups}) == 2


def test_distill_teachers_come_first_and_are_shared():
    text = """name = "d"
models = ["tiny"]
settings = ["transfer", "multi_source", "distill"]
[[targets]]
target = "ca"
source_sets = ["es", "es+fr"]
[[targets]]
target = "an"
source_sets = ["es", "es+fr"]
"""
    plan = expand(parse_spec(text), online=True)
    by_setting: dict[str, list] = {}
    for g in plan.groups:
        by_setting.setdefault(g.train.config.setting, []).append(g)
    assert len(by_setting["multi_source"]) == 1  # target-free: shared by ca and an
    assert len(by_setting["distill"]) == 2  # students learn on target text: one per target
    teachers = {g.train.hash: g for g in by_setting["transfer"]}
    assert len(teachers) == 2 and all(g.train.teacher for g in teachers.values())  # es (also evaluated) and fr
    assert not teachers[by_setting["distill"][0].train.needs[1]].batches  # fr is only a teacher
    order = [g.train.hash for g in plan.groups]
    for g in by_setting["distill"]:
        assert set(g.train.needs) == set(teachers)
        assert all(order.index(t) < order.index(g.train.hash) for t in g.train.needs)


def test_distill_on_a_pair_is_a_single_teacher_student_sharing_the_transfer_model():
    text = """name = "d1"
models = ["tiny"]
pairs = ["es-ca", "es-an"]
settings = ["transfer", "distill"]
"""
    plan = expand(parse_spec(text), online=True)
    students = [g for g in plan.groups if g.train.config.setting == "distill"]
    transfer = [g for g in plan.groups if g.train.config.setting == "transfer"]
    assert len(transfer) == 1 and transfer[0].train.teacher  # one es model: evaluated on ca and an, and the teacher
    assert {g.train.config.target for g in students} == {"ca", "an"}
    for g in students:  # Wu et al.'s single-source teacher-student: the student learns from the es transfer model
        assert g.train.needs == (transfer[0].train.hash,) and tuple(g.train.config.sources) == ("es",)
    assert [g.train.config.setting for g in plan.groups][-2:] == ["distill", "distill"]
    with pytest.raises(ConfigError, match=r"setting 'distill' applies to nothing.*a pair \(one teacher\)"):
        no_pairs = text.replace('pairs = ["es-ca", "es-an"]\n', "")
        parse_spec(no_pairs + '[[targets]]\ntarget = "ca"\nsource_sets = ["es"]\n')


def test_cached_models_run_first_in_plan_order():
    from xner_core.experiments.execute import _needed_groups, cached_first

    spec = parse_spec(SHARED.replace('settings = ["native", "transfer"]',
                                     'settings = ["native", "transfer"]\nseeds = [0, 1]'))
    plan = expand(spec, online=True)
    needed = _needed_groups(plan, set())
    cached = {g.train.hash for i, (g, _) in enumerate(needed) if i % 3 == 2}
    order = [g.train.hash for g, _ in cached_first(needed, lambda cfg: config_hash(cfg) in cached)]
    plan_order = [g.train.hash for g, _ in needed]
    assert sorted(order) == sorted(plan_order) and len(cached) >= 2
    assert order[:len(cached)] == [h for h in plan_order if h in cached]
    assert order[len(cached):] == [h for h in plan_order if h not in cached]


def test_paper_plan_skips_cs_and_keeps_the_other_twelve(wikiann_dir):
    plan = expand(load_spec("paper"), wikiann_dir, online=False)
    assert plan.skipped == ("cs→sk skipped: no local data for cs (set XNER_DATA_DIR or go online)",)
    transfer_targets = [b.config.target for g in plan.groups if g.train.config.setting == "transfer"
                        for b in g.batches]
    assert len(transfer_targets) == 12 and "sk" not in transfer_targets
    natives = [g for g in plan.groups if g.train.config.setting == "native"]
    assert len(natives) == 13  # sk native still runs: sk data is here
    es = [g for g in plan.groups if g.train.label.startswith("e5-small es transfer")]
    assert len(es) == 1 and [b.config.target for b in es[0].batches] == ["ca", "an", "ast"]
    assert len(plan.train_jobs) == 20 and len(plan.eval_jobs) == (12 + 13) * 6
    online = expand(load_spec("paper"), wikiann_dir, online=True)
    assert online.skipped == () and len(online.eval_jobs) == 26 * 6


def test_missing_data_is_reported_per_unit(tmp_path):
    (tmp_path / "ca").mkdir()  # ca has a test split but no train split: native ca cannot train
    (tmp_path / "ca" / "test").write_text("Barcelona\tB-LOC\n\n")
    plan = expand(parse_spec(BASE), tmp_path, online=False)
    assert plan.groups == ()
    assert plan.skipped == ("ca native skipped: no local data for ca (set XNER_DATA_DIR or go online)",
                            "es→ca skipped: no local data for es (set XNER_DATA_DIR or go online)")


# --------------------------------------------------------------------------------------------- status, filters


def _fake_rows(job_id: str):
    return [dict(job_id=job_id, scope=s, config_hash="h", model="tiny", sources="es", target="ca",
                 setting="transfer", perturbation="clean", f1=0.5) for s in ("overall", "PER", "ORG", "LOC")]


def test_status_done_running_missing(tmp_path):
    plan = expand(parse_spec(SHARED), online=True)
    jobs = [j.id for j in plan.eval_jobs]
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write(_fake_rows(jobs[0]))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims = claims_dir(store.path)
    claims.mkdir()
    host = socket.gethostname()
    for jid, pid, h in [(jobs[1], os.getpid(), host), (jobs[2], dead.pid, host), (jobs[3], 1, "elsewhere")]:
        (claims / f"{jid}.json").write_text(json.dumps({"pid": pid, "host": h, "started": 0}))
    status = plan_status(plan, store)
    assert status.done == (jobs[0],)
    assert status.running == (jobs[1], jobs[3])  # a live pid here, or another host's claim
    assert jobs[2] in status.missing and status.total == len(jobs)  # a dead run's claim is stale


FILTERS = [
    (["target=ca"], {"target": "ca"}),
    (["target=ca,an", "seed=0"], {"target": ["ca", "an"], "seed": 0}),
    (["f1=0.5", "perturbation=clean"], {"f1": 0.5, "perturbation": "clean"}),
    ([], {}),
]


@pytest.mark.parametrize("items,expected", FILTERS)
def test_parse_filters(items, expected):
    assert parse_filters(items) == expected


@pytest.mark.parametrize("item,message", [("target", "write column=value"), ("nope=1", "unknown results column"),
                                          ("seed=x", "not a valid integer")])
def test_parse_filters_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_filters([item])


@pytest.mark.parametrize("resources,gpus", [({"CPU": 2.0}, 0), ({"CPU": 8.0, "GPU": 2.0}, 1), ({"GPU": 0}, 0)])
def test_gpu_request(resources, gpus):
    assert gpu_request(resources) == gpus


# ------------------------------------------------------------------------------------- resume after SIGKILL


def _sorted_frame(store: ResultsStore):
    df = store.frame()
    return df.drop(columns=VOLATILE).sort_values(["job_id", "scope"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def killed_and_resumed(wikiann_dir, tmp_path_factory):
    """`xner grid run smoke` in a subprocess, SIGKILLed once some rows are stored, then run again to the end."""
    root = tmp_path_factory.mktemp("resume")
    cache, store_path = root / "cache", root / "smoke.duckdb"
    cmd = [sys.executable, "-m", "xner_core.cli.main", "grid", "run", "smoke", "--store", str(store_path),
           "--cache-dir", str(cache), "--data-dir", str(wikiann_dir), "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = ResultsStore(store_path)
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen = store.job_ids()
        except DataError:  # the run holds the file for a write right now
            seen = set()
        if seen:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after_kill = _read_frame(store)
    plan = expand(load_spec("smoke"), wikiann_dir, online=False)
    status = plan_status(plan, store)
    clear_caches()
    summary = run_plan(plan, store, data_dir=wikiann_dir, cache=cache)
    return {"cache": cache, "store": store, "plan": plan, "after_kill": after_kill, "status": status,
            "summary": summary, "data": wikiann_dir, "root": root}


def _read_frame(store: ResultsStore):
    for _ in range(100):
        try:
            return store.frame()
        except DataError:
            time.sleep(0.05)
    return store.frame()


def test_killed_run_left_only_whole_jobs(killed_and_resumed):
    df = killed_and_resumed["after_kill"]
    total = len(killed_and_resumed["plan"].eval_jobs)
    per_job = df.groupby("job_id").scope.nunique()
    assert 1 <= len(per_job) < total  # killed mid-run, after some jobs were stored
    n = len(ROW_SCOPES)
    assert (per_job == n).all() and len(df) == n * len(per_job)  # no partial job
    status = killed_and_resumed["status"]
    assert len(status.done) == len(per_job) and status.running == ()  # the dead run's claims are stale


def test_rerun_does_only_what_is_missing(killed_and_resumed):
    s = killed_and_resumed["summary"]
    done_at_kill = killed_and_resumed["after_kill"].job_id.nunique()
    assert s.failures == () and s.jobs_total == 16
    assert s.jobs_done_before == done_at_kill and s.jobs_run == 16 - done_at_kill
    assert s.rows_written == len(ROW_SCOPES) * (16 - done_at_kill)
    store = killed_and_resumed["store"]
    df = store.frame()
    assert len(df) == 16 * len(ROW_SCOPES) and not df.duplicated(["job_id", "scope"]).any()
    assert set(df.job_id) == {j.id for j in killed_and_resumed["plan"].eval_jobs}
    assert not list(claims_dir(store.path).glob("*.json"))  # every claim released
    again = run_plan(killed_and_resumed["plan"], store, data_dir=killed_and_resumed["data"],
                     cache=killed_and_resumed["cache"])
    assert (again.jobs_run, again.rows_written, again.models_used) == (0, 0, 0)


def test_resumed_results_equal_an_uninterrupted_run(killed_and_resumed, tmp_path):
    # The uninterrupted run starts from an empty cache: it trains every model again in this process (the killed
    # run trained some in another), recomputes every perturbation, prediction and score, and must give the same
    # values (not only the same number of rows).
    clear_caches()
    fresh = ResultsStore(tmp_path / "fresh.duckdb")
    s = run_plan(killed_and_resumed["plan"], fresh, data_dir=killed_and_resumed["data"], cache=tmp_path / "cache")
    assert s.jobs_run == 16 and s.models_trained == s.models_used > 0
    import pandas as pd

    resumed, uninterrupted = _sorted_frame(killed_and_resumed["store"]), _sorted_frame(fresh)
    assert resumed.f1.notna().all() and resumed.f1.nunique() > 4  # real scores, not a constant
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_store_schema_is_the_documented_one(killed_and_resumed):
    import duckdb

    con = duckdb.connect(str(killed_and_resumed["store"].path), read_only=True)
    try:
        cols = con.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                           "WHERE table_name = 'results' ORDER BY ordinal_position").fetchall()
        pk = con.execute("SELECT constraint_column_names FROM duckdb_constraints() "
                         "WHERE table_name = 'results' AND constraint_type = 'PRIMARY KEY'").fetchall()
    finally:
        con.close()
    assert [c[0] for c in cols] == list(COLUMN_NAMES)
    assert [c[1] for c in cols] == [s.sql_type.split()[0] for s in SCHEMA]
    assert [c[0] for c in cols if c[2] == "NO"] == [s.name for s in SCHEMA if "NOT NULL" in s.sql_type]
    assert [list(p[0]) for p in pk] == [["job_id", "scope"]]
    df = killed_and_resumed["store"].frame()
    assert set(df.scope) == set(ROW_SCOPES) == {"overall", "PER", "ORG", "LOC", "seen", "unseen", "len1", "len2",
                                                 "len3+", "freq1", "freq2-9", "freq10+"}
    assert set(df.perturbation) == {"clean", "entity_replace", "context_replace", "location_swap"}
    assert df.f1.between(0, 1).all() and df.versions.str.contains("torch").all()


# -------------------------------------------------------------------------------------------------------- CLI


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from xner_core.cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_results_and_status(killed_and_resumed, capsys, tmp_path):
    store = str(killed_and_resumed["store"].path)
    code, out, _ = _cli(capsys, "results", "show", "--store", store, "--filter", "target=ca", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 8 and {r["target"] for r in rows} == {"ca"}
    assert {r["scope"] for r in rows} == {"overall"}
    code, out, _ = _cli(capsys, "results", "show", "--store", store, "--filter", "perturbation=clean")
    assert code == 0 and "transfer" in out and "overall" in out and "F1" in out
    code, out, _ = _cli(capsys, "results", "export", "--format", "csv", "--out", str(tmp_path / "r.csv"),
                        "--store", store, "--json")
    assert code == 0 and json.loads(out)["rows"] == 16 * len(ROW_SCOPES)
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "r.csv")) == 16 * len(ROW_SCOPES)
    code, out, _ = _cli(capsys, "results", "export", "--format", "parquet", "--out", str(tmp_path / "r.parquet"),
                        "--store", store, "--filter", "setting=native")
    assert code == 0 and len(pd.read_parquet(tmp_path / "r.parquet")) == 8 * len(ROW_SCOPES)
    # a fresh store (another machine's, or after the cache was cleared) takes the export back: its jobs count as done
    fresh = str(tmp_path / "fresh.duckdb")
    code, out, _ = _cli(capsys, "results", "import", str(tmp_path / "r.parquet"), "--store", fresh)
    assert code == 0 and f"{8 * len(ROW_SCOPES)} rows read, {8 * len(ROW_SCOPES)} written, 0 already" in out
    code, out, _ = _cli(capsys, "grid", "status", "smoke", "--store", fresh, "--data-dir",
                        str(killed_and_resumed["data"]), "--json")
    assert code == 0 and (json.loads(out)["done"], json.loads(out)["missing"]) == (8, 8)
    code, out, _ = _cli(capsys, "results", "import", str(tmp_path / "r.csv"), "--store", fresh, "--json")
    assert code == 0 and json.loads(out)[0]["already_stored"] == 8 * len(ROW_SCOPES)
    assert ResultsStore(fresh).count() == 16 * len(ROW_SCOPES)
    code, out, _ = _cli(capsys, "results", "schema", "--json")
    assert [c["name"] for c in json.loads(out)] == list(COLUMN_NAMES)
    code, out, _ = _cli(capsys, "grid", "status", "smoke", "--store", store, "--data-dir",
                        str(killed_and_resumed["data"]), "--json")
    payload = json.loads(out)
    assert code == 0 and (payload["done"], payload["running"], payload["missing"]) == (16, 0, 0)
    code, out, _ = _cli(capsys, "grid", "run", "smoke", "--dry-run", "--store", str(tmp_path / "none.duckdb"),
                        "--data-dir", str(killed_and_resumed["data"]), "--json")
    payload = json.loads(out)
    assert code == 0 and payload["missing"] == 16 and len(payload["models"]) == 4


def test_rows_carry_when_their_model_was_trained_and_undated_tables_are_dated_from_the_cache(
        killed_and_resumed, capsys, tmp_path):
    import pandas as pd

    from xner_core.evaluation.modelstore import trained_at
    from xner_core.runs.modelcache import ModelCache

    cache = ModelCache(Path(killed_and_resumed["cache"]) / "models")
    when = {m["hash"]: trained_at(m) for m in cache.manifests()}
    df = killed_and_resumed["store"].frame()
    assert df["trained_at"].notna().all()
    assert all(r.trained_at == when[r.config_hash] <= r.created_at for r in df.itertuples())
    # a table exported before the column: dated again from the cache, where the cached model made the row
    old = df.drop(columns="trained_at")
    old.loc[old["setting"] == "native", "created_at"] = pd.Timestamp("2000-01-01")  # written before that training
    path = tmp_path / "old.parquet"
    old.to_parquet(path, index=False)
    code, out, _ = _cli(capsys, "results", "trained-at", str(path), "--cache", str(cache.root), "--json")
    report = json.loads(out)[0]
    dated = pd.read_parquet(path)
    native = dated["setting"] == "native"
    assert code == 0 and report["dated"] == (~native).sum() and report["dated_before"] == 0 and report["rewritten"]
    assert dated.loc[native, "trained_at"].isna().all()  # the cached model came after these rows: a retraining
    assert (dated.loc[~native, "trained_at"] == dated.loc[~native, "config_hash"].map(when)).all()
    assert dated.drop(columns="trained_at").equals(old)  # nothing else touched
    mtime = path.stat().st_mtime_ns
    code, out, _ = _cli(capsys, "results", "trained-at", str(path), "--cache", str(cache.root))
    assert code == 0 and "left as it was" in out and path.stat().st_mtime_ns == mtime  # nothing new: not rewritten
    code, _, err = _cli(capsys, "results", "trained-at", str(tmp_path / "none.parquet"))
    assert code != 0 and "does not exist" in err


@pytest.mark.parametrize("args,message", [
    (["grid", "run", "nosuch", "--dry-run"], "unknown preset or spec file 'nosuch'"),
    (["grid", "run", "smoke", "--executor", "spark"], "unknown executor 'spark'; choose one of: local, ray"),
    (["results", "show", "--filter", "bogus=1"], "unknown results column 'bogus'"),
    (["results", "show", "--scope", "MISC"], "unknown scope 'MISC'"),
    (["results", "import", "no-such-table.parquet"], "results table 'no-such-table.parquet' does not exist"),
])
def test_cli_errors(capsys, tmp_path, args, message):
    code, _, err = _cli(capsys, *args, "--store", str(tmp_path / "x.duckdb"))
    assert code == 2 and message in err


# -------------------------------------------------------------------------------------------------------- Ray


@pytest.mark.slow  # ~95 s (a local Ray instance starts); run with -m slow or make test-all
def test_ray_executor_on_smoke(wikiann_dir, tmp_path):
    ray = pytest.importorskip("ray")
    plan = expand(load_spec("smoke"), wikiann_dir, online=False)
    store, cache = ResultsStore(tmp_path / "ray.duckdb"), tmp_path / "cache"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        events = []
        summary = run_plan(plan, store, executor="ray", progress=events.append, data_dir=wikiann_dir, cache=cache)
        again = run_plan(plan, store, executor="ray", data_dir=wikiann_dir, cache=cache)
    finally:
        ray.shutdown()
    assert summary.failures == () and (summary.jobs_run, summary.rows_written) == (16, 16 * len(ROW_SCOPES))
    assert summary.models_trained == 4 and {config_hash(t.config) for t in plan.train_jobs} == {
        p.name for p in (cache / "models").iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert (again.jobs_run, again.models_used) == (0, 0)
    assert [e.kind for e in events].count("job_done") == 16 and events[-1].kind == "finish"
    df = store.frame()
    assert len(df) == 16 * len(ROW_SCOPES) and not df.duplicated(["job_id", "scope"]).any()
    # what the driver stored is what the workers computed: re-score each job from the predictions they saved
    from xner_core.metrics.scores import score

    for job in plan.eval_jobs:
        saved = load_predictions(job.id, cache)
        assert saved is not None and len(saved) == plan.spec.test_limit
        f1 = score([s["gold"] for s in saved], [s["pred"] for s in saved]).overall.f1
        stored = df[(df.job_id == job.id) & (df.scope == "overall")]
        assert stored.f1.item() == pytest.approx(f1) and stored.target.item() == job.target
        assert stored.perturbation.item() == job.perturbation


def test_demo_preset_trains_what_the_dashboard_trains():
    # `make demo` prepares the models the dashboard would train on a click at the demo's cap
    # (xner_ui.hooks.training_config: the `paper` preset's options without a dev set), so the same config hashes.
    from xner_ui.hooks import ModelKey, training_config

    demo = load_spec("demo")
    plan = expand(demo)
    assert {(t.config.setting, t.config.target) for t in plan.train_jobs} == {
        ("native", "br"), ("transfer", "br"), ("native", "ast"), ("transfer", "ast")}
    assert {j.perturbation for j in plan.eval_jobs} == {"clean"}
    source = {"br": "fr", "ast": "es"}
    for job in plan.train_jobs:
        c = job.config
        key = ModelKey(c.model, c.setting, source[c.target], c.target)
        assert config_hash(training_config(key, demo.options.max_train_sentences)) == config_hash(c), key


# ------------------------------------------------------------------------------- existing checkpoints in a spec


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("grid-ckpt") / "my-ner", favour="S-LOCATION")


def _ckpt_spec(path: Path | str, extra: str = "", head: str = "") -> str:
    return (f'name = "ck"\nperturbations = ["clean", "entity_mask"]\n{head}\n[[checkpoints]]\npath = "{path}"\n'
            f'{extra}')


def test_checkpoint_entries_plan_jobs_that_are_never_trained(ckpt_dir):
    from xner_core.evaluation.jobs import EvalOptions, eval_jobs
    from xner_core.experiments.plan import group_options, plan_summary

    spec = parse_spec(_ckpt_spec(ckpt_dir, 'role = "transfer"\nsource = "es"\ntargets = ["ca", "an"]\n\n'
                                           f'[[checkpoints]]\npath = "{ckpt_dir}"\ntargets = "ca"\n'))
    assert spec.models == () and spec.pairs == ()
    transfer, native = spec.checkpoints
    assert (transfer.path, transfer.role, transfer.source, transfer.targets) == (
        str(ckpt_dir.resolve()), "transfer", "es", ("ca", "an"))
    assert (native.role, native.source, native.targets) == ("native", None, ("ca",))  # no source: native
    plan = expand(spec, online=True)
    assert [g.train.checkpoint for g in plan.groups] == [True, True]
    tg, ng = plan.groups
    assert [b.config.target for b in tg.batches] == ["ca", "an"]  # one transfer model, two targets
    assert tg.train.config.model == str(ckpt_dir.resolve()) and tg.train.config.sources == ("es",)
    assert tg.train.label == f"checkpoint {ckpt_dir.resolve()} es transfer" and tg.train.key.startswith("checkpoint:")
    assert group_options(plan, tg).checkpoint and not spec.eval_options().checkpoint
    for b in tg.batches:  # the ids `xner eval --checkpoint` gives the same evaluation: never a trained model's
        assert [j.id for j in b.jobs] == [j.id for j in eval_jobs(b.config, spec.perturbations,
                                                                  EvalOptions(checkpoint=True))]
        assert not {j.id for j in b.jobs} & {j.id for j in eval_jobs(b.config, spec.perturbations, EvalOptions())}
    summary = plan_summary(plan)
    assert [m["checkpoint"] for m in summary["models"]] == [True, True] and summary["eval_jobs"] == 6


def test_checkpoints_beside_models_are_other_models(ckpt_dir):
    text = _ckpt_spec(ckpt_dir, 'source = "es"\ntargets = ["ca"]\n',
                      head=f'models = ["tiny", "{ckpt_dir}"]\npairs = ["es-ca"]\nsettings = ["transfer"]\n')
    plan = expand(parse_spec(text), online=True)
    fine_tuned = [g for g in plan.groups if not g.train.checkpoint and g.train.config.model == str(ckpt_dir.resolve())]
    as_is = [g for g in plan.groups if g.train.checkpoint]
    assert len(fine_tuned) == len(as_is) == 1 and len(plan.groups) == 3
    # same directory, same options: the same config hash, but two models with their own keys and job ids
    assert fine_tuned[0].train.hash == as_is[0].train.hash and fine_tuned[0].train.key != as_is[0].train.key
    assert not {j.id for j in fine_tuned[0].jobs} & {j.id for j in as_is[0].jobs}


CHECKPOINT_INVALID = [
    ("", "needs targets"),
    ('targets = ["ca"]\nrole = "distill"\n', "unknown role 'distill'; choose one of: native, transfer"),
    ('targets = ["ca"]\nrole = "transfer"\n', "a transfer checkpoint needs source"),
    ('targets = ["ca"]\nrole = "native"\nsource = "es"\n', "a native checkpoint was fine-tuned on its target"),
    ('targets = ["ca", "an"]\n', "a native checkpoint is evaluated on the one language"),
    ('source = "es"\ntargets = ["es", "ca"]\n', "target 'es' is the checkpoint's source"),
    ('source = "es"\ntargets = ["xx"]\n', "unknown language 'xx'; choose one of"),
    ('source = "es"\ntarget = ["ca"]\n', "unknown key 'target'; allowed in a [[checkpoints]] entry: path, role"),
]


@pytest.mark.parametrize("extra,message", CHECKPOINT_INVALID, ids=[m[:30] for _, m in CHECKPOINT_INVALID])
def test_invalid_checkpoint_entries_say_what_and_where(ckpt_dir, extra, message):
    with pytest.raises(ConfigError) as info:
        parse_spec(_ckpt_spec(ckpt_dir, extra), origin="ck.toml")
    msg = str(info.value)
    assert msg.startswith("ck.toml, line ") and "(checkpoints[0]" in msg and message in msg, msg


def test_checkpoint_paths_are_checked(ckpt_dir, tmp_path):
    import shutil

    def error(path, extra='targets = ["ca"]\n'):
        with pytest.raises(ConfigError) as info:
            parse_spec(_ckpt_spec(path, extra), origin="ck.toml")
        assert "(checkpoints[0].path)" in str(info.value)
        return str(info.value)

    assert "no such checkpoint directory: './not-here'" in error("./not-here")
    assert "no such checkpoint directory" in error(tmp_path / "missing")
    assert "has no config.json" in error(tmp_path)
    assert "an encoder without a fine-tuned NER head" in error("e5-small")
    misc = save_checkpoint(tmp_path / "misc")
    config = json.loads((misc / "config.json").read_text())
    (misc / "config.json").write_text(json.dumps({**config, "id2label": {"0": "O", "1": "B-MISC"}}))
    assert "no label of the checkpoint maps to PER, ORG or LOC" in error(misc)
    (misc / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    assert "is a BertForMaskedLM, not a token classifier" in error(misc)
    bare = tmp_path / "bare"
    shutil.copytree(ckpt_dir, bare)
    for weights in bare.glob("*.safetensors"):
        weights.unlink()
    assert "has no weights" in error(bare)
    # a hub id is taken as it is (only a load, online, can tell); the missing entry is named
    assert parse_spec(_ckpt_spec("org/ner-model", 'targets = ["ca"]\n')).checkpoints[0].path == "org/ner-model"
    with pytest.raises(ConfigError, match=r"\(checkpoints\[0\]\): needs path"):
        parse_spec('name = "ck"\n\n[[checkpoints]]\ntargets = ["ca"]\n', origin="ck.toml")
    with pytest.raises(ConfigError, match="names no models"):
        parse_spec('name = "ck"\n', origin="ck.toml")
    with pytest.raises(ConfigError, match="the spec names no models"):
        parse_spec(_ckpt_spec(ckpt_dir, 'targets = ["ca"]\n', head='pairs = ["es-ca"]\n'), origin="ck.toml")


def test_any_wikiann_language_in_a_spec(tmp_path):
    spec = parse_spec('name = "w"\nmodels = ["tiny"]\npairs = ["es-zh-yue", "de→bar"]\nsettings = ["transfer"]\n')
    assert spec.pairs == (("es", "zh-yue"), ("de", "bar"))
    plan = expand(spec, tmp_path, online=False)
    assert plan.skipped == ("es→zh-yue skipped: no local data for es, zh-yue (set XNER_DATA_DIR or go online)",
                            "de→bar skipped: no local data for de, bar (set XNER_DATA_DIR or go online)")
    with pytest.raises(ConfigError, match=r"unknown language 'zh_yue'; did you mean 'zh-yue'"):
        parse_spec('name = "w"\nmodels = ["tiny"]\npairs = [["es", "zh_yue"]]\n')


def test_run_plan_evaluates_a_checkpoint_as_it_is(wikiann_dir, ckpt_dir, tmp_path):
    from xner_core.evaluation.modelstore import model_cache

    text = _ckpt_spec(ckpt_dir, 'role = "transfer"\nsource = "es"\ntargets = ["an"]\n',
                      head='[training]\nmax_train_sentences = 200\n\n[eval]\ntest_limit = 20\nbootstrap = 0\n'
                           'embed_model = "tiny"\n\n')
    plan = expand(parse_spec(text), wikiann_dir, online=False)
    assert plan.skipped == () and len(plan.eval_jobs) == 2
    cache, store = tmp_path / "cache", ResultsStore(tmp_path / "ck.duckdb")
    summary = run_plan(plan, store, data_dir=wikiann_dir, cache=cache, device="cpu")
    assert summary.failures == () and summary.jobs_run == 2 and summary.models_trained == 0
    assert model_cache(cache).entries() == []  # evaluated as it is: nothing trained or cached as a model
    frame = store.frame()
    assert set(frame["job_id"]) == {j.id for j in plan.eval_jobs}
    assert set(frame["model"]) == {str(ckpt_dir.resolve())} and set(frame["setting"]) == {"transfer"}
    assert set(frame["sources"]) == {"es"} and set(frame["target"]) == {"an"}
    clean = frame[(frame["perturbation"] == "clean") & (frame["scope"] == "overall")].iloc[0]
    assert clean["n_sentences"] == 20 and 0.0 <= clean["f1"] <= 1.0  # every word a LOC: a low, real score
    again = run_plan(plan, store, data_dir=wikiann_dir, cache=cache, device="cpu")
    assert again.jobs_run == 0 and again.jobs_done_before == 2  # resumable like any other job
