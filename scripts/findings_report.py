"""Report the reference study's findings tested on one of our runs, as markdown (the README's findings section).

One row per test (`xner_core.analysis.findings.compute_findings`): the statistic with its 95 % interval and a p-value
from the same method, the Holm-adjusted p over every test with a p, n, seeds, the verdict and the study's own figure;
then a note per test (the second method, leave-one-pair-out, the seed-to-seed spread) and what was left out, and why.

Reads a results table (parquet, default the paper-faithful run) or a DuckDB store, builds the one tidy frame with the
study's published rows (`xner_core.analysis.tidy.tidy_results`) and tests the run's protocol (the paper-faithful
preset's when present, else the one with the most rows; `--protocol` picks another).

Usage:
    python scripts/findings_report.py [--results data/results/paper_faithful_e5-small.parquet | --store FILE.duckdb]
        [--floor 50] [--protocol LABEL] [--n-boot 4000]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from xner_core.analysis.findings import FLOOR, Findings, compute_findings, fmt_p, p_is  # noqa: E402

DEFAULT_RESULTS = ROOT / "data/results/paper_faithful_e5-small.parquet"


def load(results: str | None, store: str | None) -> pd.DataFrame:
    """Our result rows from a parquet table or a DuckDB store."""
    if store:
        from xner_core.experiments.store import ResultsStore

        return ResultsStore(store).frame()
    return pd.read_parquet(results or DEFAULT_RESULTS)


def build(rows: pd.DataFrame, protocol: str | None = None, floor: float = FLOOR, n_boot: int = 4000) -> Findings:
    """The findings of a run: the tidy frame (published rows + `rows`) and the tests."""
    from xner_core.analysis.tidy import read_reference_tables, tidy_results
    from xner_core.corpus.languages import reference_pairs

    tables = read_reference_tables()
    tidy = tidy_results(tables["published"], rows, tables["overlap"], tables["uriel"], reference_pairs())
    return compute_findings(tidy, protocol=protocol, floor=floor, n_boot=n_boot)


def _num(v: float) -> str:
    return f"{v:+.2f}"


def interval_text(est: float, low: float, high: float) -> str:
    """"+0.53 [+0.05, +0.79]", the estimate alone when it has no interval, or "—"."""
    if not math.isfinite(est):
        return "—"
    return _num(est) + (f" [{_num(low)}, {_num(high)}]" if math.isfinite(low) and math.isfinite(high) else "")


def per_pair_markdown(findings: Findings) -> str:
    """The paired findings per pair with seeds as the unit (pairs with at least 2 seeds), as markdown."""
    per = findings.per_pair
    per = per[per["seeds"] >= 2] if not per.empty else per
    if per.empty:
        return "Per pair, seeds as the unit: no pair has 2 seeds yet."
    lines = ["Per pair, seeds as the unit (t over each pair's seeds; Holm within each finding; descriptive):", "",
             "| # | model | pair | seeds | a | b | a − b [95 % CI] | p | p (Holm, within) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in per.iterrows():
        lines.append(f"| {r['id']} | {r['model']} | {r['pair']} | {int(r['seeds'])} | {_num(r['a'])} | "
                     f"{_num(r['b'])} | {interval_text(r['diff'], r['low'], r['high'])} | {fmt_p(r['p'])} | "
                     f"{fmt_p(r['p_holm'])} |")
    return "\n".join(lines)


def to_markdown(findings: Findings) -> str:
    """The findings as markdown: a header line, the table, a note per test and what was left out.

    Args:
        findings: from `compute_findings`.

    Returns:
        Markdown text.
    """
    t = findings.table
    family = int(t["p"].notna().sum())
    lines = [f"Run: `{findings.protocol or '—'}`; clean-F1 floor {findings.floor:g} points (drops of weaker models "
             f"are left out); 95 % intervals; p two-sided, Holm-adjusted over the {family} tests with a p; the unit "
             "is the language pair (its seeds averaged first); overlap is ours, measured on the data each model saw. "
             "Where the run has several seeds, each is also tested on its own over the same pairs (a t over seeds, "
             "in the notes); a seed pointing away from the study caps the verdict at weaker.",
             "",
             "| # | finding | our test | statistic | n | seeds | estimate [95 % CI] | p | p (Holm) | verdict | study |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        n = int(r["n"]) if r["n"] == r["n"] else 0
        lines.append(f"| {r['id']} | {r['finding']} | {r['test']} | {r['statistic']} | {n} | {r['seeds']} | "
                     f"{interval_text(r['estimate'], r['low'], r['high'])} | {fmt_p(r['p'])} | "
                     f"{fmt_p(r['p_holm'])} | **{r['verdict']}** | {r['study'] or '—'} |")
    lines += ["", "Notes:"]
    for _, r in t.iterrows():
        alt = ""
        if r["alt_method"]:
            est = r["alt_estimate"]
            shown = interval_text(est, r["alt_low"], r["alt_high"]) + ", " if est == est else ""
            alt = f" {r['alt_method']}: {shown}{p_is(r['alt_p'])}."
        sd = f" Seed-to-seed sd {r['seed_sd']:.2f}." if r["seed_sd"] == r["seed_sd"] else ""
        reps = f" Seeds as the unit: {r['seed_estimates']}." if r["seed_estimates"] else ""
        lines.append(f"- {r['id']} ({r['model']}): {r['note']}.{alt}{sd}{reps}")
    ex = findings.exclusions
    lines += ["", "Left out:" if not ex.empty else "Left out: nothing."]
    lines += [f"- {e['finding']} · {e['model']} · {e['pair']} ({e['setting']}): {e['reason']}"
              for _, e in ex.iterrows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--results", default=str(DEFAULT_RESULTS), help="a results parquet (default: paper-faithful)")
    ap.add_argument("--store", default=None, help="read a DuckDB results store instead (e.g. a running grid's)")
    ap.add_argument("--floor", type=float, default=FLOOR, help="clean F1 (points) below which drops are left out")
    ap.add_argument("--protocol", default=None, help="the run to test (protocol label; default: paper-faithful)")
    ap.add_argument("--n-boot", type=int, default=4000, help="cluster-bootstrap resamples")
    ap.add_argument("--per-pair", action="store_true",
                    help="also print the paired findings per pair, seeds as the unit")
    args = ap.parse_args(argv)
    rows = load(args.results, args.store)
    findings = build(rows, args.protocol, args.floor, args.n_boot)
    print(to_markdown(findings))
    if args.per_pair:
        print("\n" + per_pair_markdown(findings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
