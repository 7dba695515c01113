"""Pair explorer: one source→target pair (URL: ?source=fr&target=br&model=mbert).

Clean vs perturbed F1 of the native and transfer models (published beside ours, CIs for ours), per-type F1
(ours), the pair's overlap and URIEL features, and an example viewer of original vs perturbed test sentences,
perturbed live exactly as the evaluation of the pair's transfer model perturbs them (`xner_ui.inputs`: the corpus
that model saw, the capped test set, the evaluation's donor, encoder and seed), gold entities highlighted beside
the cached native and transfer models' predictions (`xner_ui.hooks`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.analysis import plots
from xner_core.analysis.tidy import FEATURES
from xner_core.analysis.views import compare_table, pair_rows
from xner_ui import catalog, data, hooks, inputs, page, render, state
from xner_ui.model_panel import model_panel

state.require_app()

sh = state.shared()
source, target, model = sh.source, sh.target, sh.model
pair = catalog.pair_info(source, target)
st.title(f"{catalog.language_name(source)} → {catalog.language_name(target)}  ({source}→{target})")
st.caption(f"Relation: **{pair.relation}**" + (f" · {render.md_escape(pair.note)}" if pair.note else "")
           + ". Change the pair, model or perturbation in the sidebar; the URL keeps them.")

tidy = data.tidy_frame()
rows = pair_rows(tidy, source, target)
if sh.protocol is not None:  # one of our experiments at a time (the sidebar's "Our runs")
    rows = rows[(rows["origin"] != "ours") | (rows["protocol"] == sh.protocol)]

st.subheader("Clean vs perturbed F1")
if rows.empty:
    st.info(f"No scores for {source}→{target} yet (the study covers its 13 pairs). Run {data.STORE_HINT} or "
            "`xner eval` for this pair.")
else:
    page.chart(plots.pair_f1_bars(rows), "pair_bars", f"xner_pair_{source}_{target}_f1")
    table = compare_table(rows)
    order = {p: i for i, p in enumerate(plots.perturbation_order(table["perturbation"]))}
    table = table.sort_values(["setting", "perturbation"], key=lambda col: col.map(order) if col.name ==
                              "perturbation" else col).reset_index(drop=True)
    series = [c for c in table.columns if c not in ("setting", "perturbation")]
    st.dataframe(table.assign(perturbation=table["perturbation"].map(plots.perturbation_title)),
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.1f") for c in series})
    page.download_csv(table, f"xner_pair_{source}_{target}_f1.csv", key="dl_pair_f1", label="F1 table (CSV)")
    if not (rows["origin"] == "ours").any():
        st.caption(f"Only the study's published numbers so far; ours appear here after {data.STORE_HINT}.")

st.subheader(f"Per-type F1 (ours, {model})")
typed = rows[(rows["origin"] == "ours") & (rows["model"] == model) & rows["scope"].isin(["PER", "ORG", "LOC"])]
if typed.empty:
    st.info(f"No per-type scores of ours for {source}→{target} with `{model}` yet. The study published overall F1 "
            f"only; our runs ({data.STORE_HINT}) write PER/ORG/LOC scores, typically with `e5-small` (pick it in "
            "the sidebar).")
else:
    page.chart(plots.per_type_bars(typed), "pair_types", f"xner_pair_{source}_{target}_{model}_types")
    page.download_csv(typed[["setting", "perturbation", "scope", "f1", "f1_low", "f1_high"]],
                      f"xner_pair_{source}_{target}_{model}_types.csv", key="dl_types", label="Per-type F1 (CSV)")

st.subheader(f"Seen vs unseen entities (ours, {model})")
family = state.select("Group the gold entities by", list(plots.SCOPE_FAMILIES), "entity_groups", "seen vs unseen",
                      radio=True, help="seen vs unseen: whether the entity's surface form occurs in the model's own "
                                       "training data; entity length: tokens per entity; training frequency: how "
                                       "often a seen entity occurs as an entity in that data (unseen = 0).")
scopes = plots.SCOPE_FAMILIES[family]
seen = rows[(rows["origin"] == "ours") & (rows["model"] == model) & rows["scope"].isin(list(scopes))]
if seen.empty:
    st.info(f"No {family} scores of ours for {source}→{target} with `{model}` yet (runs made since 2026-12 write "
            "seen/unseen scores; since 2026-12-06 also the length and training-frequency buckets).")
else:
    st.caption("F1 on the gold entities whose surface form occurs in the model's own training data (seen) and on "
               "those that do not (unseen): the study's central variable. P1 moves entities from the first group to "
               "the second. Each grouping partitions the entities, so its groups' counts add up to the whole.")
    page.chart(plots.per_type_bars(seen, scopes), "pair_seen",
               f"xner_pair_{source}_{target}_{model}_{family.replace(' ', '_')}")
    page.download_csv(seen[["setting", "perturbation", "scope", "f1", "f1_low", "f1_high"]],
                      f"xner_pair_{source}_{target}_{model}_seen.csv", key="dl_seen", label="Grouped F1 (CSV)")

st.subheader("Pair features")
features = []
# Our rows first: each carries the overlap measured on the data its models saw (its protocol's training and test
# sentences); the study's rows carry the committed table's values (WikiANN Rahimi splits, full training sets).
ours_first = rows.assign(_ours=rows["origin"] == "ours").sort_values("_ours", ascending=False, kind="stable")
measured_by_run = bool((rows["origin"] == "ours").any())
for setting in ("transfer", "native"):
    part = ours_first[ours_first["setting"] == setting]
    if part.empty:
        continue
    # a feature is a property of the pair: take it from the first row that carries it (ours add sub-word overlap)
    features.append({"setting": setting, **{label: (part[col].dropna().iloc[0] if col in part and
                                                    part[col].notna().any() else None)
                                            for col, label in FEATURES.items()}})
if features:
    feat = pd.DataFrame(features).set_index("setting").T.astype(float).reset_index(names="feature")
    st.dataframe(feat, hide_index=True, width="stretch",
                 column_config={s: st.column_config.NumberColumn(format="%.4f") for s in ("transfer", "native")})
    page.download_csv(feat, f"xner_pair_{source}_{target}_features.csv", key="dl_features",
                      label="Features (CSV)")
    where = (f"by our run ({render.md_escape(sh.protocol or 'our results')}) on the sentences its models saw"
             if measured_by_run else "on the WikiANN Rahimi splits")
    st.caption(f"Overlap (ours) is measured {where} (source train vs target test for transfer, target train vs "
               "target test for native); (study) is the study's measure on its own split.")

st.subheader("Examples: original vs perturbed")
pert_name = sh.perturbation
pert = catalog.perturbation_info(pert_name)
st.caption(f"**{plots.perturbation_title(pert_name)}** (`{pert_name}`): {pert.description}")
with page.guarded("the example viewer"):
    c1, c2 = st.columns([2, 1])
    n = state.slider("Sentences", 1, 20, "n", 5, where=c1)
    changed_only = state.select("Show", ["changed", "all"], "examples", "changed", where=c2, radio=True,
                                format_func=lambda v: "changed by the perturbation" if v == "changed" else
                                "all with entities") == "changed"
    keys = [hooks.ModelKey(model, setting, source, target) for setting in hooks.COMPARED]
    run = hooks.run_spec(sh.protocol, model)  # the examples are perturbed as the run the view shows perturbs
    options = inputs.eval_options(run)
    config = inputs.transfer_config(model, source, target, run)
    missing = inputs.missing_inputs(config, options, [pert_name])
    if missing is not None:
        st.info(missing.message, icon=":material/folder_off:")
    else:
        model_panel(keys, allow_train=False)
        with st.spinner("Perturbing the examples…"):
            examples = inputs.examples_for(config, options, pert_name, n, changed_only=changed_only)
        preds = {}
        for key in keys:
            orig = hooks.tag_words([e["tokens"] for e in examples], key)
            pert_pred = hooks.tag_words([e["p_tokens"] for e in examples], key)
            if orig is not None and pert_pred is not None:
                preds[key.setting] = (orig, pert_pred)
        only_changed = st.toggle("Only sentences whose prediction changed under the perturbation",
                                 key="only_changed", disabled=not preds,
                                 help="Compares the cached models' predictions on the original and the perturbed "
                                      "sentence.")
        if not preds:
            st.caption(f"Gold tags only: no cached `{render.md_escape(model)}` native or transfer model for this "
                       "pair (pick e5-small or tiny in the sidebar, or train one in the Sentence lab).")
        st.html(render.legend_html())
        shown = 0
        for i, e in enumerate(examples):
            blocks = [render.entity_html(e["tokens"], e["tags"], label="gold · original"),
                      render.entity_html(e["p_tokens"], e["p_tags"], e["changed"], label="gold · perturbed")]
            changed_pred = False
            for setting, (orig, pert_pred) in preds.items():
                blocks.append(render.entity_html(e["tokens"], orig[i], label=f"{setting} · original"))
                blocks.append(render.entity_html(e["p_tokens"], pert_pred[i], e["changed"],
                                                 label=f"{setting} · perturbed"))
                changed_pred |= list(orig[i]) != list(pert_pred[i]) or len(e["tokens"]) != len(e["p_tokens"])
            if only_changed and not changed_pred:
                continue
            st.html('<div style="border-bottom:1px solid #e5e7eb;padding:6px 0">' + "".join(blocks) + "</div>")
            shown += 1
        if only_changed and examples and not shown:
            st.info("No shown sentence changed any cached model's prediction; show more sentences or turn the "
                    "filter off.")
        if not examples:
            st.info("None of the target test sentences with entities is changed by this perturbation for this "
                    "pair." if changed_only else "No test sentences with entities found for this pair.")
        else:
            if changed_only:
                shown_what = f"The first {len(examples)} target test sentences changed by the perturbation"
            else:
                shown_what = (f"The first {len(examples)} target test sentences with entities; "
                              f"{sum(bool(e['changed']) for e in examples)} of them changed by the perturbation")
            st.caption(f"{shown_what}, {render.md_escape(inputs.describe(config, options))}.")
            table = pd.DataFrame([{"id": e["id"], "original": render.sentence_text(e["tokens"]),
                                   "perturbed": render.sentence_text(e["p_tokens"]), "gold_tags": " ".join(e["tags"]),
                                   "perturbed_tags": " ".join(e["p_tags"]),
                                   **{f"{s}_{part}": " ".join(p[k][i]) for s, p in preds.items()
                                      for k, part in enumerate(("original", "perturbed"))}}
                                  for i, e in enumerate(examples)])
            page.download_csv(table, f"xner_examples_{source}_{target}_{pert_name}.csv", key="dl_examples",
                              label="Examples (CSV)")
