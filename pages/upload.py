"""Upload: a user's CoNLL file, validated by the core reader (errors with line numbers), its statistics, a
preview with entities highlighted, a perturbed copy to download, and the cached native and transfer models'
scores on both (per type, bootstrap CIs, paired drop) with their predictions to download.

The file is untrusted: `xner_core.corpus.conll.read_conll` turns every problem into a DataError naming the line, shown
as `st.error` (escaped); the size limit is `server.maxUploadSize` in .streamlit/config.toml. Models come
through `xner_ui.hooks`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import perturbation_title
from xner_core.corpus.conll import predictions_conll, read_conll, write_conll
from xner_core.corpus.languages import all_languages
from xner_core.corpus.wikiann import corpus_stats, load_wikiann
from xner_core.errors import DataError
from xner_core.evaluation.metrics import condition_rows
from xner_core.perturb.registry import build_context, get_perturbation, perturb_corpus, perturbation_names
from xner_ui import data, hooks, page, render, state
from xner_ui.model_panel import model_panel

state.require_app()

MAX_BYTES = 5 * 1024 * 1024  # the same limit as server.maxUploadSize
AUTO = "auto"

sh = state.shared()
st.title("Upload a CoNLL file")
st.caption("One token per line, token first and tag last (tab or space separated; IOB2, IOB1 or BIOES over PER, "
           "ORG, LOC; one column = unlabeled text), blank lines between sentences; `.gz` is fine. Up to 5 MB.")

languages = {lang.code: lang.name for lang in all_languages()}
c1, c2 = st.columns([2, 1])
uploaded = c1.file_uploader("CoNLL file", type=["conll", "txt", "tsv", "iob", "iob2", "bio", "bioes", "gz"],
                            key="upload_file")
lang = state.select("Language of the file", [AUTO, *languages], "file_lang", AUTO, where=c2,
                    format_func=lambda c: "auto (from `br:` token prefixes)" if c == AUTO else f"{c} · {languages[c]}")

if uploaded is None:
    st.info("Choose a file to see its statistics and download a perturbed copy.", icon=":material/upload_file:")
else:
    try:
        parsed = read_conll(uploaded.getvalue(), lang="xx" if lang == AUTO else lang, max_bytes=MAX_BYTES)
    except DataError as exc:
        st.error(f"**{render.md_escape(uploaded.name)}** was not read: {render.md_escape(str(exc))}",
                 icon=":material/error:")
        parsed = None
    if parsed is not None:
        corpus = parsed.corpus
        for note in parsed.warnings:
            st.warning(render.md_escape(note))
        stats = corpus_stats(corpus)
        m = st.columns(4)
        m[0].metric("Sentences", f"{stats.sentences:,}")
        m[1].metric("Tokens", f"{stats.tokens:,}")
        m[2].metric("Entities", f"{stats.entities:,}")
        m[3].metric("Scheme", parsed.scheme.upper() + (" → IOB2" if parsed.converted else ""))
        table = pd.DataFrame([{"language": corpus.lang, "sentences": stats.sentences, "tokens": stats.tokens,
                               "entities": stats.entities, **{f"entities_{t}": n for t, n in
                                                              stats.entities_by_type.items()},
                               "entity_tokens": stats.entity_tokens, "mean_length": round(stats.mean_length, 2),
                               "max_length": stats.max_length, "vocabulary": stats.vocab_size}])
        st.dataframe(table, hide_index=True, width="stretch")
        page.download_csv(table, "xner_upload_stats.csv", key="dl_upload_stats", label="Statistics (CSV)")

        st.subheader("Preview")
        st.html(render.legend_html() + "".join(render.entity_html(s.tokens, s.tags, label=str(i + 1))
                                               for i, s in enumerate(corpus.sentences[:5])))

        st.subheader("Perturbed copy")
        pert_name = state.select("Perturbation", perturbation_names(), "upload_pert", sh.perturbation,
                                 format_func=lambda n: f"{n} · {perturbation_title(n)}")
        pert = get_perturbation(pert_name)
        st.caption(f"{pert.description} The file itself is the replacement pool; the source training set is "
                   f"{sh.source}'s (the sidebar pair), which also donates names for swaps.")
        perturbed = None
        base = uploaded.name.rsplit(".", 1)[0] or "upload"
        with page.guarded("the perturbed copy"):
            needs_source = any(n in pert.needs for n in ("source", "donor"))
            missing = data.missing_splits([(sh.source, "train")]) if needs_source else None
            if missing is not None:
                st.info(missing.message, icon=":material/folder_off:")
            else:
                from xner_core.evaluation.runner import donor_corpus

                ctx = build_context(
                    load_wikiann(sh.source, "train") if "source" in pert.needs else None, corpus,
                    donor=donor_corpus(sh.source) if "donor" in pert.needs else None,
                    embed=hooks.word_embedder(), lang=corpus.lang if corpus.lang != "xx" else sh.target,
                )
                with st.spinner("Perturbing the file…"):
                    result = perturb_corpus(pert_name, corpus, ctx, seed=0)
                perturbed = result.corpus
                report = pd.DataFrame([result.report.as_dict()])
                st.dataframe(report, hide_index=True, width="stretch")
                st.download_button("Perturbed file (CoNLL)", write_conll(perturbed).encode("utf-8"),
                                   file_name=f"{base}.{pert_name}.conll", mime="text/plain", key="dl_perturbed",
                                   on_click="ignore", icon=":material/download:")
                page.download_csv(report, f"{base}.{pert_name}.report.csv", key="dl_report", label="Report (CSV)")

        st.subheader("Model predictions and scores")
        st.caption(f"The native and transfer `{render.md_escape(sh.model)}` models of the sidebar pair "
                   f"{sh.source}→{sh.target}, on the file as uploaded and on its perturbed copy.")
        keys = [hooks.ModelKey(sh.model, setting, sh.source, sh.target) for setting in hooks.SETTINGS]
        with page.guarded("the model panel"):
            model_panel(keys)
        with page.guarded("the model scores"):
            conditions = [("clean", corpus)] + ([(pert_name, perturbed)] if perturbed is not None else [])
            preds: dict[tuple[str, str], list[list[str]]] = {}
            with st.spinner(f"Tagging {len(corpus):,} sentences…"):
                for key in keys:
                    for cond, sents in conditions:
                        tagged = hooks.predictions_for(list(sents.sentences), key)
                        if tagged is not None:
                            preds[key.setting, cond] = tagged
            settings = list(dict.fromkeys(s for s, _ in preds))
            if not settings:
                st.info("No cached model for this choice yet: train one above, or pick e5-small / tiny in the "
                        "sidebar.", icon=":material/model_training:")
            elif not parsed.labeled:
                st.caption("The file has no tags (one column), so there is nothing to score; the predictions "
                           "can still be downloaded.")
            else:
                rows = []
                for setting in settings:
                    clean_pred = preds[setting, "clean"]
                    for cond, sents in conditions:
                        reference = (corpus.tags, clean_pred) if cond != "clean" else (None, None)
                        for r in condition_rows(sents.tags, preds[setting, cond], *reference, n_resamples=500):
                            rows.append({"setting": setting, "condition": cond, **r})
                scores = pd.DataFrame(rows)
                pct = ["precision", "recall", "f1", "f1_low", "f1_high", "drop", "drop_low", "drop_high"]
                shown = scores.assign(**{c: scores[c].astype(float) * 100 for c in pct})
                overall = shown[shown["scope"] == "overall"]
                m = st.columns(len(settings))
                for col, setting in zip(m, settings):
                    part = overall[overall["setting"] == setting].set_index("condition")
                    delta = (f"-{part.loc[pert_name, 'drop']:.1f} under {pert_name}"
                             if pert_name in part.index else None)
                    col.metric(f"{setting} F1", f"{part.loc['clean', 'f1']:.1f}", delta=delta)
                st.dataframe(shown[["setting", "condition", "scope", "precision", "recall", "f1", "f1_low",
                                    "f1_high", "drop", "drop_low", "drop_high", "support"]],
                             hide_index=True, width="stretch",
                             column_config={c: st.column_config.NumberColumn(format="%.1f") for c in pct})
                page.download_csv(scores, f"{base}.scores.csv", key="dl_scores", label="Scores (CSV)")
            if settings:
                for cond, sents in conditions:
                    cols = {f"{s}_pred": preds[s, cond] for s in settings if (s, cond) in preds}
                    st.download_button(f"Predictions on the {'uploaded' if cond == 'clean' else cond} file "
                                       "(CoNLL: token, gold, " + ", ".join(cols) + ")",
                                       predictions_conll(sents, cols).encode("utf-8"),
                                       file_name=f"{base}.{cond}.predictions.conll", mime="text/plain",
                                       key=f"dl_pred_{cond}", on_click="ignore", icon=":material/download:")
