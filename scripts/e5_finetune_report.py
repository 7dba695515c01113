"""Results report (stages 3-5 end to end): e5-small fine-tuned on es, zero-shot to ca/an/ast, and native baselines.

Produces `data/results/e5_finetune_es.csv`, the figures of the models issue's closing note, through the real code
path: `evaluation.modelstore.train_model` (content-addressed model cache) and `evaluation.evaluate.evaluate` (clean test set, bootstrap CIs).

Training options are the `paper` preset's (e5-small's default lr 2e-4, 1 epoch, at most 5000 training sentences,
1000 dev sentences, batch 32, warmup 10 %), so after `xner grid run paper` every model is already cached and
the transfer/native rows equal the grid's clean rows; otherwise the script trains what is missing.

Runs:
- the es transfer model (es train, es dev for selection), scored zero-shot on the ca, an and ast test sets and
  on the es test set itself (the row `native es` is that same model: a native es model would be trained on the
  same data with the same seed; `trained_as` names the cache entry whose weights were scored);
- native ca, an, ast: each target's own train split (an and ast have 1000 sentences), its own test set.

Every test set is capped at `--test-limit` sentences (default 2000, the grid's).

Usage:
    XNER_DATA_DIR=/work/shared/data/wikiann python scripts/e5_finetune_report.py [--model e5-small] [--out ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLUMNS: tuple[str, ...] = ("model", "setting", "source", "target", "f1", "f1_low", "f1_high", "n_test",
                            "train_seconds", "eval_seconds", "config_hash", "trained_as")
SOURCE = "es"
TARGETS: tuple[str, ...] = ("ca", "an", "ast")


def overall_row(outcome: Any, source: str, trained_as: str) -> dict[str, Any]:
    """The report row of an evaluation outcome: its clean `overall` scope, F1 and bounds in percent.

    Args:
        outcome: a clean `evaluation.jobs.EvalOutcome`.
        source: the language the model was trained on.
        trained_as: config hash of the cache entry holding the weights.

    Returns:
        A dict with the keys of COLUMNS.
    """
    row = next(r for r in outcome.rows if r["scope"] == "overall")

    def pct(x: float | None) -> float | None:
        return None if x is None else round(100.0 * float(x), 2)

    return {
        "model": row["model"], "setting": row["setting"], "source": source, "target": row["target"],
        "f1": pct(row["f1"]), "f1_low": pct(row["f1_low"]), "f1_high": pct(row["f1_high"]),
        "n_test": row["n_sentences"], "train_seconds": round(float(row["train_seconds"] or 0.0), 1),
        "eval_seconds": round(float(row["eval_seconds"]), 1), "config_hash": row["config_hash"],
        "trained_as": trained_as,
    }


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the report table (header = COLUMNS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="e5-small")
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "data/results/e5_finetune_es.csv"))
    args = p.parse_args(argv)

    import torch

    from xner_core.evaluation.evaluate import evaluate
    from xner_core.evaluation.jobs import EvalOptions
    from xner_core.evaluation.modelstore import train_model
    from xner_core.runs.config import make_config
    from xner_core.experiments.spec import load_spec

    spec = load_spec("paper")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    log(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")

    def progress(step: int, total: int, info: dict) -> None:
        if step == 1 or step % 20 == 0 or step == total:
            log(f"  {info.get('stage')} step {step}/{total} loss {info.get('loss', 0):.3f} "
                f"elapsed {info.get('elapsed', 0):.0f}s")

    def config(target: str, setting: str, sources: tuple[str, ...] = ()) -> Any:
        return make_config(args.model, target, setting, sources=sources, options=spec.options, seed=spec.seeds[0],
                           data=spec.data)

    def train(cfg: Any) -> Any:
        t0 = time.perf_counter()
        lm = train_model(cfg, progress=progress, status=lambda m: log(f"  cache: {m}"))
        timings = lm.manifest.get("timings") or {}
        log(f"{cfg.setting} {','.join(cfg.sources) or cfg.target}: hash {lm.hash}, train_s {timings.get('train_s')}, "
            f"{timings.get('sentences_per_second')} sent/s, dev {(lm.manifest.get('dev_scores') or {}).get('best_dev_f1')}"
            f", call {time.perf_counter() - t0:.0f}s")
        return lm

    def score(cfg: Any, lm: Any, source: str) -> dict[str, Any]:
        out = evaluate(cfg, options=EvalOptions(test_limit=args.test_limit, bootstrap=args.bootstrap,
                                                embed_model=spec.embed_model), loaded=lm)
        row = overall_row(out[0], source, lm.hash)
        log(f"  {row['setting']} {source}->{row['target']}: F1 {row['f1']} [{row['f1_low']}, {row['f1_high']}] "
            f"n={row['n_test']} eval {row['eval_seconds']}s")
        return row

    rows: list[dict[str, Any]] = []
    es_lm = train(config(targets[0], "transfer", (SOURCE,)))
    rows.append(score(config(SOURCE, "native"), es_lm, SOURCE))
    for tgt in targets:
        rows.append(score(config(tgt, "transfer", (SOURCE,)), es_lm, SOURCE))
        write_csv(rows, Path(args.out))
    for tgt in targets:
        lm = train(config(tgt, "native"))
        rows.append(score(config(tgt, "native"), lm, tgt))
        write_csv(rows, Path(args.out))
        del lm
    log(f"wrote {len(rows)} rows to {args.out}")
    for r in rows:
        print(",".join(str(r[c]) for c in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
