"""Sentence lab: type a sentence (any script) or draw one from the target test set, and see every perturbed
variant with its entities highlighted, beside the native and transfer models' predictions.

Words come from `xner_core.inference.text.split_words`; entities from optional markup (`[Juan Pérez|PER]`) or, for a
drawn sentence, its gold tags; the variants are perturbed in the context the evaluation of the pair's transfer model
uses (`xner_ui.inputs`, from the core's one builder: the corpus that model saw, the capped target test set as the
replacement pool, the evaluation's donor names and encoder, its perturbation seed). Everything the user typed is
rendered escaped (`xner_ui.render`). Model predictions come through `xner_ui.hooks.predictions_for`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import perturbation_title
from xner_ui import catalog, hooks, inputs, page, render, state
from xner_ui.model_panel import model_panel

state.require_app()

DEFAULT_TEXT = "[Anjela Duval|PER] was born in [Quimper|LOC] and wrote for [Al Liamm|ORG] ."
GRID = '<div style="display:grid;grid-template-columns:minmax(140px,1fr) repeat({n},minmax(0,3fr));gap:4px 12px">'

sh = state.shared()
source, target = sh.source, sh.target
st.title("Sentence lab")
st.caption(f"Pair **{source}→{target}**, model **{render.md_escape(sh.model)}** (change them in the sidebar). Mark "
           "entities as `[words|PER]`, `[words|ORG]`, `[words|LOC]`, or draw a sentence with gold tags from the "
           "target test set.")

languages = catalog.language_names()
c1, c2 = st.columns([1, 1])
mode = state.select("Sentence", ["type", "draw"], "mode", "type", where=c1, radio=True,
                    format_func=lambda m: "type one" if m == "type" else "draw from the test set")
lang = state.select("Language (stopwords, sentence language)", list(languages), "lab_lang",
                    target if target in languages else "br", where=c2,
                    format_func=lambda c: f"{c} · {languages[c]}")
names = catalog.perturbation_names()
chosen = state.multiselect("Perturbations", names, "perts", names, format_func=perturbation_title)

# The variants are perturbed in the context the evaluation of the pair's transfer model uses (`xner_ui.inputs`).
options = inputs.eval_options()
config = inputs.transfer_config(sh.model, source, target)
missing = inputs.missing_inputs(config, options, chosen)
if missing is not None:
    st.info(missing.message + " Perturbations that need the pair's data are skipped.", icon=":material/folder_off:")
    ctx = inputs.bare_context(lang, options)
else:
    ctx = inputs.pair_inputs(config, options, chosen, lang=lang).context

sentence = None
if mode == "type":
    text = state.text_area("Your sentence", "text", DEFAULT_TEXT, max_chars=500,
                           placeholder="Type a sentence in any script; mark entities as [words|PER]")
    if not text.strip():
        st.info("Type a sentence to see its perturbed variants.")
    else:
        sentence, problem = render.user_sentence(text, lang, max_chars=500)
        if problem is not None:
            st.error(render.md_escape(problem), icon=":material/error:")
        elif sentence is None:
            st.info("The text holds no words (only markup or spaces); type a sentence.")
elif ctx.target is None:
    st.info("Drawing a sentence needs the target test set; type one instead.")
else:
    i = state.slider("Test sentence", 0, len(ctx.target) - 1, "i", 0)
    sentence = render.relabel(ctx.target[i], lang)

if sentence is not None:
    st.subheader("Models")
    keys = [hooks.ModelKey(sh.model, s, source, target) for s in hooks.COMPARED]
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
            lacking = inputs.lacking(ctx, name)
            if lacking:
                skipped.append(f"`{name}` (needs {', '.join(inputs.NEED_REASON[n] for n in lacking)})")
                continue
            with page.guarded(f"the {name} variant"):
                variants.append((name, *inputs.variant(ctx, options, name, sentence)))

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
            row = {"perturbation": name, "text": render.sentence_text(variant.tokens),
                   "gold_tags": " ".join(variant.tags), "changed_tokens": len(changed)}
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
