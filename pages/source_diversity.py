"""Source diversity: for one target, F1 (clean and perturbed) against the number of source languages and their
typological diversity, multi-source and distillation models beside the best single-source transfer model; then
distillation students beside their teachers; "Which source for this target": the measured single sources ranked, and
a predictor-based shortlist of others.

Reads our result rows with setting multi_source / distill (written by `xner grid run diversity`) and the
single-source transfer rows (ours and the study's).
"""

from __future__ import annotations

import streamlit as st

from xner_core.analysis import plots
from xner_core.analysis.paired import paired_rows
from xner_core.analysis.tidy import CLEAN
from xner_core.analysis.views import diversity_view, student_teacher_view
from xner_ui import catalog, data, page, sources, state

state.require_app()

sh = state.shared()
st.title("Source diversity")
st.caption("Does training on more, and more varied, source languages make transfer to a low-resource target "
           "stronger and more robust? Diversity index: mean pairwise URIEL distance among the sources.")

tidy = data.tidy_frame()
ours = tidy[(tidy["origin"] == "ours") & tidy["setting"].isin(["multi_source", "distill"])]
multi_targets = sorted(set(ours["target"]))
# Any measured target or language with local data can be ranked for sources; the diversity charts need the
# multi-source targets, so one of them is the default when there are any.
targets = sorted({sh.target, *multi_targets, *tidy["target"].dropna().astype(str), *sources.local_languages()})
default_target = sh.target if sh.target in (multi_targets or targets) else (multi_targets or targets)[0]
c1, c2 = st.columns(2)
target = state.select("Target", targets, "div_target", default_target, where=c1,
                      format_func=lambda c: f"{c} · {catalog.language_name(c)}")
kind = state.select("Diversity index", catalog.DISTANCE_KINDS, "kind", "genetic", where=c2,
                    format_func=lambda k: f"mean pairwise URIEL {k} distance")

if ours.empty:
    st.info(
        "No multi-source or distillation results yet. This page plots them once they exist: run\n\n"
        "`xner grid run diversity`\n\n"
        "which trains, for several targets, models on growing source sets (e.g. es; es+fr; es+fr+it; …) with "
        "multi-source training and distillation, evaluates them clean and perturbed, and writes the rows to the "
        "results store (`xner results export` / `data/results/` to share them).",
        icon=":material/hub:",
    )
else:
    source_sets = sorted(set(ours.loc[ours["target"] == target, "sources"]) |
                     set(tidy.loc[(tidy["origin"] == "ours") & (tidy["target"] == target)
                                  & (tidy["setting"] == "transfer"), "sources"]))
    index = {s: data.diversity_index(s, kind) for s in source_sets}
    frame = diversity_view(tidy, target, index, sh.protocol)
    if frame.empty:
        st.info(f"No multi-source or distillation results for {target}; the targets that have them: "
                f"{', '.join(multi_targets)}.")
    else:
        perts = [CLEAN, sh.perturbation]
        st.caption(f"Panels: clean and the sidebar's perturbation ({plots.perturbation_title(sh.perturbation)}).")
        page.chart(plots.diversity_scatter(frame, "n_sources", "number of source languages", perts),
                   "div_count", f"xner_diversity_{target}_count")
        page.chart(plots.diversity_scatter(frame, "diversity", f"mean pairwise URIEL {kind} distance", perts),
                   "div_index", f"xner_diversity_{target}_{kind}")
        st.dataframe(frame, hide_index=True, width="stretch")
        page.download_csv(frame, f"xner_diversity_{target}_{kind}.csv", key="dl_div", label="Rows (CSV)")
        st.caption("Compute differs by design (hover a point or read `train_steps`): a multi-source model takes one "
                   "epoch over all its sources' data; a student takes 3 epochs (at least 1,000 steps) over the "
                   "target's unlabeled text, after its teachers (one transfer model per source) were trained. A "
                   "setting ending in \"≤N steps\" is a model whose training was stopped at N optimiser steps, to "
                   "compare with a student at equal compute.")
        st.markdown("**Paired tests: multi-source against its best single source** (same test sentences, seed "
                    "by seed; F1 difference with a 95 % bootstrap interval and its p)")
        page.paired_tests(paired_rows(data.paired_table(), ("multi_source_vs_best_single",), target),
                          "div_paired", f"xner_multi_vs_single_{target}.csv", "multi-source models")
    students = student_teacher_view(tidy, target, data.trained_again_frame())
    st.subheader("Students and their teachers")
    st.caption("Wu et al. (ACL 2020) report distillation students above their teachers. Each student here beside "
               "the best of its teachers (the transfer models of its sources, same recipe and seed; best on the "
               "clean test set, then held to each perturbation); gap = student − best teacher, in F1 points. Under "
               "P1 and P3 a model's perturbed test set depends on the sources it saw: a student of several sources "
               "has more of the target's entities replaced than a teacher of one, so there the two are each scored "
               "on their own perturbed version of the same sentences (the paired tests' `same_sentences`). A "
               "student's teachers are weighted uniformly, or by language similarity (Wu et al.'s second scheme: "
               "rows marked \"(similarity)\", `teacher_weights`). A teacher marked \"· trained again\" is a "
               "retraining of its committed job (`data/results/retrained/`): the training the student met, the latest "
               "made before it.")
    if students.empty:
        st.info(f"No distillation students for {target} yet: `xner grid run diversity-faithful` trains them "
                f"(single-teacher students from its pairs, multi-teacher ones from its source sets).")
    else:
        page.chart(plots.student_teacher_figure(students, [CLEAN, sh.perturbation]), "div_students",
                   f"xner_students_{target}")
        st.dataframe(students, hide_index=True, width="stretch")
        page.download_csv(students, f"xner_students_{target}.csv", key="dl_students", label="Students (CSV)")
        st.markdown("**Paired tests: each student against its best teacher, against multi-source training of "
                    "the same sources at equal steps, and similarity-weighted teachers against uniform ones** (same "
                    "test sentences, seed by seed)")
        page.paired_tests(paired_rows(data.paired_table(), ("student_vs_best_teacher", "student_vs_multi_source",
                                                            "similarity_vs_uniform"), target),
                          "st_paired", f"xner_students_paired_{target}.csv", "students and their teachers")

with page.guarded("the source ranking"):
    sources.which_source(target, sh)
