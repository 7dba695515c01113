"""The model panel the pages share: which model answers for each setting, a picker over the cached models and the
checkpoints this session added side by side, a field to add a local checkpoint directory (checked before it is
used), and, when no model is cached, a train button with a time estimate and a progress bar (or the reason it
cannot be trained here). All model access goes through `xner_ui.hooks`.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import streamlit as st

from xner_ui import hooks, render

TRAIN_CAPS: tuple[int, ...] = (200, 500, 1000, 2000, 5000)  # training sentences per language; 5000 = the grid's
QUICK_CAP = 1000  # the slider's default: a first prediction within minutes on a 2-core CPU

_REQUEST = "_xner_train_request"  # session state: the slug of the model whose train button was clicked
_CHECKPOINT_PROBLEM = "_xner_checkpoint_problem"  # session state: slug -> why the typed checkpoint was refused
NO_MODEL = ""  # the picker's entry for "no model" where nothing is cached (a checkpoint is used only when picked)


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
    slug = _slug(key)
    cap = where.select_slider("Training sentences (per language)", TRAIN_CAPS, value=QUICK_CAP,
                              key=f"cap_{slug}", help="1,000 gives a first model within minutes here; 5,000 is "
                              "what the `paper` grid used (each cap gets its own cache entry).")
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


def _slug(key: hooks.ModelKey) -> str:
    return f"{key.model}_{key.setting}_{key.source}_{key.target}"


def _add_checkpoint(key: hooks.ModelKey) -> None:
    """Callback of the "Use" button: check the typed directory, remember it, make it this column's pick."""
    slug = _slug(key)
    problems = st.session_state.setdefault(_CHECKPOINT_PROBLEM, {})
    problems.pop(slug, None)
    text = str(st.session_state.get(f"ckpt_path_{slug}") or "")
    if not text.strip():
        problems[slug] = "Type the directory of a checkpoint first."
        return
    from xner_core.errors import XnerError

    try:
        choice = hooks.add_checkpoint(text)
    except XnerError as exc:
        problems[slug] = str(exc)
        return
    hooks.pick(key, choice)
    st.session_state[f"pick_{slug}"] = choice  # the picker shows it on the rerun


def _checkpoint_field(key: hooks.ModelKey, where: Any) -> None:
    """A text field for a local checkpoint directory, with the reason a typed one was refused."""
    slug = _slug(key)
    with where.expander("Use a checkpoint directory", icon=":material/folder_open:",
                        expanded=slug in st.session_state.get(_CHECKPOINT_PROBLEM, {})):
        st.text_input("Checkpoint directory", key=f"ckpt_path_{slug}", placeholder="/path/to/my-ner",
                      help="A token-classification model saved with save_pretrained (config.json, weights, "
                           "tokenizer.json), e.g. fine-tuned elsewhere. It predicts as it is: its labels are mapped "
                           f"onto PER/ORG/LOC; here it plays the {key.setting} model.")
        st.button(f"Use as the {key.setting} model", key=f"ckpt_use_{slug}", icon=":material/check:",
                  on_click=_add_checkpoint, args=(key,))
        problem = st.session_state.get(_CHECKPOINT_PROBLEM, {}).get(slug)
        if problem:
            st.error(render.md_escape(problem), icon=":material/error:")


def model_panel(keys: Sequence[hooks.ModelKey], *, allow_train: bool = True) -> dict[hooks.ModelKey, str | None]:
    """Draw, per model key, the model in use (with a picker over cached models and this session's checkpoints), a
    field to add a checkpoint directory, and how to get a missing model.

    Args:
        keys: the models the page wants (typically native and transfer of the sidebar pair).
        allow_train: offer to train a missing model here (else point to the sentence lab and the CLI).

    Returns:
        key -> what is in use: a cached model's config hash or a checkpoint pick (None when neither).
    """
    used: dict[hooks.ModelKey, str | None] = {}
    cols = st.columns(len(keys)) if keys else []
    for key, col in zip(keys, cols):
        col.markdown(f"**{render.md_escape(key.setting)}** model")
        cached = hooks.cached_choices(key)
        choices = [*cached, *hooks.checkpoint_choices()]
        current = hooks.picked(key)
        if choices:
            labels = {c["hash"]: f"{c['hash']} · {c['label']}" if not hooks.is_checkpoint(c["hash"]) else c["label"]
                      for c in choices}
            if not cached:
                labels = {NO_MODEL: "no model (pick a checkpoint, or train one below)", **labels}
            if len(labels) > 1:
                options = list(labels)
                widget = f"pick_{_slug(key)}"
                if st.session_state.get(widget) not in options:  # first drawn, or its choice is gone: the pick
                    st.session_state[widget] = current or NO_MODEL
                chosen = col.selectbox("Model in use", options, format_func=labels.get, key=widget,
                                       label_visibility="collapsed")
                hooks.pick(key, chosen)
                current = chosen or None
            elif current is not None:
                col.caption(render.md_escape(labels[current]))
            if hooks.is_checkpoint(current):
                info = next(c for c in choices if c["hash"] == current)
                col.caption(f"Predicts as it is; labels: {render.md_escape(info['labels'])}")
        used[key] = current
        if not cached:
            _missing(key, col, allow_train)
        _checkpoint_field(key, col)
    return used


def _missing(key: hooks.ModelKey, col: Any, allow_train: bool) -> None:
    """How to get a missing cached model: why it cannot be trained here, a train button, or the CLI command."""
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
