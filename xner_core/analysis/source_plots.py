"""Stage 7, plots: the figures of the source ranking (`xner_core.analysis.source_rank`), pure Plotly builders.

Kept beside `xner_core.analysis.plots` (the figures of the tidy views) with the same rules: frames in, a
`plotly.graph_objects.Figure` out, no files, no Streamlit.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xner_core.analysis.source_rank import MEAN_RANK, PREDICTORS, SourceRanking

_MEASURED, _CANDIDATE, _MEAN = "#2ca02c", "#1f77b4", "#d62728"
_COLS = 4


def measured_vs_predictors(ranking: SourceRanking) -> go.Figure | None:
    """Measured clean transfer F1 of each source against each predictor, one panel per predictor.

    Args:
        ranking: from `rank_sources`.

    Returns:
        The figure, or None when fewer than two sources are measured (one point per panel shows no relation).
        Panel titles carry the predictor's direction and, where computed, Spearman's rho with F1.
    """
    measured = ranking.measured
    if len(measured) < 2:
        return None
    preds = [p for p in PREDICTORS if measured[p.column].notna().any()]
    if not preds:
        return None
    rho = {}
    if not ranking.correlations.empty:
        f1 = ranking.correlations[ranking.correlations["outcome"] == "F1"]
        rho = dict(zip(f1["predictor"], f1["rho"]))
    titles = [f"{p.label}<br><sup>{p.direction}"
              + (f" · rho {rho[p.column]:+.2f}" if p.column in rho and math.isfinite(rho[p.column]) else "")
              + "</sup>" for p in preds]
    n_rows = math.ceil(len(preds) / _COLS)
    fig = make_subplots(rows=n_rows, cols=min(len(preds), _COLS), shared_yaxes=True, subplot_titles=titles,
                        vertical_spacing=0.28 if n_rows > 1 else 0.1)
    drop = measured["drop"].map(lambda v: "" if pd.isna(v) else f"<br>drop {v:.1f}")
    for i, pred in enumerate(preds):
        row, col = divmod(i, _COLS)
        fig.add_trace(go.Scatter(
            x=measured[pred.column], y=measured["f1"], mode="markers+text", text=measured["source"],
            textposition="top center", marker={"size": 10, "color": _MEASURED}, showlegend=False,
            customdata=drop, name=pred.label,
            hovertemplate="%{text}: F1 %{y:.1f}%{customdata}<br>" + pred.label + " %{x:.3f}<extra></extra>",
            meta={"kind": "measured", "predictor": pred.column}), row=row + 1, col=col + 1)
        fig.update_xaxes(title_text=pred.label, row=row + 1, col=col + 1)
    lo, hi = float(measured["f1"].min()), float(measured["f1"].max())
    pad = max(3.0, 0.15 * (hi - lo))  # room for the labels above the highest and below the lowest point
    fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_yaxes(title_text="clean transfer F1 (points)", col=1)
    fig.update_layout(height=330 * n_rows + 40, margin={"t": 110, "b": 40, "l": 60, "r": 20},
                      title={"text": f"Measured sources of {ranking.target}: F1 against each predictor",
                             "font": {"size": 14}, "y": 0.99, "yanchor": "top"})
    return fig


def shortlist_ranks(ranking: SourceRanking, limit: int = 15) -> go.Figure | None:
    """The candidates' rank under each predictor (1 = best) and their mean rank, best candidate on top.

    Args:
        ranking: from `rank_sources`.
        limit: show at most this many candidates (the best predicted).

    Returns:
        The figure, or None when the shortlist is empty. Where the predictors agree a candidate's markers bunch
        together; the large red marker is the mean rank the shortlist is ordered by (when `by` is MEAN_RANK).
    """
    full = ranking.shortlist
    short = full.head(limit)
    if short.empty:
        return None
    fig = go.Figure()
    for pred in PREDICTORS:
        values = short[pred.column]
        if values.notna().sum() == 0:
            continue
        # ranks among all candidates, as the mean rank was made
        ranks = full[pred.column].rank(ascending=not pred.higher_is_better, method="min").head(limit)
        fig.add_trace(go.Scatter(
            x=ranks, y=short["source"], mode="markers", name=f"{pred.label} ({pred.direction})",
            marker={"size": 9, "opacity": 0.75}, customdata=values,
            hovertemplate="%{y}: rank %{x} by " + pred.label + " (%{customdata:.3f})<extra></extra>",
            meta={"kind": "predictor", "predictor": pred.column}))
    if ranking.by == MEAN_RANK:
        fig.add_trace(go.Scatter(
            x=short["score"], y=short["source"], mode="markers", name="mean rank (the shortlist's order)",
            marker={"size": 14, "color": _MEAN, "symbol": "diamond"},
            hovertemplate="%{y}: mean rank %{x:.1f}<extra></extra>", meta={"kind": "mean_rank"}))
    fig.update_yaxes(categoryorder="array", categoryarray=list(short["source"])[::-1], title_text="candidate source")
    fig.update_xaxes(title_text="rank among the candidates (1 = best)")
    height, top, bottom = max(360, 26 * len(short) + 260), 50, 160
    # the legend's top 60 px below the plot area (paper coordinates are relative to its height), under the axis title
    fig.update_layout(height=height, margin={"t": top, "b": bottom, "l": 80, "r": 20},
                      legend={"orientation": "h", "yanchor": "top", "y": -60 / (height - top - bottom)},
                      title={"text": f"Unmeasured candidate sources for {ranking.target}, by predictor",
                             "font": {"size": 14}})
    return fig
