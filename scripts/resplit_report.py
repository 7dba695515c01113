"""Report on the study's data protocol (pooled, re-split WikiANN) beside the Rahimi splits, for the pairs whose
targets have small Rahimi training splits (br, an, ast: 1000 sentences; sco, oc, scn: 100).

Reads the committed result tables (`data/results/*.parquet`) through the dashboard's tidy frame and prints, per
pair and data protocol, our clean transfer / native F1 and F1 drops under P1-P3 and the name swaps, the study's
mBERT numbers beside them, and the native-vs-transfer drop comparison (`robustness_gap`) per protocol.

Usage: python scripts/resplit_report.py [--model e5-small]
    [--specs data/results/paper_e5-small.spec.toml data/results/paper_resplit_e5-small.spec.toml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xner_core.analysis import tidy as analysis_tidy  # noqa: E402
from xner_core.analysis.stats import robustness_gap  # noqa: E402
from xner_core.analysis.tidy import read_reference_tables, tidy_results  # noqa: E402
from xner_core.analysis.views import view_points  # noqa: E402
from xner_core.corpus.languages import reference_pairs  # noqa: E402
from xner_core.experiments.store import committed_results  # noqa: E402

PERTS = ("entity_replace", "context_replace", "entity_context", "person_swap", "location_swap")
SHORT = {"entity_replace": "P1", "context_replace": "P2", "entity_context": "P3", "person_swap": "PER",
         "location_swap": "LOC"}
DEFAULT_SPECS = ("data/results/paper_e5-small.spec.toml", "data/results/paper_resplit_e5-small.spec.toml")


def spec_protocol(path: str, model: str) -> tuple[str, list[str], str]:
    """(protocol label, pairs, data protocol) of a committed spec file, as the dashboard labels its rows."""
    from xner_core.experiments.spec import load_spec

    spec = load_spec(str(ROOT / path))
    return analysis_tidy.spec_protocol(spec, model), [f"{s}→{t}" for s, t in spec.pairs], str(spec.data)


def fmt(x: object) -> str:
    return "—" if x is None or (isinstance(x, float) and x != x) else f"{float(x):.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--specs", nargs="+", default=list(DEFAULT_SPECS))
    args = ap.parse_args()
    ref = read_reference_tables()
    tidy = tidy_results(ref["published"], committed_results(), ref["overlap"], ref["uriel"],
                                 reference_pairs())
    protocols = [spec_protocol(s, args.model) for s in args.specs]
    pairs = protocols[-1][1]
    published = view_points(tidy, models=["mbert"], settings=["native", "transfer"])
    published = published[published["origin"] == "published"]
    print("Clean F1 and drops (F1 points), transfer / native; mBERT = the study's published numbers\n")
    print("| pair | data | clean F1 | " + " | ".join(f"{SHORT[p]} drop" for p in PERTS) + " |")
    print("|---|---|---|" + "---|" * len(PERTS))
    views = {}
    for label, _, data in protocols:
        pts = view_points(tidy, models=[args.model], settings=["native", "transfer"], protocol=label)
        views[data] = pts[(pts["origin"] == "ours") & pts["pair"].isin(pairs)]
    for pair in pairs:
        for data, pts in [*views.items(), ("mBERT (study)", published)]:
            part = pts[pts["pair"] == pair]
            if part.empty:
                continue
            cells = []
            for col, pert in [("f1", "clean"), *[("drop", p) for p in PERTS]]:
                vals = []
                for setting in ("transfer", "native"):
                    s = part[(part["setting"] == setting) & (part["perturbation"] == pert)][col]
                    vals.append(fmt(s.iloc[0] if len(s) else None))
                cells.append(" / ".join(vals))
            print(f"| {pair} | {data} | " + " | ".join(cells) + " |")
    print("\nDo transfer models lose less than native ones on these pairs? (mean drops, paired by pair)")
    for data, pts in views.items():
        gap = robustness_gap(pts)
        for _, r in gap.iterrows():
            print(f"  {data:14s} {SHORT.get(r['perturbation'], r['perturbation']):4s} n={r['n_pairs']} native "
                  f"{r['native_drop']:5.1f} transfer {r['transfer_drop']:5.1f} transfer lost less in "
                  f"{r['transfer_less_share']:.0%} of pairs, Wilcoxon p={r['wilcoxon_p']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
