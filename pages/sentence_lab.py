"""Sentence lab: type a sentence (any script) or draw one from the target test set, and see every perturbed
variant with its entities highlighted, beside the native and transfer models' predictions.

Words come from `xner_core.inference.predict.split_words`; entities from optional markup (`[Juan Pérez|PER]`) or, for a
drawn sentence, its gold tags; the variants from `xner_core.perturb.registry.perturb_sentence` with the pair's context
(source train set, target test set as the replacement pool, source names as donor). Everything the user typed is
rendered escaped (`xner_ui.render`). Model predictions come through `xner_ui.hooks.predictions_for`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import perturbation_title
from xner_core.corpus.languages import all_languages
from xner_core.corpus.textcheck import check_sentence
from xner_core.corpus.wikiann import Sentence
from xner_core.errors import DataError
from xner_core.inference.predict import join_words
from xner_core.perturb.registry import build_context, get_perturbation, perturb_sentence, perturbation_names
from xner_ui import data, hooks, page, render, state
from xner_ui.model_panel import model_panel

state.require_app()

_NEED_REASON = {
    "source": "the source training set",
    "target": "the target test set",
    "donor": "donor-language names",
    "embed": "a word embedder",
}
DEFAULT_TEXT = "[Anjela Duval|PER] was born in [Quimper|LOC] and wrote for [Al Liamm|ORG] ."
GRID = '<div style="display:grid;grid-template-columns:minmax(140px,1fr) repeat({n},minmax(0,3fr));gap:4px 12px">'

sh = state.shared()
source, target = sh.source, sh.target
st.title("Sentence lab")
st.caption(f"Pair **{source}→{target}**, model **{render.md_escape(sh.model)}** (change them in the sidebar). Mark "
           "entities as `[words|PER]`, `[words|ORG]`, `[words|LOC]`, or draw a sentence with gold tags from the "
           "target test set.")

languages = {lang.code: lang.name for lang in all_languages()}
c1, c2 = st.columns([1, 1])
mode = state.select("Sentence", ["type", "draw"], "mode", "type", where=c1, radio=True,
                    format_func=lambda m: "type one" if m == "type" else "draw from the test set")
lang = state.select("Language (stopwords, sentence language)", list(languages), "lab_lang",
                    target if target in languages else "br", where=c2,
                    format_func=lambda c: f"{c} · {languages[c]}")
names = perturbation_names()
chosen = state.multiselect("Perturbations", names, "perts", names, format_func=perturbation_title)

missing = data.missing_splits([(source, "train"), (target, "test")])
if missing is not None:
    st.info(missing.message + " Perturbations that need the pair's data are skipped.", icon=":material/folder_off:")
    ctx = build_context(None, None, embed=hooks.word_embedder(), lang=lang)
else:
    ctx = data.context_for(source, target, lang=lang, donor=source, embed_model=hooks.embed_model())

sentence: Sentence | None = None
if mode == "type":
    text = state.text_area("Your sentence", "text", DEFAULT_TEXT, max_chars=500,
                           placeholder="Type a sentence in any script; mark entities as [words|PER]")
    if not text.strip():
        st.info("Type a sentence to see its perturbed variants.")
    else:
        try:
            words, tags = render.parse_marked_text(check_sentence(text, max_chars=500))
        except DataError as exc:
            st.error(render.md_escape(str(exc)), icon=":material/error:")
        else:
            if words:
                sentence = Sentence(tuple(words), tuple(tags), lang, "lab-0")
            else:
                st.info("The text holds no words (only markup or spaces); type a sentence.")
elif ctx.target is None:
    st.info("Drawing a sentence needs the target test set; type one instead.")
else:
    i = state.slider("Test sentence", 0, len(ctx.target) - 1, "i", 0)
    drawn = ctx.target[i]
    sentence = Sentence(drawn.tokens, drawn.tags, lang, drawn.id)

if sentence is not None:
    st.subheader("Models")
    keys = [hooks.ModelKey(sh.model, s, source, target) for s in hooks.SETTINGS]
    with page.guarded("the model panel"):
        model_panel(keys)

    st.subheader("Words")
    st.code(" │ ".join(sentence.tokens), language=None, wrap_lines=True)
    if st.toggle("Show sub-word pieces", key="pieces",
                 help="How the model's tokenizer splits each word; the tag is read from the first piece."):
        pieces = hooks.subword_pieces(sentence.tokens, keys[0]) or hooks.subword_pieces(sentence.tokens, keys[1])
        if pieces is None:
            st.caption("Sub-word pieces come from a cached model's tokenizer; none is cached for this choice yet.")
        else:
            st.dataframe(pd.DataFrame({"word": list(sentence.tokens), "pieces": [" ".join(p) for p in pieces],
                                       "n": [len(p) for p in pieces]}), hide_index=True, width="stretch")

    rows, skipped, variants = [], [], [("input", sentence, set())]
    with st.spinner("Perturbing (the first context-word perturbation embeds the target vocabulary once)…"):
        for name in chosen:
            pert = get_perturbation(name)
            lacking = [n for n in pert.needs if getattr(ctx, n) is None]
            if lacking:
                skipped.append(f"`{name}` (needs {', '.join(_NEED_REASON[n] for n in lacking)})")
                continue
            with page.guarded(f"the {name} variant"):
                res = perturb_sentence(name, sentence, ctx, seed=0)
                variants.append((name, res.corpus[0], render.changed_positions(res.changes)))

    # One call per model tags the input and every variant.
    batch = [v for _, v, _ in variants]
    preds: dict[str, list[list[str]] | None] = {}
    for key in keys:
        with page.guarded(f"the {key.setting} model's predictions"):
            preds[key.setting] = hooks.predictions_for(batch, key)
    shown = [s for s, p in preds.items() if p is not None]

    st.subheader("Perturbed variants")
    st.html(render.legend_html())
    header = ['<div style="color:#6b7280;font-size:0.8em">variant</div>',
              '<div style="color:#6b7280;font-size:0.8em">gold (your marks / test set)</div>']
    header += [f'<div style="color:#6b7280;font-size:0.8em">{s} model ({render.html_text(sh.model)})</div>'
               for s in shown]
    cells = []
    for k, (name, variant, changed) in enumerate(variants):
        title = "input" if name == "input" else perturbation_title(name)
        cells.append(f'<div style="font-weight:600;font-size:0.85em;padding-top:6px">{render.html_text(title)}</div>')
        cells.append(render.entity_html(variant.tokens, variant.tags, changed))
        for setting in shown:
            cells.append(render.entity_html(variant.tokens, preds[setting][k], changed))
        if name != "input":
            row = {"perturbation": name, "text": join_words(variant.tokens), "gold_tags": " ".join(variant.tags),
                   "changed_tokens": len(changed)}
            row.update({f"{s}_tags": " ".join(preds[s][k]) for s in shown})
            rows.append(row)
    st.html(GRID.format(n=1 + len(shown)) + "".join(header + cells) + "</div>")
    if skipped:
        st.caption("Not run: " + "; ".join(skipped) + ".")
    if not shown:
        st.caption("Model predictions appear beside the gold tags once a native or transfer model is cached "
                   "(see Models above).")
    if rows:
        page.download_csv(pd.DataFrame(rows), f"xner_lab_{source}_{target}.csv", key="dl_lab",
                          label="Variants (CSV)")
