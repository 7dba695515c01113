"""Training methods: target-adaptive pretraining (TAPT) and robust training against plain transfer, per pair.

Shape: read state/URL (the sidebar's model; the method and its run) -> cached `xner_ui.data.method_view`
(`xner_core.analysis.methods`: the method's rows beside plain transfer rows of the same run, pair, seed and
perturbation; a paired t over pairs per perturbation) -> render.
"""

from __future__ import annotations

import streamlit as st

from xner_core.analysis import plots
from xner_core.analysis.findings import counted, p_is
from xner_core.analysis.methods import method_title
from xner_core.analysis.paired import comparison_of_method, paired_rows, pairs_without_paired_test
from xner_ui import data, page, runs, state

state.require_app()

sh = state.shared()
st.title("Training methods")
st.caption(
    "Does a training method make transfer stronger or more robust than plain fine-tuning on the source? Each "
    "method's models are compared with the plain transfer models of the same run, pair and seed: clean F1 (higher "
    "is better) and the drop under each perturbation (lower is better). Pairs are the unit (seeds averaged first): "
    "a paired t over pairs of method − plain with its 95 % interval (it excludes 0 exactly when p < 0.05), Wilcoxon "
    "beside it, and Holm over the perturbations of the method."
)
found = data.available_methods(sh.model)
if found.empty:
    st.info(f"No TAPT, robust-training or adapter rows of `{sh.model}` with a plain transfer baseline yet. Run "
            "`xner grid run tapt`, `xner grid run robust-pgd` or `xner grid run robust-word-smoothing` (their "
            "baseline is `paper-faithful`'s transfer models of the same seed, so run that too), then export or "
            "commit the rows.")
    st.stop()
labels = [f"{m} · {p}" for m, p in zip(found["method"], found["base_protocol"])]
choice = state.select("Method and run", labels, "method", labels[0],
                      help="The method's rows and the plain transfer rows of the same run (the recipe without the "
                           "method) they are compared with.")
row = found.iloc[labels.index(choice)]
method, proto = str(row["method"]), str(row["base_protocol"])
st.markdown(f"**{method_title(method)}** · run `{proto}` · {counted(int(row['pairs']), 'pair')} · seeds "
            f"{row['seeds']}")
if method == "tapt":
    for note in runs.tapt_notes([sh.model]):
        st.caption(note)
view = data.method_view(method, proto, sh.model)
tests = view.tests.assign(perturbation=view.tests["perturbation"].map(plots.perturbation_short))
st.dataframe(tests, hide_index=True, width="stretch", key="method_tests",
             column_config={c: st.column_config.NumberColumn(format="%.3f")
                            for c in ("plain", "method", "diff", "low", "high", "p", "p_holm", "wilcoxon_p")})
for _, r in tests.iterrows():
    if r["diff"] != r["diff"]:
        continue
    ci = f" [{r['low']:+.2f}, {r['high']:+.2f}]" if r["low"] == r["low"] else ""
    p_text = f", {p_is(r['p'])} (Holm {p_is(r['p_holm'])})" if r["p"] == r["p"] else ""
    st.markdown(f"- **{r['perturbation']}** ({r['outcome']}): plain {r['plain']:.2f} vs {method} "
                f"{r['method']:.2f}; {method} − plain {r['diff']:+.2f}{ci}{p_text}; {r['better_in']}, "
                f"n = {counted(int(r['n']), 'pair')}")
page.download_csv(view.comparison, f"xner_{method}_vs_plain.csv", key="dl_method",
                  label="Per pair, seed and perturbation (CSV)")
if (kind := comparison_of_method(method)) is not None:
    st.markdown(f"**Paired tests per pair** ({method} and plain transfer on the same test sentences, seed by seed; "
                "F1 difference with a 95 % bootstrap interval and its p): what one pair says before there are "
                "enough pairs for the test above")
    paired = paired_rows(data.paired_table(), (kind,), model=sh.model, method=method)
    page.paired_tests(paired, "method_paired", f"xner_{method}_paired.csv",
                      "TAPT models" if method == "tapt" else f"{method} models")
    if missing := pairs_without_paired_test(view.comparison, paired):
        st.caption(f"No paired test for {', '.join(missing)}: it needs both models' per-sentence predictions as "
                   "measured for these rows, and they are not in the committed table (the same configuration "
                   "trained again gives another model, so predictions from a new training are not paired with an "
                   "old row). They count in the test over pairs above.")
for pert, fig in view.figures.items():
    page.chart(fig, f"method_{pert}", f"xner_{method}_{pert}")
