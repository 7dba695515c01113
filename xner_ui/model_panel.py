"""The model panel the pages share: which cached model answers for each setting, a picker when several are
cached, and, when none is, a train button with a time estimate and a progress bar (or the reason it cannot be
trained here). All model access goes through `xner_ui.hooks`.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import streamlit as st

from xner_ui import hooks, render

TRAIN_CAPS: tuple[int, ...] = (200, 500, 1000, 2000, 5000)  # training sentences per language; 5000 = the grid's


_REQUEST = "_xner_train_request"  # session state: the slug of the model whose train button was clicked


def _request(slug: str) -> None:
    st.session_state[_REQUEST] = slug


def duration(seconds: float) -> str:
    """e.g. "45 s", "4 min", "1.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _train_button(key: hooks.ModelKey, where: Any) -> None:
    slug = f"{key.model}_{key.setting}_{key.source}_{key.target}"
    cap = where.select_slider("Training sentences (per language)", TRAIN_CAPS, value=TRAIN_CAPS[-1],
                              key=f"cap_{slug}", help="5,000 is what the committed results used; fewer train "
                              "faster (the model gets a different cache entry).")
    estimate = hooks.estimate_seconds(key, cap)
    # The click is recorded by a callback in session state (which outlives the run), not read from the button's
    # return value: a run that reroutes through app.py first (see `state.require_app`) would swallow the click.
    where.button(f"Train {key.label} (≈ {duration(estimate)} here)", key=f"train_{slug}",
                 icon=":material/model_training:", on_click=_request, args=(slug,))
    if st.session_state.get(_REQUEST) != slug:
        return
    del st.session_state[_REQUEST]
    bar = where.progress(0.0, text=f"Preparing {key.label}…")
    note = where.empty()
    start = time.perf_counter()

    def progress(step: int, total: int, info: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - start
        left = elapsed / step * (total - step) if step else estimate
        loss = info.get("loss")
        bar.progress(min(1.0, step / max(1, total)),
                     text=f"{info.get('stage', 'train')}: step {step}/{total} · about {duration(left)} left"
                     + (f" · loss {loss:.3f}" if loss is not None else ""))

    digest = hooks.train(key, cap, progress=progress, status=lambda msg: note.caption(render.md_escape(msg)))
    bar.progress(1.0, text=f"Trained and cached as {digest} in {duration(time.perf_counter() - start)}.")
    st.rerun()


def model_panel(keys: Sequence[hooks.ModelKey], *, allow_train: bool = True) -> dict[hooks.ModelKey, str | None]:
    """Draw, per model key, the cached model in use (with a picker) or how to get one.

    Args:
        keys: the models the page wants (typically native and transfer of the sidebar pair).
        allow_train: offer to train a missing model here (else point to the sentence lab and the CLI).

    Returns:
        key -> config hash in use (None when none is cached).
    """
    used: dict[hooks.ModelKey, str | None] = {}
    cols = st.columns(len(keys)) if keys else []
    for key, col in zip(keys, cols):
        col.markdown(f"**{render.md_escape(key.setting)}** model")
        choices = hooks.cached_choices(key)
        if choices:
            labels = {c["hash"]: f"{c['hash']} · {c['label']}" for c in choices}
            current = hooks.picked(key)
            if len(choices) > 1:
                chosen = col.selectbox("Cached model", list(labels), index=list(labels).index(current),
                                       format_func=labels.get, key=f"pick_{key.model}_{key.setting}_{key.source}"
                                       f"_{key.target}", label_visibility="collapsed")
                hooks.pick(key, chosen)
                current = chosen
            else:
                col.caption(render.md_escape(labels[current]))
            used[key] = current
            continue
        used[key] = None
        reason = hooks.hub_unreachable(key.model)
        missing = hooks.missing_training_data(key) if reason is None else None
        if reason is not None:
            col.info(reason, icon=":material/cloud_off:")
        elif missing is not None:
            col.info(f"Cannot train the {key.label} model here: {missing.message}", icon=":material/folder_off:")
        elif allow_train:
            col.caption(f"No cached {render.md_escape(key.label)} model yet.")
            _train_button(key, col)
        else:
            src = "" if key.setting == "native" else f" --source {key.source}"
            col.info(f"No cached {key.label} model yet: train it in the Sentence lab, or run "
                     f"`xner train --model {key.model} --setting {key.setting}{src} --target {key.target}`.",
                     icon=":material/model_training:")
    return used
