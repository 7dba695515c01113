"""The xner dashboard (stage 7, the shell over every other stage): page registry, shared sidebar, error guard.

`main()` is what a script run executes: page config, `st.navigation` over the page scripts, the shared sidebar
(model, pair, perturbation; the device in use; the cache size) and the error guard around the page that runs.
Everything a page needs from the sidebar is in `xner_ui.state.shared()`; shareable choices live in the URL.

Started by `xner app` (this file is the entry script; the page scripts come from the package `xner_pages`, the
repository's `pages/` folder) or by `streamlit run app.py` in a checkout (a two-line shim calling `main`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import streamlit as st

from xner_core.analysis.plots import IMAGE_FORMATS, perturbation_title
from xner_core.analysis.tidy import protocols
from xner_core.corpus.languages import reference_pairs
from xner_core.models.registry import MODEL_NAMES
from xner_core.perturb.registry import perturbation_names
from xner_ui import catalog, data, hooks, page, state

_EXTRA_PAIRS = "_xner_extra_pairs"  # session state: pairs the user added (URL or "Another pair"), in order

# (script, title, icon, url path); the first is the default page.
PAGE_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("overview.py", "Overview", ":material/scatter_plot:", "overview"),
    ("findings.py", "Findings", ":material/fact_check:", "findings"),
    ("pair_explorer.py", "Pair explorer", ":material/compare_arrows:", "pair_explorer"),
    ("source_diversity.py", "Source diversity", ":material/hub:", "source_diversity"),
    ("training_methods.py", "Training methods", ":material/model_training:", "training_methods"),
    ("sentence_lab.py", "Sentence lab", ":material/science:", "sentence_lab"),
    ("upload.py", "Upload", ":material/upload_file:", "upload"),
    ("runs.py", "Runs", ":material/storage:", "runs"),
)


def pages_dir() -> Path:
    """The folder of the page scripts: the installed package `xner_pages`, else the checkout's `pages/`."""
    try:
        return Path(str(resources.files("xner_pages")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "pages"


def pages() -> list[st.Page]:
    """The registered pages, by absolute path (valid whichever script Streamlit was started with)."""
    root = pages_dir()
    return [st.Page(root / script, title=title, icon=icon, url_path=url, default=i == 0)
            for i, (script, title, icon, url) in enumerate(PAGE_TABLE)]


def _sidebar() -> tuple[state.Shared, object]:
    """Draw the shared sidebar; return its choices and an empty slot for the environment lines."""
    side = st.sidebar
    tidy = data.tidy_frame()
    relation = {p.key: p.relation for p in reference_pairs()}
    pairs = [(p.source, p.target) for p in reference_pairs()]
    ours = tidy[(tidy["origin"] == "ours") & (tidy["setting"] == "transfer") & ~tidy["sources"].str.contains(",")]
    pairs += [pt for pt in dict.fromkeys(zip(ours["sources"], ours["target"])) if pt not in pairs]
    pairs += [pt for pt in _extra_pairs() if pt not in pairs]
    models = list(dict.fromkeys([*tidy["model"].dropna().astype(str), *MODEL_NAMES]))

    def pair_label(key: str) -> str:
        src, tgt = key.split(state.PAIR_SEP, 1)
        rel = relation.get(f"{src}-{tgt}")
        return f"{src}→{tgt}" + (f" · {rel}" if rel else "")

    side.header("Shared choices")
    model = state.select("Model", models, "model", hooks.default_model(), where=side,
                         help="mbert / xlmr: the study's models (published numbers; from the Hugging Face hub); "
                              "e5-small (bundled, works offline) / tiny: ours.")
    source, target = state.pair_select("Pair (source → target)", pairs, ("fr", "br"), where=side,
                                       format_func=pair_label)
    _another_pair(side, source, target)
    pert = state.select("Perturbation", perturbation_names(), "perturbation", "entity_replace", where=side,
                        format_func=lambda n: f"{n} · {perturbation_title(n)}")
    protos = protocols(tidy, prefer=data.default_protocols())
    protocol = protos[0] if protos else None
    if len(protos) > 1:
        protocol = state.select("Our runs", protos, "protocol", protos[0], where=side,
                                help="How our results were made (data, training cap, epochs, test cap). Views show "
                                     "one at a time, so runs made differently are never averaged.")
    fmt = side.radio("Chart image format (camera button)", IMAGE_FORMATS, horizontal=True, key="image_format")
    side.divider()
    return state.Shared(model, source, target, pert, fmt, protocol), side.container()


def _extra_pairs() -> list[tuple[str, str]]:
    """The pairs the user added this session, plus a pair of any two known languages the URL names."""
    extra: list[tuple[str, str]] = st.session_state.setdefault(_EXTRA_PAIRS, [])
    src, tgt = st.query_params.get("source"), st.query_params.get("target")
    names = catalog.language_names()
    if src and tgt and src != tgt and src in names and tgt in names and (src, tgt) not in extra:
        extra.append((src, tgt))
    return extra


def _another_pair(side: object, source: str, target: str) -> None:
    """An expander to pick any two WikiANN languages as the pair (added to the pair list and the URL)."""
    names = catalog.language_names()
    codes = list(names)
    with side.expander("Another pair"):  # type: ignore[attr-defined]
        src = st.selectbox("Source", codes, index=codes.index(source) if source in codes else 0, key="other_source",
                           format_func=lambda c: f"{c} · {names[c]}")
        tgt = st.selectbox("Target", codes, index=codes.index(target) if target in codes else 0, key="other_target",
                           format_func=lambda c: f"{c} · {names[c]}")
        if st.button("Use this pair", key="other_pair"):
            if src == tgt:
                st.error("Source and target must differ.")
            elif (src, tgt) != (source, target):
                st.session_state.setdefault(_EXTRA_PAIRS, []).append((src, tgt))
                st.query_params["source"], st.query_params["target"] = src, tgt
                st.rerun()


def _environment(slot: object) -> None:
    """The device in use and the cache size (filled after the page: the first torch import takes seconds)."""
    slot.caption(f"Device: **{data.device_label()}**")
    size, root = data.cache_summary()
    slot.caption(f"Cache: **{size}** in `{root}`")


def main() -> None:
    """One script run of the dashboard."""
    st.set_page_config(page_title="xner · cross-lingual NER robustness", page_icon=":material/translate:",
                       layout="wide")
    current = st.navigation(pages())
    env_slot = None
    with page.guarded("the sidebar"):
        shared, env_slot = _sidebar()
        state.set_shared(shared)
    with state.app_frame(), page.guarded(current.title):
        current.run()
    if env_slot is not None:
        with page.guarded("the sidebar"):
            _environment(env_slot)


if __name__ == "__main__":  # `streamlit run xner_ui/app.py` (what `xner app` starts)
    main()
