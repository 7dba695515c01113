"""Overview: F1 drop (or F1) against a pair feature, per setting and perturbation; correlations; heatmap.

Shape: read state/URL -> cached core call (tidy frame) -> pure analysis/plots -> render. A click on a point
opens that pair in the pair explorer (selection -> `selection_to_filter` -> `st.switch_page`).
"""

from __future__ import annotations

import streamlit as st

from xner_core.analysis import plots
from xner_core.analysis.tidy import CLEAN, FEATURES, ORIGINS, OUTCOMES
from xner_core.analysis.views import pivot_drops, selection_to_filter
from xner_ui import catalog, data, hooks, page, state

state.require_app()

Y_LABELS = OUTCOMES
SCOPES = {"overall": "all", **{s: plots.SCOPE_LABELS[s] for fam in plots.SCOPE_FAMILIES.values() for s in fam},
          "PER": "PER", "ORG": "ORG", "LOC": "LOC"}

PAPER_PERTURBATIONS = ("entity_replace", "context_replace", "entity_context")

st.title("Overview")
st.caption(
    "How much F1 NER models lose when the target test set is perturbed, against how much the source and target "
    "share (entity/word overlap) and how far apart the languages are (URIEL). One point per language pair. "
    "**published**: the study's numbers (Manafi & Krishnaswamy 2024, mBERT and XLM-R); **ours**: our runs. "
    "Click a point to open its pair."
)
tidy = data.tidy_frame()
_, _, store_warning = data.our_results()
if store_warning:
    st.warning(store_warning)
if not (tidy["origin"] == "ours").any():
    st.info(f"No results of ours yet: the charts show the study's published numbers. Run {data.STORE_HINT} to "
            "add ours beside them.", icon=":material/info:")

present = set(tidy["perturbation"])
pert_options = [CLEAN] + [p for p in catalog.perturbation_names() if p in present]
model_options = list(dict.fromkeys(tidy["model"]))

c1, c2, c3 = st.columns([1, 2, 1])
y = state.select("Show", list(Y_LABELS), "y", "drop", where=c1, radio=True,
                 format_func=lambda v: "F1 drop" if v == "drop" else "F1")
x = state.select("Against", list(FEATURES), "x", "entity_token_overlap", where=c2,
                 format_func=lambda v: FEATURES[v])
origins = state.multiselect("Origin", ORIGINS, "origins", ORIGINS, where=c3)
c4, c5, c6 = st.columns([1, 1, 2])
models = state.multiselect("Models", model_options, "models", model_options, where=c4)
settings = state.multiselect("Settings", hooks.COMPARED, "settings", hooks.COMPARED, where=c5)
perts = state.multiselect("Perturbations", pert_options, "perturbations", PAPER_PERTURBATIONS, where=c6,
                          format_func=plots.perturbation_title)

scope = state.select("Entities scored", list(SCOPES), "scope", "overall", radio=True, format_func=SCOPES.get,
                     help="seen / unseen: the gold entities whose surface form occurs (does not occur) in the "
                          "model's own training data, the study's central variable; ours only (the study published "
                          "overall F1).")

# A drop is 0 by definition on the clean test set, so "clean" only makes sense for F1.
shown_perts = [p for p in perts if y == "f1" or p != CLEAN]
view = data.overview_view(y, x, tuple(models), tuple(settings), tuple(shown_perts), tuple(origins),
                          state.shared().protocol, scope)
points = view.points

st.subheader(f"{Y_LABELS[y]} vs {FEATURES[x].lower()}")
if points.empty:
    st.info("No points for these filters: pick at least one model, setting, perturbation and origin.")
else:
    event = page.chart(view.figure, "overview_scatter", f"xner_overview_{y}_vs_{x}", select=True)
    target_filter = selection_to_filter(event)
    if target_filter is not None:
        st.switch_page("pages/pair_explorer.py", query_params=target_filter)
    no_x = points[points[x].isna()]
    if not no_x.empty:
        pairs = ", ".join(sorted(set(no_x["pair"])))
        st.caption(f"{len(no_x)} points have no value for this feature and are not drawn ({pairs}; cs has no "
                   "local WikiANN data, so our overlap measures are missing for cs→sk).")
    if x.startswith("uriel_") and "native" in settings:
        st.caption("URIEL distances are 0 for native models (a language's distance to itself), so the native "
                   "panels have no slope.")
    page.download_csv(points, f"xner_overview_points_{y}_{x}.csv", key="dl_points", label="Points (CSV)")

    st.subheader("Correlations")
    st.caption("Per panel and series: Pearson and Spearman r with 95% CIs and two-sided p-values from Fisher's z "
               "(one method: a CI excludes 0 exactly when p < 0.05; no correction for the many tests shown), and "
               "the OLS line drawn above (band: 95% CI of the mean).")
    stats = view.stats
    st.dataframe(
        stats, hide_index=True, width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in stats.columns
                       if c not in ("setting", "perturbation", "model", "origin", "n")},
    )
    page.download_csv(stats, f"xner_overview_stats_{y}_{x}.csv", key="dl_stats", label="Correlations (CSV)")

    st.subheader("Pair × perturbation")
    h1, h2 = st.columns(2)
    hm_model = state.select("Heatmap model", models or model_options, "hm_model", (models or model_options)[0],
                            where=h1)
    hm_origins = [o for o in ORIGINS if o in set(points["origin"])] or list(ORIGINS)
    hm_origin = state.select("Heatmap origin", hm_origins, "hm_origin", hm_origins[0], where=h2, radio=True)
    cells = points[(points["model"] == hm_model) & (points["origin"] == hm_origin)]
    pivots = {s: pivot_drops(cells[cells["setting"] == s], y, shown_perts) for s in settings}
    page.chart(plots.drop_heatmap(pivots, Y_LABELS[y]), "overview_heatmap", f"xner_heatmap_{hm_model}_{y}")
    flat = [m.reset_index().assign(setting=s) for s, m in pivots.items() if not m.empty]
    if flat:
        import pandas as pd

        page.download_csv(pd.concat(flat, ignore_index=True), f"xner_heatmap_{hm_model}_{hm_origin}_{y}.csv",
                          key="dl_heatmap", label="Heatmap (CSV)")

with st.expander("What the numbers are"):
    st.markdown(
        "- **F1**: seqeval entity-level micro F1 (PER, ORG, LOC) × 100. **Drop** = clean F1 − perturbed F1 of "
        "the same model.\n"
        "- **P1 · unseen entities** (`entity_replace`): entity chunks shared with the source training data are "
        "replaced by unshared target chunks of the same type. **P2** (`context_replace`): overlapping context "
        "words become their nearest unseen neighbour. **P3** (`entity_context`): both.\n"
        "- **native**: trained on the target's own training set; **transfer**: trained on the source only, "
        "zero-shot on the target. Native points belong to the pair whose target they are.\n"
        "- Overlap **(study)** is the study's measure on its own data split; **(ours)** is measured on the "
        "WikiANN (Rahimi) splits we use. URIEL distances come from URIEL+ (urielplus 1.3.2)."
    )
