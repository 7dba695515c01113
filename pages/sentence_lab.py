"""Sentence lab: type a sentence (any script) or draw one from the target test set, and see every perturbed
variant with its entities highlighted.

Words come from `xner_core.predict.split_words`; entities from optional markup (`[Juan Pérez|PER]`) or, for a
drawn sentence, its gold tags; the variants from `xner_core.perturb.perturb_sentence` with the pair's context
(source train set, target test set as the replacement pool, source names as donor). Everything the user typed is
rendered escaped (`xner_ui.render`). Model predictions come through `xner_ui.hooks.predictions_for`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xner_core.corpus import Sentence
from xner_core.languages import all_languages
from xner_core.perturb import build_context, get_perturbation, perturb_sentence, perturbation_names
from xner_core.plots import perturbation_title
from xner_core.predict import join_words
from xner_ui import data, hooks, page, render, state

state.require_app()

_NEED_REASON = {
    "source": "the source training set",
    "target": "the target test set",
    "donor": "donor-language names",
    "embed": "a word embedder (comes with the models)",
}
DEFAULT_TEXT = "[Anjela Duval|PER] was born in [Quimper|LOC] and wrote for [Al Liamm|ORG] ."

sh = state.shared()
source, target = sh.source, sh.target
st.title("Sentence lab")
st.caption(f"Pair **{source}→{target}** (change it in the sidebar). Mark entities as `[words|PER]`, `[words|ORG]`, "
           "`[words|LOC]`, or draw a sentence with gold tags from the target test set.")

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
    ctx = build_context(None, None, lang=lang)
else:
    embed_model = sh.model if hooks.word_embedder(sh.model) is not None else None
    ctx = data.context_for(source, target, lang=lang, donor=source, embed_model=embed_model)

sentence: Sentence | None = None
if mode == "type":
    text = state.text_area("Your sentence", "text", DEFAULT_TEXT, max_chars=500,
                           placeholder="Type a sentence in any script; mark entities as [words|PER]")
    words, tags = render.parse_marked_text(text)
    if words:
        sentence = Sentence(tuple(words), tuple(tags), lang, "lab-0")
    else:
        st.info("Type a sentence to see its perturbed variants.")
elif ctx.target is None:
    st.info("Drawing a sentence needs the target test set; type one instead.")
else:
    i = state.slider("Test sentence", 0, len(ctx.target) - 1, "i", 0)
    drawn = ctx.target[i]
    sentence = Sentence(drawn.tokens, drawn.tags, lang, drawn.id)

if sentence is not None:
    st.subheader("Words")
    st.code(" │ ".join(sentence.tokens), language=None, wrap_lines=True)
    st.html(render.legend_html())
    st.html(render.entity_html(sentence.tokens, sentence.tags, label="input"))

    rows, skipped, variants = [], [], []
    for name in chosen:
        pert = get_perturbation(name)
        lacking = [n for n in pert.needs if getattr(ctx, n) is None]
        if lacking:
            skipped.append(f"`{name}` (needs {', '.join(_NEED_REASON[n] for n in lacking)})")
            continue
        with page.guarded(f"the {name} variant"):
            res = perturb_sentence(name, sentence, ctx, seed=0)
            variants.append((name, res.corpus[0], render.changed_positions(res.changes)))

    # One call adds the native and transfer models' predictions for the input and every variant.
    batch = [sentence] + [v for _, v, _ in variants]
    preds = {s: hooks.predictions_for(batch, hooks.ModelKey(sh.model, s, source, target))
             for s in ("native", "transfer")}

    st.subheader("Perturbed variants")
    blocks = []
    for k, (name, variant, changed) in enumerate(variants, 1):
        blocks.append(render.entity_html(variant.tokens, variant.tags, changed, label=perturbation_title(name)))
        for setting, tagged in preds.items():
            if tagged is not None:
                blocks.append(render.entity_html(variant.tokens, tagged[k], changed, label=f"{setting} model"))
        rows.append({"perturbation": name, "text": join_words(variant.tokens), "tags": " ".join(variant.tags),
                     "changed_tokens": len(changed)})
    if blocks:
        st.html('<div style="display:flex;flex-direction:column;gap:6px">' + "".join(blocks) + "</div>")
    if skipped:
        st.caption("Not run: " + "; ".join(skipped) + ".")
    if all(p is None for p in preds.values()):
        st.caption("Native and transfer model predictions appear here once the models are wired into the "
                   "dashboard.")
    if rows:
        page.download_csv(pd.DataFrame(rows), f"xner_lab_{source}_{target}.csv", key="dl_lab",
                          label="Variants (CSV)")
