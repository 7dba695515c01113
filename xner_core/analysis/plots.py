"""Stage 7, plots: pure Plotly figure builders over the tidy and view frames of `xner_core.analysis`.

Every builder takes frames and labels and returns a `plotly.graph_objects.Figure`; none reads files or imports
Streamlit, so the dashboard, the CLI and notebooks draw the same figures. Points carry
`analysis.CUSTOM_FIELDS` in `customdata`, so a chart selection can be turned back into a filter
(`analysis.selection_to_filter`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xner_core.analysis.stats import ols_fit
from xner_core.analysis.tidy import CLEAN
from xner_core.analysis.views import CUSTOM_FIELDS
from xner_core.metrics.seen import FREQUENCY_SCOPES, LENGTH_SCOPES
from xner_core.metrics.seen import SCOPE_LABELS as SCOPE_LABELS  # re-exported: pages import analysis only

# The entity groupings of the seen/unseen charts: name -> the scopes that partition the gold entities.
SCOPE_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "seen vs unseen": ("seen", "unseen"),
    "entity length": LENGTH_SCOPES,
    "training frequency": ("unseen", *FREQUENCY_SCOPES),
}

# Fixed colours per model so a model keeps its colour across charts; others cycle through the fallback list.
MODEL_COLOURS: Mapping[str, str] = {"mbert": "#1f77b4", "xlmr": "#ff7f0e", "e5-small": "#2ca02c", "tiny": "#7f7f7f"}
_FALLBACK = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
ORIGIN_SYMBOLS: Mapping[str, str] = {"published": "circle", "ours": "diamond"}
ORIGIN_DASH: Mapping[str, str] = {"published": "dash", "ours": "solid"}
SETTING_TITLES: Mapping[str, str] = {"native": "native (trained on the target)",
                                     "transfer": "transfer (trained on the source)",
                                     "multi_source": "multi-source", "distill": "distillation"}
IMAGE_FORMATS: tuple[str, ...] = ("png", "svg")
_PANEL_HEIGHT = 300


# Axis labels (the registry titles are too long for tick labels; hovers and legends use the full titles).
SHORT_TITLES: Mapping[str, str] = {
    CLEAN: "clean", "entity_replace": "P1 entities", "context_replace": "P2 context", "entity_context": "P3 both",
    "entity_random": "P1 control", "context_random": "P5 random ctx", "person_swap": "PER swap",
    "location_swap": "LOC swap", "context_replace_study": "P2 context (study's rules)",
    "entity_context_study": "P3 both (study's rules)", "entity_replace_matched": "P1 entities (matched rate)",
    "entity_random_matched": "P1 control (matched rate)",
    "entity_mask": "entity mask", "mask_random": "mask/random", "char_noise": "entity typos",
    "context_noise": "context typos",
}


def perturbation_short(name: str) -> str:
    """A tick-label-sized name of a perturbation, e.g. "P1 entities"."""
    return SHORT_TITLES.get(name, name)


def perturbation_title(name: str) -> str:
    """Short display title of a perturbation ("clean" for the clean test set), e.g. "P1 · unseen entities"."""
    if name == CLEAN:
        return "clean"
    from xner_core.perturb.registry import PERTURBATIONS

    pert = PERTURBATIONS.get(name)
    return pert.title if pert is not None else name


def perturbation_order(names: Sequence[str]) -> list[str]:
    """Distinct names in display order: clean first, then registry order (P1, P2, P3, ...), then the rest."""
    from xner_core.perturb.registry import perturbation_names

    present = list(dict.fromkeys(names))
    known = [CLEAN, *perturbation_names()]
    return [n for n in known if n in present] + [n for n in present if n not in known]


def model_colour(model: str, models: Sequence[str] = ()) -> str:
    """The colour of a model's series (stable for the known models)."""
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
    others = [m for m in models if m not in MODEL_COLOURS]
    # hash() is salted per process; a character sum keeps an unlisted model's colour stable across runs.
    i = others.index(model) if model in others else sum(map(ord, model))
    return _FALLBACK[i % len(_FALLBACK)]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def canonical_figure(fig: go.Figure) -> go.Figure:
    """The same figure with every JSON object's keys in sorted order.

    A figure and its copy through pickle (what a cache hands back) hold the same properties in different
    orders, so their JSON specs differ. Streamlit derives a selectable chart's widget id from that spec: a
    chart drawn from a fresh figure in one run and from its cached copy in the next gets a new id, and the
    point the user clicked in between is lost. Drawing the canonical form keeps the id stable.

    Args:
        fig: any figure.

    Returns:
        An equal figure whose JSON serialisation depends only on its content.
    """
    import json

    import plotly.io as pio

    spec = json.loads(pio.to_json(fig, validate=False), object_pairs_hook=lambda kv: dict(sorted(kv)))
    return go.Figure(spec)


def image_config(filename: str, fmt: str = "png") -> dict[str, Any]:
    """Plotly config for `st.plotly_chart(config=...)`: the modebar camera button saves PNG or SVG.

    Args:
        filename: file name without extension.
        fmt: "png" or "svg".

    Returns:
        The config dict.
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose one of: {', '.join(IMAGE_FORMATS)}")
    return {"toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2},
            "displaylogo": False, "modeBarButtonsToRemove": ["lasso2d"]}


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=200)
    return fig


def _customdata(df: pd.DataFrame) -> np.ndarray:
    return df[list(CUSTOM_FIELDS)].astype(str).to_numpy()


def overlap_scatter(
    points: pd.DataFrame,
    x: str,
    y: str,
    x_label: str,
    y_label: str,
    *,
    settings: Sequence[str] = ("native", "transfer"),
    perturbations: Sequence[str] | None = None,
    band_level: float = 0.95,
) -> go.Figure:
    """The overview: y (F1 drop or F1) against a pair feature, a panel per (perturbation row, setting column).

    One marker trace per (panel, model, origin) with one point per pair, and an OLS line with its confidence
    band for every such series that has at least 3 points with a non-constant x. Points that average several
    seeds carry error bars of ± one standard deviation across the seeds (`<y>_sd` of `analysis.view_points`).

    Args:
        points: from `analysis.view_points` (key columns, the x and y columns).
        x: feature column; y: outcome column.
        x_label, y_label: axis titles.
        settings: panel columns, in order.
        perturbations: panel rows, in order (default: order of appearance in `points`).
        band_level: level of the regression band.

    Returns:
        The figure; marker traces have `meta={"kind": "points", ...}`, lines "fit", bands "band".
    """
    if points.empty or x not in points.columns:
        return _empty("no points for these filters")
    perts = list(perturbations) if perturbations is not None else list(dict.fromkeys(points["perturbation"]))
    perts = [p for p in perts if p in set(points["perturbation"])] or list(dict.fromkeys(points["perturbation"]))
    cols = [s for s in settings if s in set(points["setting"])] or list(dict.fromkeys(points["setting"]))
    models = list(dict.fromkeys(points["model"]))
    fig = make_subplots(rows=len(perts), cols=len(cols), shared_xaxes=True, shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.22 / max(len(perts), 1),
                        column_titles=[SETTING_TITLES.get(c, c) for c in cols],
                        row_titles=[perturbation_title(p) for p in perts])
    shown: set[str] = set()
    for r, pert in enumerate(perts, 1):
        for c, setting in enumerate(cols, 1):
            panel = points[(points["perturbation"] == pert) & (points["setting"] == setting)]
            for (model, origin), series in panel.groupby(["model", "origin"], sort=False):
                series = series.sort_values(["pair_order", "pair"])
                name = f"{model} · {origin}"
                colour = model_colour(model, models)
                has_x = series[series[x].notna() & series[y].notna()]
                fit = ols_fit(has_x[x], has_x[y], band_level)
                if fit is not None:
                    fig.add_trace(go.Scatter(
                        x=list(fit.x) + list(fit.x[::-1]), y=list(fit.upper) + list(fit.lower[::-1]),
                        fill="toself", fillcolor=_rgba(colour, 0.12), line={"width": 0}, hoverinfo="skip",
                        showlegend=False, legendgroup=name, name=f"{name} {int(band_level * 100)}% band",
                        meta={"kind": "band", "series": name, "setting": setting, "perturbation": pert},
                    ), row=r, col=c)
                    fig.add_trace(go.Scatter(
                        x=list(fit.x), y=list(fit.y), mode="lines", hoverinfo="skip", showlegend=False,
                        line={"color": colour, "dash": ORIGIN_DASH.get(origin, "solid"), "width": 2},
                        legendgroup=name, name=f"{name} OLS",
                        meta={"kind": "fit", "series": name, "setting": setting, "perturbation": pert,
                              "slope": fit.slope, "intercept": fit.intercept},
                    ), row=r, col=c)
                sd_col = f"{y}_sd"
                sd = has_x[sd_col] if sd_col in has_x.columns else None
                error_y = None
                if sd is not None and sd.notna().any():
                    error_y = {"type": "data", "array": [float(v) if v == v else 0.0 for v in sd], "visible": True,
                               "thickness": 1, "width": 3, "color": colour}
                fig.add_trace(go.Scatter(
                    x=has_x[x], y=has_x[y], mode="markers", name=name, legendgroup=name, error_y=error_y,
                    showlegend=name not in shown,
                    marker={"color": colour, "symbol": ORIGIN_SYMBOLS.get(origin, "circle"), "size": 10,
                            "line": {"width": 1, "color": "white"}},
                    customdata=_customdata(has_x), text=has_x["pair"],
                    hovertemplate=(f"<b>%{{text}}</b> · {model} · {origin}<br>{x_label}: %{{x:.3f}}<br>"
                                   f"{y_label}: %{{y:.1f}}<extra>click to open the pair</extra>"),
                    meta={"kind": "points", "series": name, "setting": setting, "perturbation": pert},
                ), row=r, col=c)
                shown.add(name)
    fig.update_xaxes(title_text=x_label, row=len(perts))
    for r in range(1, len(perts) + 1):
        fig.update_yaxes(title_text=y_label, row=r, col=1)
    height = _PANEL_HEIGHT * len(perts) + 160
    top, bottom = 100, 60
    # The legend sits above the column titles: 45 px above the plot area, in paper units.
    legend_y = 1 + 45 / (height - top - bottom)
    fig.update_layout(height=height, margin={"t": top, "b": bottom, "l": 60, "r": 40},
                      legend={"orientation": "h", "y": legend_y, "yanchor": "bottom", "x": 0, "xanchor": "left"},
                      clickmode="event+select", dragmode="zoom")
    return fig


def drop_heatmap(pivots: Mapping[str, pd.DataFrame], value_label: str = "F1 drop (points)") -> go.Figure:
    """Heatmaps of pair x perturbation (one panel per setting), diverging around 0.

    Args:
        pivots: setting -> matrix from `analysis.pivot_drops` (rows pairs, columns perturbations).
        value_label: colour-bar title.

    Returns:
        The figure; one go.Heatmap per setting with the values written in the cells.
    """
    pivots = {k: v for k, v in pivots.items() if v is not None and not v.empty}
    if not pivots:
        return _empty("no values for these filters")
    fig = make_subplots(rows=1, cols=len(pivots), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[SETTING_TITLES.get(k, k) for k in pivots])
    every = np.concatenate([m.to_numpy(dtype=float).ravel() for m in pivots.values()])
    finite = every[np.isfinite(every)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    for i, (setting, matrix) in enumerate(pivots.items(), 1):
        z = matrix.to_numpy(dtype=float)
        fig.add_trace(go.Heatmap(
            z=z, x=[perturbation_short(c) for c in matrix.columns], y=list(matrix.index),
            zmin=-bound, zmax=bound, zmid=0, colorscale="RdBu_r", showscale=i == len(pivots),
            colorbar={"title": {"text": value_label}}, texttemplate="%{z:.1f}",
            hovertemplate="%{y} · %{x}<br>" + value_label + ": %{z:.1f}<extra>" + setting + "</extra>",
            meta={"kind": "heatmap", "setting": setting},
        ), row=1, col=i)
    n_rows = max(len(m.index) for m in pivots.values())
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(260, 28 * n_rows + 140), margin={"t": 50, "b": 40, "l": 80, "r": 40})
    return fig


def pair_f1_bars(rows: pd.DataFrame, perturbations: Sequence[str] | None = None) -> go.Figure:
    """Clean vs perturbed F1 of one pair: a panel per setting, bars per model · origin, CI whiskers when known.

    Args:
        rows: overall-scope rows of one pair (`analysis.pair_rows`), any origins/models.
        perturbations: x order (default: `perturbation_order`).

    Returns:
        The figure (one go.Bar per (setting, series)).
    """
    rows = rows[rows["scope"] == "overall"]
    if rows.empty:
        return _empty("no F1 values for this pair")
    order = list(perturbations) if perturbations else perturbation_order(rows["perturbation"])
    cols = [s for s in ("native", "transfer") if s in set(rows["setting"])] or list(dict.fromkeys(rows["setting"]))
    models = list(dict.fromkeys(rows["model"]))
    fig = make_subplots(rows=1, cols=len(cols), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[SETTING_TITLES.get(c, c) for c in cols])
    shown: set[str] = set()
    for c, setting in enumerate(cols, 1):
        panel = rows[rows["setting"] == setting]
        for (model, origin), series in panel.groupby(["model", "origin"], sort=False):
            mean = series.groupby("perturbation")[["f1", "f1_low", "f1_high"]].mean().reindex(order)
            name = f"{model} · {origin}"
            has_ci = mean["f1_low"].notna().any()
            fig.add_trace(go.Bar(
                x=[perturbation_short(p) for p in mean.index], y=mean["f1"], name=name, legendgroup=name,
                customdata=[perturbation_title(p) for p in mean.index],
                showlegend=name not in shown,
                marker={"color": model_colour(model, models), "pattern": {"shape": "/" if origin == "ours" else ""}},
                error_y=({"type": "data", "symmetric": False, "array": (mean["f1_high"] - mean["f1"]).tolist(),
                          "arrayminus": (mean["f1"] - mean["f1_low"]).tolist()} if has_ci else None),
                hovertemplate="%{customdata}<br>F1 %{y:.1f}<extra>" + name + "</extra>",
                meta={"kind": "bars", "series": name, "setting": setting},
            ), row=1, col=c)
            shown.add(name)
    fig.update_yaxes(title_text="F1 (points)", range=[0, 100], row=1, col=1)
    fig.update_layout(barmode="group", height=420, margin={"t": 60, "b": 40, "l": 60, "r": 20},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def per_type_bars(rows: pd.DataFrame, scopes: Sequence[str] = ("PER", "ORG", "LOC")) -> go.Figure:
    """F1 per scope of our rows (entity types, or the entities seen / unseen in the model's training data): a
    panel per setting, bars per perturbation.

    Args:
        rows: rows of one pair and model (origin ours).
        scopes: the scopes to draw, in order (e.g. ("seen", "unseen")).

    Returns:
        The figure.
    """
    rows = rows[rows["scope"].isin(list(scopes))]
    if rows.empty:
        return _empty("no " + "/".join(scopes) + " scores")
    cols = [s for s in ("native", "transfer") if s in set(rows["setting"])] or list(dict.fromkeys(rows["setting"]))
    fig = make_subplots(rows=1, cols=len(cols), shared_yaxes=True, subplot_titles=[SETTING_TITLES.get(c, c)
                                                                                   for c in cols])
    perts = perturbation_order(rows["perturbation"])
    palette = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
               "#bab0ac")
    for c, setting in enumerate(cols, 1):
        panel = rows[rows["setting"] == setting]
        for i, pert in enumerate(perts):
            part = panel[panel["perturbation"] == pert].groupby("scope")["f1"].mean().reindex(list(scopes))
            if part.isna().all():
                continue
            fig.add_trace(go.Bar(x=[SCOPE_LABELS.get(str(k), str(k)) for k in part.index], y=part.values,
                                 name=perturbation_title(pert),
                                 legendgroup=pert, showlegend=c == 1, marker_color=palette[i % len(palette)],
                                 meta={"kind": "bars", "setting": setting, "perturbation": pert}), row=1, col=c)
    fig.update_yaxes(title_text="F1 (points)", range=[0, 100], row=1, col=1)
    fig.update_layout(barmode="group", height=380, margin={"t": 60, "b": 40, "l": 60, "r": 20})
    return fig


def diversity_scatter(frame: pd.DataFrame, x: str, x_label: str, perturbations: Sequence[str]) -> go.Figure:
    """F1 against the number of sources or their diversity, a panel per perturbation, colour per setting.

    Args:
        frame: from `analysis.diversity_view`.
        x: "n_sources" or "diversity".
        x_label: axis title.
        perturbations: panels, in order (e.g. ["clean", "entity_replace"]).

    Returns:
        The figure.
    """
    if frame.empty:
        return _empty("no multi-source or distillation results for this target")
    perts = [p for p in perturbations if p in set(frame["perturbation"])] or [CLEAN]
    fig = make_subplots(rows=1, cols=len(perts), shared_yaxes=True,
                        subplot_titles=[perturbation_title(p) for p in perts])
    shown: set[str] = set()
    for c, pert in enumerate(perts, 1):
        panel = frame[frame["perturbation"] == pert]
        for (setting, model), series in panel.groupby(["setting", "model"], sort=False):
            series = series.sort_values(x)
            name = f"{setting} · {model}"
            fig.add_trace(go.Scatter(
                x=series[x], y=series["f1"], mode="markers+lines", name=name, legendgroup=name,
                showlegend=name not in shown, text=series["sources"].str.replace(",", "+"),
                customdata=[[_steps_label(v)] for v in series.get("train_steps", [np.nan] * len(series))],
                marker={"size": 10, "color": (style := _setting_style(setting))[0]}, line={"dash": style[1]},
                hovertemplate="%{text}<br>" + x_label + ": %{x}<br>F1 %{y:.1f}<br>%{customdata[0]}<extra>" + name
                              + "</extra>",
                meta={"kind": "points", "setting": setting, "perturbation": pert},
            ), row=1, col=c)
            shown.add(name)
    fig.update_xaxes(title_text=x_label)
    fig.update_yaxes(title_text="F1 (points)", row=1, col=1)
    fig.update_layout(height=420, margin={"t": 60, "b": 40, "l": 60, "r": 20})
    return fig


_SETTING_COLOURS = {"multi_source": "#1f77b4", "distill": "#d62728", "best single source": "#7f7f7f"}


def _setting_style(setting: str) -> tuple[str, str]:
    """Colour and line dash of a `diversity_view` setting: a variant ("distill · similarity weights", "multi_source ·
    ≤1,000 steps") gets a colour of its own and a dashed line, so it never reads as its base setting."""
    base, _, variant = setting.partition(" · ")
    if not variant:
        return _SETTING_COLOURS.get(base, "#9467bd"), "solid"
    if "weights" in variant:
        return "#ff7f0e", "dash"
    if "steps" in variant:
        return "#17becf" if base == "multi_source" else "#8c564b", "dash"
    return "#9467bd", "dash"


def _steps_label(steps: Any) -> str:
    """Hover text for a model's compute: "1,701 optimiser steps", or "steps not recorded"."""
    try:
        value = float(steps)
    except (TypeError, ValueError):
        return "steps not recorded"
    return "steps not recorded" if value != value else f"{value:,.0f} optimiser steps"


def student_teacher_figure(frame: pd.DataFrame, perturbations: Sequence[str]) -> go.Figure:
    """Distillation students beside their best teacher: a panel per perturbation, a row per student (source set, and
    its teacher weights where they are not uniform), the best teacher (grey) and the student (red) joined by a line;
    the hover gives both F1s, the gap and each side's optimiser steps.

    Args:
        frame: from `analysis.views.student_teacher_view` (one target); rows without teachers are left out.
        perturbations: panels, in order.

    Returns:
        The figure; traces carry `meta={"kind": "teacher" | "student" | "link", "perturbation": ...}`.
    """
    frame = frame[frame["best_teacher_f1"].notna()] if not frame.empty else frame
    if frame.empty:
        return _empty("no distillation students with measured teachers for this target")
    perts = [p for p in perturbations if p in set(frame["perturbation"])] or list(dict.fromkeys(frame["perturbation"]))
    fig = make_subplots(rows=1, cols=len(perts), shared_yaxes=True,
                        subplot_titles=[perturbation_title(p) for p in perts])
    for c, pert in enumerate(perts, 1):
        panel = frame[frame["perturbation"] == pert].sort_values(["n_sources", "sources"])
        labels = [_student_label(r) for _, r in panel.iterrows()]
        hover = []
        for lab, (_, r) in zip(labels, panel.iterrows()):
            fig.add_trace(go.Scatter(x=[r["best_teacher_f1"], r["student_f1"]], y=[lab, lab], mode="lines",
                                     line={"color": "#b0b0b0"}, hoverinfo="skip", showlegend=False,
                                     meta={"kind": "link", "perturbation": pert}), row=1, col=c)
            hover.append(f"{lab}: student {r['student_f1']:.1f}, best teacher ({r['best_teacher']}) "
                         f"{r['best_teacher_f1']:.1f}, gap {r['gap']:+.1f}<br>student "
                         f"{_steps_label(r['student_steps'])}; teachers {_steps_label(r['teacher_steps'])}; "
                         f"seeds {int(r['seeds'])}")
        for side, col, colour in (("teacher", "best_teacher_f1", "#7f7f7f"), ("student", "student_f1", "#d62728")):
            fig.add_trace(go.Scatter(
                x=panel[col], y=labels, mode="markers", name="best teacher" if side == "teacher" else "student",
                legendgroup=side, showlegend=c == 1, marker={"size": 11, "color": colour},
                text=hover, hovertemplate="%{text}<extra></extra>", meta={"kind": side, "perturbation": pert},
            ), row=1, col=c)
    values = pd.concat([frame["student_f1"], frame["best_teacher_f1"]]).astype(float)
    # one scale for every panel, a few points either side: a gap of 1 point must not fill the width
    fig.update_xaxes(title_text="F1 (points)", range=[math.floor(values.min()) - 3, math.ceil(values.max()) + 3])
    fig.update_yaxes(title_text="teachers (source set)", row=1, col=1)
    rows = len({_student_label(r) for _, r in frame.iterrows()})
    fig.update_layout(height=160 + 40 * rows, margin={"t": 60, "b": 40, "l": 90, "r": 20})
    return fig


def _student_label(row: pd.Series) -> str:
    """A student's row label: its teachers' languages, e.g. "es+fr", and "es+fr (similarity)" for a student whose
    teachers were weighted by language similarity rather than uniformly."""
    label = str(row["sources"]).replace(",", "+")
    weights = row.get("teacher_weights")
    return f"{label} (similarity)" if weights == "similarity" else label


_USED, _LEFT_OUT = "#1f77b4", "#b0b0b0"
_SIDE_COLOURS = ("#d62728", "#1f77b4")  # side a (e.g. native), side b (e.g. transfer)


def finding_figure(plot: Any) -> go.Figure:
    """The chart of one finding (`xner_core.analysis.findings.FindingPlot`).

    - "scatter": one point per pair (our overlap against the outcome, ± the seed sd), the OLS line and its 95 %
      band over the points used; points left out are grey, their reason in the hover.
    - "paired": a row per pair with side a and side b joined by a line (a dumbbell); pairs left out are grey.
    - "interval": an estimate with its interval per label, and the zero line.

    Args:
        plot: a FindingPlot (kind, frame, title, x_label, y_label, a_label, b_label).

    Returns:
        The figure; traces carry `meta={"kind": ...}` ("points", "fit", "band", "side", "link", "interval").
    """
    frame: pd.DataFrame = plot.frame
    if frame is None or frame.empty:
        return _empty("no rows for this finding in this run")
    fig = go.Figure()
    if plot.kind == "scatter":
        used = frame[frame["reason"] == ""]
        fit = ols_fit(used["x"], used["y"])
        if fit is not None:
            fig.add_trace(go.Scatter(x=list(fit.x) + list(fit.x[::-1]), y=list(fit.upper) + list(fit.lower[::-1]),
                                     fill="toself", fillcolor=_rgba(_USED, 0.12), line={"width": 0},
                                     hoverinfo="skip", showlegend=False, meta={"kind": "band"}))
            fig.add_trace(go.Scatter(x=list(fit.x), y=list(fit.y), mode="lines", line={"color": _USED},
                                     hoverinfo="skip", name="OLS fit", meta={"kind": "fit", "slope": fit.slope}))
        for part, colour, name in ((used, _USED, "pairs used"), (frame[frame["reason"] != ""], _LEFT_OUT,
                                                                 "left out")):
            if part.empty:
                continue
            sd = [float(v) if v == v else 0.0 for v in part["y_sd"]]
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers+text", text=part["pair"], textposition="top center",
                name=name, marker={"color": colour, "size": 10}, customdata=part[["reason", "seeds"]].to_numpy(),
                error_y={"type": "data", "array": sd, "visible": any(sd), "thickness": 1, "color": colour},
                hovertemplate=(f"<b>%{{text}}</b><br>{plot.x_label}: %{{x:.3f}}<br>{plot.y_label}: %{{y:.2f}} "
                               "(%{customdata[1]} seeds)<br>%{customdata[0]}<extra></extra>"),
                meta={"kind": "points"}))
        fig.update_xaxes(title_text=plot.x_label)
        fig.update_yaxes(title_text=plot.y_label)
    elif plot.kind == "paired":
        pairs = list(frame["pair"])
        for _, row in frame.iterrows():
            fig.add_trace(go.Scatter(x=[row["a"], row["b"]], y=[row["pair"]] * 2, mode="lines", hoverinfo="skip",
                                     line={"color": _LEFT_OUT if row["reason"] else "#888", "width": 2},
                                     showlegend=False, meta={"kind": "link"}))
        for side, label, colour in (("a", plot.a_label, _SIDE_COLOURS[0]), ("b", plot.b_label, _SIDE_COLOURS[1])):
            colours = [_LEFT_OUT if r else colour for r in frame["reason"]]
            fig.add_trace(go.Scatter(
                x=frame[side], y=frame["pair"], mode="markers", name=label, marker={"color": colours, "size": 11},
                customdata=frame[["reason"]].to_numpy(),
                hovertemplate=f"<b>%{{y}}</b> · {label}: %{{x:.2f}}<br>%{{customdata[0]}}<extra></extra>",
                meta={"kind": "side", "side": side}))
        fig.add_vline(x=0, line={"color": "#999", "dash": "dot"})
        fig.update_xaxes(title_text=plot.y_label)
        fig.update_yaxes(categoryorder="array", categoryarray=pairs[::-1])
    else:
        fig.add_trace(go.Scatter(
            x=frame["estimate"], y=frame["label"], mode="markers", marker={"color": _USED, "size": 10},
            error_x={"type": "data", "symmetric": False, "array": (frame["high"] - frame["estimate"]).tolist(),
                     "arrayminus": (frame["estimate"] - frame["low"]).tolist()},
            hovertemplate="%{y}: %{x:.2f}<extra></extra>", name="drop", meta={"kind": "interval"}))
        fig.add_vline(x=0, line={"color": "#999", "dash": "dot"})
        fig.update_xaxes(title_text=plot.y_label)
        fig.update_yaxes(autorange="reversed")
    rows = len(frame) if plot.kind != "scatter" else 12
    fig.update_layout(title={"text": plot.title, "font": {"size": 14}}, height=max(300, 26 * rows + 140),
                      margin={"t": 50, "b": 50, "l": 80, "r": 20}, legend={"orientation": "h", "y": -0.2})
    return fig
