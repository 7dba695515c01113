"""Upload: a user's CoNLL file, validated by the core reader (errors with line numbers), its statistics, a
preview with entities highlighted, and a perturbed copy to download.

The file is untrusted: `xner_core.conll.read_conll` turns every problem into a DataError naming the line, shown
as `st.error` (escaped); the size limit is `server.maxUploadSize` in .streamlit/config.toml. Model scores and
predictions come through `xner_ui.hooks.predictions_for`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.conll import read_conll, write_conll
from xner_core.corpus import corpus_stats, load_wikiann
from xner_core.errors import DataError
from xner_core.languages import all_languages
from xner_core.perturb import build_context, get_perturbation, perturb_corpus, perturbation_names
from xner_core.plots import perturbation_title
from xner_ui import data, hooks, page, render, state

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
        with page.guarded("the perturbed copy"):
            needs_source = any(n in pert.needs for n in ("source", "donor"))
            missing = data.missing_splits([(sh.source, "train")]) if needs_source else None
            if missing is not None:
                st.info(missing.message, icon=":material/folder_off:")
            elif "embed" in pert.needs and hooks.word_embedder(sh.model) is None:
                st.info(f"`{pert_name}` needs a word embedder (comes with the models); pick another perturbation.")
            else:
                from xner_core.runner import donor_corpus

                ctx = build_context(
                    load_wikiann(sh.source, "train") if "source" in pert.needs else None, corpus,
                    donor=donor_corpus(sh.source) if "donor" in pert.needs else None,
                    embed=hooks.word_embedder(sh.model), lang=corpus.lang if corpus.lang != "xx" else sh.target,
                )
                result = perturb_corpus(pert_name, corpus, ctx, seed=0)
                report = pd.DataFrame([result.report.as_dict()])
                st.dataframe(report, hide_index=True, width="stretch")
                base = uploaded.name.rsplit(".", 1)[0] or "upload"
                st.download_button("Perturbed file (CoNLL)", write_conll(result.corpus).encode("utf-8"),
                                   file_name=f"{base}.{pert_name}.conll", mime="text/plain", key="dl_perturbed",
                                   on_click="ignore", icon=":material/download:")
                page.download_csv(report, f"{base}.{pert_name}.report.csv", key="dl_report", label="Report (CSV)")

        preds = hooks.predictions_for(list(corpus.sentences), hooks.ModelKey(sh.model, "native", sh.source,
                                                                               sh.target))
        if preds is None:
            st.caption("Scores and predictions of the native and transfer models on this file appear here once "
                       "the models are wired into the dashboard.")
