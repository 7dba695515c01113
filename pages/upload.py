"""Upload: a user's CoNLL file, validated by the core reader (errors with line numbers), its statistics, a
preview with entities highlighted, a perturbed copy to download, and the cached native and transfer models'
scores on both (per type, bootstrap CIs, paired drop) with their predictions to download.

The file is untrusted: `xner_core.corpus.conll.read_conll` turns every problem into a DataError naming the line, shown
as `st.error` (escaped); the size limit is `server.maxUploadSize` in .streamlit/config.toml. Models come
through `xner_ui.hooks`. Parsing, the perturbed copy (perturbed with the inputs of the sidebar pair's transfer
model evaluation, `xner_ui.inputs`) and the scores are cached by the file's content hash and the choices
(`xner_ui.upload`), so a rerun does not redo them.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import perturbation_title
from xner_core.analysis.tidy import CLEAN
from xner_ui import catalog, hooks, inputs, page, render, state
from xner_ui import upload as up
from xner_ui.model_panel import model_panel

state.require_app()

MAX_BYTES = 5 * 1024 * 1024  # the same limit as server.maxUploadSize
AUTO = "auto"

sh = state.shared()
st.title("Upload a CoNLL file")
st.caption("One token per line, token first and tag last (tab or space separated; IOB2, IOB1 or BIOES over PER, "
           "ORG, LOC; one column = unlabeled text), blank lines between sentences; `.gz` is fine. Up to 5 MB. "
           "CoNLL-2002/2003 files work as they are: columns between token and tag (POS, chunk) stay in the "
           "perturbed download, and other entity types (MISC) are read as O and counted.")

languages = catalog.language_names()
c1, c2 = st.columns([2, 1])
uploaded = c1.file_uploader("CoNLL file", type=["conll", "txt", "tsv", "iob", "iob2", "bio", "bioes", "gz",
                                                "train", "testa", "testb"],  # the CoNLL-2002/2003 file names
                            key="upload_file")
lang = state.select("Language of the file", [AUTO, *languages], "file_lang", AUTO, where=c2,
                    format_func=lambda c: "auto (from `br:` token prefixes)" if c == AUTO else f"{c} · {languages[c]}")

if uploaded is None:
    st.info("Choose a file to see its statistics and download a perturbed copy.", icon=":material/upload_file:")
else:
    parsed = up.read_upload(uploaded.getvalue(), "xx" if lang == AUTO else lang, MAX_BYTES)
    if isinstance(parsed, str):
        st.error(f"**{render.md_escape(uploaded.name)}** was not read: {render.md_escape(parsed)}",
                 icon=":material/error:")
    else:
        corpus = parsed.corpus
        for note in parsed.warnings:
            st.warning(render.md_escape(note))
        stats = parsed.stats
        m = st.columns(5)
        m[0].metric("Sentences", f"{stats['sentences']:,}")
        m[1].metric("Tokens", f"{stats['tokens']:,}")
        m[2].metric("Entities", f"{stats['entities']:,}")
        m[3].metric("Scheme", parsed.scheme.upper() + (" → IOB2" if parsed.converted else ""))
        m[4].metric("Other types → O", f"{parsed.mapped_entities:,}",
                    help="Entities of types other than PER, ORG and LOC (e.g. MISC), read as O: not tagged or "
                         "scored; the perturbed copy keeps their tags"
                         + "".join(f"; {t}: {n:,}" for t, n in parsed.other_types.items()))
        table = pd.DataFrame([stats])
        st.dataframe(table, hide_index=True, width="stretch")
        page.download_csv(table, "xner_upload_stats.csv", key="dl_upload_stats", label="Statistics (CSV)")

        st.subheader("Preview")
        st.html(render.legend_html() + "".join(render.entity_html(s.tokens, s.tags, label=str(i + 1))
                                               for i, s in enumerate(corpus.sentences[:5])))

        st.subheader("Perturbed copy")
        pert_name = state.select("Perturbation", catalog.perturbation_names(), "upload_pert", sh.perturbation,
                                 format_func=lambda n: f"{n} · {perturbation_title(n)}")
        pert = catalog.perturbation_info(pert_name)
        options = inputs.eval_options()
        config = inputs.transfer_config(sh.model, sh.source, sh.target)
        st.caption(f"{pert.description} The file itself is the replacement pool; the source training set is what "
                   f"the {sh.source}→{sh.target} transfer model saw (the sidebar pair), and names for swaps come "
                   f"from {options.donor_for(sh.target)}, as in its evaluation.")
        perturbed = None
        base = uploaded.name.rsplit(".", 1)[0] or "upload"
        with page.guarded("the perturbed copy"):
            missing = inputs.missing_inputs(config, options, [pert_name], test=False)
            if missing is not None:
                st.info(missing.message, icon=":material/folder_off:")
            else:
                perturbed = up.perturbed_copy(parsed, pert_name, config, options)
                report = pd.DataFrame([perturbed.report])
                st.dataframe(report, hide_index=True, width="stretch")
                st.download_button("Perturbed file (CoNLL)", perturbed.conll.encode("utf-8"),
                                   file_name=f"{base}.{pert_name}.conll", mime="text/plain", key="dl_perturbed",
                                   on_click="ignore", icon=":material/download:")
                page.download_csv(report, f"{base}.{pert_name}.report.csv", key="dl_report", label="Report (CSV)")

        st.subheader("Model predictions and scores")
        st.caption(f"The native and transfer `{render.md_escape(sh.model)}` models of the sidebar pair "
                   f"{sh.source}→{sh.target}, on the file as uploaded and on its perturbed copy.")
        keys = [hooks.ModelKey(sh.model, setting, sh.source, sh.target) for setting in hooks.COMPARED]
        with page.guarded("the model panel"):
            model_panel(keys)
        with page.guarded("the model scores"):
            conditions = [(CLEAN, corpus)] + ([(pert_name, perturbed.corpus)] if perturbed is not None else [])
            with st.spinner(f"Tagging {len(corpus):,} sentences…"):
                result = up.upload_scores(parsed, pert_name, perturbed, keys)
            preds = result.predictions
            settings = list(dict.fromkeys(s for s, _ in preds))
            if not settings:
                st.info("No cached model for this choice yet: train one above, or pick e5-small / tiny in the "
                        "sidebar.", icon=":material/model_training:")
            elif not parsed.labeled:
                st.caption("The file has no tags (one column), so there is nothing to score; the predictions "
                           "can still be downloaded.")
            else:
                scores = up.scores_frame(result)
                pct = ["precision", "recall", "f1", "f1_low", "f1_high", "drop", "drop_low", "drop_high"]
                shown = scores.assign(**{c: scores[c].astype(float) * 100 for c in pct})
                overall = shown[shown["scope"] == "overall"]
                m = st.columns(len(settings))
                for col, setting in zip(m, settings):
                    part = overall[overall["setting"] == setting].set_index("condition")
                    delta = (f"-{part.loc[pert_name, 'drop']:.1f} under {pert_name}"
                             if pert_name in part.index else None)
                    col.metric(f"{setting} F1", f"{part.loc[CLEAN, 'f1']:.1f}", delta=delta)
                st.dataframe(shown[["setting", "condition", "scope", "precision", "recall", "f1", "f1_low",
                                    "f1_high", "drop", "drop_low", "drop_high", "support"]],
                             hide_index=True, width="stretch",
                             column_config={c: st.column_config.NumberColumn(format="%.1f") for c in pct})
                page.download_csv(scores, f"{base}.scores.csv", key="dl_scores", label="Scores (CSV)")
            if settings:
                for cond, sents in conditions:
                    cols = {f"{s}_pred": preds[s, cond] for s in settings if (s, cond) in preds}
                    st.download_button(f"Predictions on the {'uploaded' if cond == CLEAN else cond} file "
                                       "(CoNLL: token, gold, " + ", ".join(cols) + ")",
                                       up.predictions_file(sents, cols).encode("utf-8"),
                                       file_name=f"{base}.{cond}.predictions.conll", mime="text/plain",
                                       key=f"dl_pred_{cond}", on_click="ignore", icon=":material/download:")
