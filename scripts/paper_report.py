"""Report on our run of the study's grid beside its published numbers (the experiment-grid issue's closing note).

Reads the committed result tables (`data/results/*.parquet`) and the study's numbers (`data/reference/`) through
the same tidy frame the dashboard draws (`xner_core.analysis.tidy`), and writes/prints:

1. `data/results/paper_<model>_summary.csv`: one row per reference pair with our native and transfer F1 (clean)
   and F1 drops under P1/P2/P3 and the name swaps, beside the study's mBERT and XLM-R numbers;
2. the study's main findings tested on our points and on its own: Pearson/Spearman r (Fisher-z 95% CI and p) of
   transfer F1 and of the F1 drops against entity-token overlap (our measure and the study's), and whether
   transfer models lose less than native ones (paired over pairs, Wilcoxon signed-rank).

Usage: python scripts/paper_report.py [--model e5-small] [--out data/results/paper_e5-small_summary.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xner_core.analysis.stats import leave_one_out, robustness_gap, stats_table  # noqa: E402
from xner_core.analysis.tidy import read_reference_tables, spec_protocol, tidy_results  # noqa: E402
from xner_core.analysis.views import view_points  # noqa: E402
from xner_core.corpus.languages import reference_pairs  # noqa: E402
from xner_core.experiments.spec import load_spec  # noqa: E402
from xner_core.experiments.store import committed_results  # noqa: E402

PERTS = ("entity_replace", "context_replace", "entity_context", "person_swap", "location_swap")
SHORT = {"entity_replace": "P1", "context_replace": "P2", "entity_context": "P3", "person_swap": "PER swap",
         "location_swap": "LOC swap"}


def summary(points: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per pair: our clean F1 and drops per setting, the study's mBERT / XLM-R clean F1 and P1-P3 drops."""
    out = []
    for pair in points.sort_values("pair_order")["pair"].drop_duplicates():
        row: dict[str, object] = {"pair": pair}
        for origin, m in (("ours", model), ("published", "mbert"), ("published", "xlmr")):
            tag = model if origin == "ours" else m
            part = points[(points["pair"] == pair) & (points["origin"] == origin) & (points["model"] == m)]
            for setting in ("transfer", "native"):
                sp = part[part["setting"] == setting].set_index("perturbation")
                row[f"{tag}_{setting}_f1"] = sp["f1"].get("clean")
                for p in PERTS if origin == "ours" else PERTS[:3]:
                    row[f"{tag}_{setting}_drop_{SHORT[p]}"] = sp["drop"].get(p)
        out.append(row)
    return pd.DataFrame(out)


def fmt(x: object, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and x != x) else f"{float(x):.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ref = read_reference_tables()
    ours = committed_results()
    tidy = tidy_results(ref["published"], ours, ref["overlap"], ref["uriel"], reference_pairs())
    models = [args.model, "mbert", "xlmr"]
    protocol = spec_protocol(load_spec("paper"), args.model)
    points = view_points(tidy, models=models, settings=["native", "transfer"], protocol=protocol)
    print(f"our runs: {protocol}")
    points = points[points["pair_order"] < 10_000]  # the 13 reference pairs (ours has 12: no cs data)
    table = summary(points, args.model)
    out = Path(args.out or ROOT / "data" / "results" / f"paper_{args.model}_summary.csv")
    table.round(2).to_csv(out, index=False)
    print(f"wrote {out} ({len(table)} pairs)\n")

    print(f"| pair | {args.model} transfer | {args.model} native | mBERT transfer | mBERT native | XLM-R transfer | "
          "XLM-R native |\n|---|---|---|---|---|---|---|")
    for _, r in table.iterrows():
        cells = [fmt(r.get(f"{m}_{s}_f1")) for m in models for s in ("transfer", "native")]
        print(f"| {r['pair']} | " + " | ".join(cells) + " |")

    print("\nDrops (F1 points, clean − perturbed), ours: transfer / native")
    print("| pair | " + " | ".join(SHORT[p] for p in PERTS) + " |\n|---|" + "---|" * len(PERTS))
    for _, r in table.iterrows():
        cells = [f"{fmt(r.get(f'{args.model}_transfer_drop_{SHORT[p]}'))} / "
                 f"{fmt(r.get(f'{args.model}_native_drop_{SHORT[p]}'))}" for p in PERTS]
        print(f"| {r['pair']} | " + " | ".join(cells) + " |")

    transfer = points[points["setting"] == "transfer"]
    print("\nTransfer F1 (clean) vs entity-token overlap")
    for x in ("entity_token_overlap", "paper_token_overlap"):
        st = stats_table(transfer[transfer["perturbation"] == "clean"], x, "f1", by=("origin", "model"))
        for _, r in st.iterrows():
            print(f"  {x:22s} {r['origin']:9s} {r['model']:9s} n={r['n']:2d} pearson r={r['pearson_r']:+.2f} "
                  f"[{r['pearson_low']:+.2f}, {r['pearson_high']:+.2f}] p={r['pearson_p']:.3f}  spearman "
                  f"{r['spearman_r']:+.2f} p={r['spearman_p']:.3f}")
    ours_clean = transfer[(transfer["perturbation"] == "clean") & (transfer["origin"] == "ours")]
    loo = leave_one_out(ours_clean["entity_token_overlap"].tolist(), ours_clean["f1"].tolist(),
                                 ours_clean["pair"].tolist())
    top = ", ".join(f"without {r['left_out']} r={r['r']:+.2f} (p={r['p']:.3f})" for _, r in loo.head(3).iterrows())
    print(f"  leave-one-pair-out (ours, entity_token_overlap): r ranges {loo['r'].min():+.2f} to {loo['r'].max():+.2f};"
          f" largest shifts: {top}")
    print("\nTransfer F1 drop vs entity-token overlap, per perturbation")
    perturbed = transfer[transfer["perturbation"] != "clean"]
    for x in ("entity_token_overlap", "paper_token_overlap"):
        st = stats_table(perturbed, x, "drop", by=("origin", "model", "perturbation"))
        for _, r in st.iterrows():
            print(f"  {x:22s} {r['origin']:9s} {r['model']:9s} {SHORT.get(r['perturbation'], r['perturbation']):8s}"
                  f" n={r['n']:2d} pearson r={r['pearson_r']:+.2f} [{r['pearson_low']:+.2f}, {r['pearson_high']:+.2f}]"
                  f" p={r['pearson_p']:.3f} (Holm {r['pearson_p_holm']:.3f})  spearman {r['spearman_r']:+.2f}"
                  f" p={r['spearman_p']:.3f}")
    print("\nDo transfer models lose less than native ones? (drops in F1 points, paired by pair)")
    gap = robustness_gap(points)
    for _, r in gap.iterrows():
        print(f"  {r['origin']:9s} {r['model']:9s} {SHORT.get(r['perturbation'], r['perturbation']):8s} "
              f"n={r['n_pairs']:2d} native {r['native_drop']:5.1f} transfer {r['transfer_drop']:5.1f} gap "
              f"{r['gap']:+5.1f} transfer lost less in {r['transfer_less_share']:.0%} of pairs, "
              f"Wilcoxon p={r['wilcoxon_p']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
