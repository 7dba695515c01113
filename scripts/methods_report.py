"""Report training methods (TAPT, robust training) against plain transfer, as markdown (the README's methods section).

For each method found in the given tables (`xner_core.analysis.methods.available_methods`): the run, pairs and
seeds, the compute its models took, then one row per perturbation (`method_tests`): mean plain vs method outcome
(clean F1; the drop under a perturbation), method − plain with its paired-t 95 % interval over pairs, p, the Holm p
over the method's perturbations, Wilcoxon, and in how many pairs the method did better. The Training methods page
shows the same.

Usage:
    python scripts/methods_report.py [--results data/results/paper_faithful_e5-small.parquet
        data/results/robust_word_smoothing_e5-small.parquet ...] [--model e5-small] [--per-pair]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from xner_core.analysis.findings import counted, fmt_p  # noqa: E402
from xner_core.analysis.methods import available_methods, method_comparison, method_tests, method_title  # noqa: E402
from xner_core.experiments.store import read_result_tables  # noqa: E402

DEFAULT_RESULTS = sorted(str(p) for p in (ROOT / "data/results").glob("*.parquet"))


def _num(v: float, signed: bool = False) -> str:
    return "—" if not math.isfinite(v) else (f"{v:+.2f}" if signed else f"{v:.2f}")


def report(rows: pd.DataFrame, model: str = "e5-small", per_pair: bool = False) -> str:
    """The markdown report of every method with a plain baseline in `rows`."""
    from xner_core.analysis.tidy import read_reference_tables, tidy_results
    from xner_core.corpus.languages import reference_pairs

    tables = read_reference_tables()
    tidy = tidy_results(tables["published"], rows, tables["overlap"], tables["uriel"], reference_pairs())
    found = available_methods(tidy, model)
    if found.empty:
        return f"No training-method rows of {model} with a plain transfer baseline in these tables."
    out: list[str] = []
    for _, m in found.iterrows():
        method, proto = str(m["method"]), str(m["base_protocol"])
        comp = method_comparison(tidy, method, model, proto)
        mine = rows[rows["job_id"].isin(tidy.loc[(tidy["method"] == method) & (tidy["base_protocol"] == proto),
                                                 "job_id"])]
        train = mine.drop_duplicates("config_hash")["train_seconds"].astype(float).sum() / 3600
        evals = mine.drop_duplicates("job_id")["eval_seconds"].astype(float).sum() / 3600
        n_models = mine["config_hash"].nunique()
        pairs = counted(int(m["pairs"]), "pair")
        out += [f"**{method_title(method)}** (`{method}`; run `{proto}`; {pairs}; "
                f"seeds {m['seeds']}; {counted(n_models, 'model')}: training {train:.2f} h + evaluation "
                f"{evals:.2f} h). Method − plain transfer of the same run, pair and seed; paired t over pairs:", "",
                "| perturbation | outcome | n | plain | method | method − plain [95 % CI] | p | p (Holm) | "
                "Wilcoxon p | |", "|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in method_tests(comp).iterrows():
            ci = f" [{_num(r['low'], True)}, {_num(r['high'], True)}]" if math.isfinite(r["low"]) else ""
            out.append(f"| {r['perturbation']} | {r['outcome']} | {int(r['n'])} | {_num(r['plain'])} | "
                       f"{_num(r['method'])} | {_num(r['diff'], True)}{ci} | {fmt_p(r['p'])} | "
                       f"{fmt_p(r['p_holm'])} | {fmt_p(r['wilcoxon_p'])} | {r['better_in']} |")
        if per_pair:
            out += ["", comp.to_markdown(index=False, floatfmt=".2f")]
        out.append("")
    return "\n".join(out).rstrip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--results", nargs="+", default=DEFAULT_RESULTS, help="result parquets (default: every "
                    "committed table under data/results/)")
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--per-pair", action="store_true", help="also print every pair, seed and perturbation")
    args = ap.parse_args(argv)
    rows = read_result_tables(args.results)  # a baseline job in two tables counts once
    print(report(rows, args.model, args.per_pair))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
