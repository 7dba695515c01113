"""Report on the source-diversity grid (`xner grid run diversity`): per target, the best single source beside
multi-source training and distillation from growing, more varied source sets, clean and perturbed.

Reads the committed result tables (`data/results/*.parquet`) through the dashboard's tidy frame
(`xner_core.analysis.views.diversity_view`, the Source diversity page's data) and prints one table per target plus
the correlation of clean F1 with the number of sources and with their mean pairwise URIEL genetic distance; then
each distillation student beside its best teacher (`student_teacher_view`, the page's "Students and their teachers").

Usage: python scripts/diversity_report.py [--targets ca,an,ast] [--kind genetic]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xner_core.analysis.stats import correlation  # noqa: E402
from xner_core.analysis.tidy import read_reference_tables, tidy_ours, tidy_results  # noqa: E402
from xner_core.analysis.views import diversity_view, student_teacher_view  # noqa: E402
from xner_core.corpus.languages import reference_pairs  # noqa: E402
from xner_core.experiments.store import committed_results, retrained_results  # noqa: E402
from xner_core.features.distance import source_diversity  # noqa: E402


def num(v: float, fmt: str) -> str:
    """A number in `fmt`, or "—" for NaN."""
    return "—" if v != v else format(v, fmt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="ca,an,ast")
    ap.add_argument("--kind", default="genetic", help="URIEL distance kind of the diversity index")
    args = ap.parse_args()
    ref = read_reference_tables()
    tidy = tidy_results(ref["published"], committed_results(), ref["overlap"], ref["uriel"],
                                 reference_pairs())
    multi = tidy[tidy["setting"].isin(["multi_source", "distill"])]
    diversity = {s: source_diversity(s.split(",")).mean_distance.get(args.kind) for s in set(multi["sources"])}
    for target in [t for t in args.targets.split(",") if t]:
        view = diversity_view(tidy, target, diversity)
        if view.empty:
            print(f"{target}: no multi-source rows")
            continue
        perts = [p for p in dict.fromkeys(view["perturbation"]) if p != "clean"]
        print(f"\n{target} ({view['protocol'].iloc[0]}): clean F1, then drops under " + ", ".join(perts))
        print("| setting | sources | n | diversity | clean F1 | " + " | ".join(perts) + " |")
        print("|---|---|---|---|---|" + "---|" * len(perts))
        order = {"best single source": 0, "multi_source": 1, "distill": 2}
        keyed = view.assign(_o=view["setting"].map(order)).sort_values(["_o", "n_sources", "diversity"])
        for (setting, sources), part in keyed.groupby(["setting", "sources"], sort=False):
            by = part.set_index("perturbation")
            div = by["diversity"].iloc[0]
            cells = [f"{by['drop'].get(p, float('nan')):.1f}" for p in perts]
            print(f"| {setting} | {sources} | {int(by['n_sources'].iloc[0])} | "
                  f"{'—' if div != div else f'{div:.2f}'} | {by['f1'].get('clean', float('nan')):.1f} | "
                  + " | ".join(cells) + " |")
        clean = view[(view["perturbation"] == "clean") & (view["setting"] != "best single source")]
        for setting, part in clean.groupby("setting"):
            for x in ("n_sources", "diversity"):
                c = correlation(part[x], part["f1"], "spearman")
                print(f"  {setting:12s} clean F1 vs {x:9s}: Spearman {c.r:+.2f} (n={c.n}, p={c.p:.2f})")
    # teachers trained again (data/results/retrained/) count for the students trained after them
    students = student_teacher_view(tidy, None, tidy_ours(retrained_results(), ref))
    students = students[students["target"].isin([t for t in args.targets.split(",") if t])]
    alone = students[students["seeds"] == 0]
    students = students[students["seeds"] > 0]
    if not alone.empty:
        print(f"\n{alone[['target', 'sources']].drop_duplicates().shape[0]} students have no teacher rows of their "
              f"own (their teachers were trained inside the run and never evaluated): left out below")
    if not students.empty:
        print("\nStudents and their best teacher (F1 points; gap = student - best teacher; mean over the seeds "
              "that have both)")
        print("| target | teachers | weights | perturbation | student F1 | best teacher | its F1 | gap | "
              "student steps | teacher steps | seeds |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        order = ["target", "n_sources", "sources", "teacher_weights", "perturbation"]
        for r in students.sort_values(order).itertuples():
            print(f"| {r.target} | {str(r.sources).replace(',', '+')} | {r.teacher_weights} | {r.perturbation} | "
                  f"{r.student_f1:.1f} | "
                  f"{r.best_teacher if r.best_teacher == r.best_teacher else '—'} | {num(r.best_teacher_f1, '.1f')} "
                  f"| {num(r.gap, '+.1f')} | {num(r.student_steps, ',.0f')} | {num(r.teacher_steps, ',.0f')} "
                  f"| {r.seeds} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
