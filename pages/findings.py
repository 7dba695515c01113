"""Findings: each finding of the reference study with our test on one of our runs, a verdict and its chart.

Shape: read state/URL (the sidebar's run, the clean-F1 floor) -> cached `xner_ui.data.findings_view` (the tests of
`xner_core.analysis.findings` and their figures) -> render. `scripts/findings_report.py` prints the same table as
markdown for the README.
"""

from __future__ import annotations

import streamlit as st

from xner_core.analysis.finding_frames import CLAIMS, FLOOR, VERDICT_COLOURS
from xner_core.analysis.findings import p_is
from xner_ui import data, page, state

state.require_app()

BADGES = {"holds": "🟢 holds", "weaker": "🟡 weaker", "not supported here": "🔴 not supported here",
          "not measured": "⚪ not measured"}

sh = state.shared()
st.title("Findings")
st.caption(
    "Each finding of the reference study (Manafi & Krishnaswamy 2024) with our test: the statistic, its 95 % "
    "interval and a p-value from the same method (the interval excludes 0 exactly when p < 0.05), the p-value "
    "Holm-corrected over every test of the table, n, seeds and a verdict. **holds**: the study's direction, Holm "
    "p < 0.05 and a second method agreeing (a cluster bootstrap that resamples pairs sharing a source together, "
    "or Wilcoxon); **weaker**: the study's direction, not significant after correction or under the second "
    "method; **not supported here**: the opposite direction or about 0; **not measured**: no rows yet. Language "
    "pairs are the unit (seeds averaged first); correlations use our own overlap measure (Fisher's z). Where the "
    "run has several seeds, each seed is also tested on its own over the same pairs (a t over seeds); a seed that "
    "points away from the study caps the verdict at **weaker**."
)
floor = state.slider("Clean-F1 floor (points)", 0, 90, "floor", int(FLOOR),
                     help="Drops of a model whose clean F1 is below this are left out: a model that barely tags "
                          "cannot lose much.")
view = data.findings_view(sh.protocol, float(floor))
findings = view.findings
table = findings.table
family = int(table["p"].notna().sum())
st.markdown(f"**Run:** `{findings.protocol or 'none of ours yet'}` · **floor:** {findings.floor:g} points · "
            f"**Holm family:** {family} tests with a p")
if table.empty:
    st.info(f"No results of ours yet. Run {data.STORE_HINT} to test the study's findings on them.")
else:
    shown = table.assign(verdict=table["verdict"].map(BADGES))
    st.dataframe(
        shown[["id", "verdict", "test", "estimate", "low", "high", "p", "p_holm", "n", "seeds", "finding", "study"]],
        hide_index=True, width="stretch", key="findings_table",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("estimate", "low", "high", "p",
                                                                                  "p_holm")},
    )
    page.download_csv(table, "xner_findings.csv", key="dl_findings", label="Findings (CSV)")
    for claim, title in CLAIMS.items():
        rows = table[table["id"].str.startswith(claim)]
        if rows.empty:
            continue
        st.subheader(f"{claim} · {title}")
        for _, r in rows.iterrows():
            stat = "—" if r["estimate"] != r["estimate"] else (
                f"{r['estimate']:+.2f}" + (f" [{r['low']:+.2f}, {r['high']:+.2f}]" if r["low"] == r["low"] else ""))
            p_text = "" if r["p"] != r["p"] else f" · {p_is(r['p'])} (Holm {p_is(r['p_holm'])})"
            study = f" · study: {r['study']}" if r["study"] else ""
            st.markdown(f":{VERDICT_COLOURS[r['verdict']]}-badge[{r['verdict']}] **{r['id']}** {r['test']}: "
                        f"{stat}{p_text} · n = {int(r['n'])} · seeds {r['seeds']}{study}")
            st.caption(f"{r['statistic']}. {r['note']}.")
            if r["seed_estimates"]:
                st.caption(f"Seeds as the unit ({int(r['seed_n'])} complete): {r['seed_estimates']}.")
            mine = findings.per_pair[(findings.per_pair["id"] == r["id"]) & (findings.per_pair["model"] == r["model"])]
            if not mine.empty and int(mine["seeds"].max()) >= 2:
                with st.expander(f"{r['id']} per pair, seeds as the unit"):
                    st.caption("Each pair's difference over its seeds: t interval and p over seeds, Holm within "
                               "this finding; descriptive, outside the table's Holm family.")
                    st.dataframe(mine.drop(columns=["id"]), hide_index=True, width="stretch",
                                 key=f"per_pair_{r['id']}_{r['model']}")
        for key in dict.fromkeys(k for k in rows["plot"] if k in view.figures):
            page.chart(view.figures[key], f"finding_{key}", f"xner_finding_{key.replace(':', '_')}")
    st.subheader("Left out")
    if findings.exclusions.empty:
        st.caption("Nothing: every pair's models are above the floor and every perturbation reached its share.")
    else:
        st.dataframe(findings.exclusions, hide_index=True, width="stretch", key="findings_exclusions")
