"""Stage 7, analysis: statistics of the views: correlations with CIs and p-values (Fisher's z, and a cluster
bootstrap that resamples language pairs sharing a source together), paired t-tests with their t intervals, Holm
adjustment, leave-one-out, OLS lines with confidence bands, the per-group stats table and the native-vs-transfer
robustness gap.

Every interval here comes with a p-value from the same method, so the interval excludes 0 exactly when p < 1 − level
(tests/test_analysis.py and tests/test_findings.py hold it).

Pure functions over numpy arrays and pandas frames; scipy is imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from xner_core.analysis.tidy import CLEAN


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with a CI and a p-value from the same method (see `correlation`).

    Attributes:
        method: "pearson" or "spearman".
        r: the coefficient on all points (NaN when undefined: fewer than 3 points or a constant variable).
        low, high: CI bounds.
        p: two-sided p-value of r = 0.
        n: number of points used (pairs with both values finite).
        level: CI level, e.g. 0.95.
        interval: "fisher" (CI and p from Fisher's z: they agree, the CI excludes 0 exactly when p < 1 - level),
            "bootstrap" (percentile bootstrap CI beside scipy's p-value; they need not agree) or "cluster"
            (`cluster_bootstrap_correlation`: CI and p from one bootstrap distribution; they agree).
        clusters: number of clusters resampled (interval "cluster"; 0 otherwise).
        resamples: bootstrap resamples that had a defined r (interval "cluster"; 0 otherwise).
    """

    method: str
    r: float
    low: float
    high: float
    p: float
    n: int
    level: float
    interval: str = "fisher"
    clusters: int = 0
    resamples: int = 0


def _finite_xy(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length; got {xa.shape} and {ya.shape}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def _rowwise_pearson(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (B, n) matrices; NaN for rows with a constant variable."""
    xc = xs - xs.mean(axis=1, keepdims=True)
    yc = ys - ys.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    # Floating-point noise can make a constant resample look non-constant; treat tiny spreads as constant.
    r[den <= 1e-12] = np.nan
    return np.clip(r, -1.0, 1.0)


INTERVALS: tuple[str, ...] = ("fisher", "bootstrap")
# Standard error of Fisher's z of a Spearman coefficient: sqrt(1.06 / (n - 3)) (Fieller, Hartley & Pearson 1957).
_SPEARMAN_Z_VARIANCE = 1.06


def fisher_z_test(r: float, n: int, method: str = "pearson", level: float = 0.95) -> tuple[float, float, float]:
    """CI and two-sided p-value of a correlation coefficient from Fisher's z = atanh(r).

    z is approximately normal with standard error 1/sqrt(n - 3) (Pearson) or sqrt(1.06 / (n - 3)) (Spearman).
    The CI is tanh(z ± q * se) with q the normal quantile of the level and p = 2 * P(Z > |z| / se): one method,
    so the CI excludes 0 exactly when p < 1 - level.

    Args:
        r: the coefficient.
        n: points it was computed on (needs n > 3).
        method: "pearson" or "spearman".
        level: CI level in (0, 1).

    Returns:
        (low, high, p); NaNs when n <= 3 or r is not finite.
    """
    from scipy import stats

    nan = float("nan")
    if n <= 3 or not np.isfinite(r):
        return nan, nan, nan
    se = math.sqrt((_SPEARMAN_Z_VARIANCE if method == "spearman" else 1.0) / (n - 3))
    z = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
    q = float(stats.norm.ppf(1 - (1 - level) / 2))
    p = float(2 * stats.norm.sf(abs(z) / se))
    return math.tanh(z - q * se), math.tanh(z + q * se), p


def correlation(x: Sequence[float], y: Sequence[float], method: str = "pearson", n_boot: int = 2000,
                level: float = 0.95, seed: int = 0, interval: str = "fisher") -> Correlation:
    """Pearson or Spearman correlation with a CI and a p-value.

    The default interval is Fisher's z (`fisher_z_test`): its CI and p-value come from one method and agree. The
    percentile bootstrap (`interval="bootstrap"`) is kept for comparison: over 12-13 language pairs it gave
    intervals too narrow for scipy's p-values beside them (e.g. [+0.21, +0.88] with p = 0.059).

    Args:
        x: feature values (NaN pairs are dropped).
        y: outcome values.
        method: "pearson" or "spearman" (Pearson on ranks, average ranks for ties).
        n_boot: bootstrap resamples (interval="bootstrap"); resamples with a constant variable are skipped.
        level: CI level in (0, 1).
        seed: seed of the resampling (same inputs + seed = same CI).
        interval: "fisher" or "bootstrap".

    Returns:
        A Correlation; r, low, high and p are NaN when r is undefined (n < 3 or a constant variable); the Fisher
        CI and p need n > 3.
    """
    from scipy import stats

    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r}; choose one of: pearson, spearman")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; choose one of: {', '.join(INTERVALS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    xa, ya = _finite_xy(x, y)
    n = len(xa)
    nan = float("nan")
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(method, nan, nan, nan, nan, n, level, interval)
    if method == "pearson":
        res = stats.pearsonr(xa, ya)
    else:
        res = stats.spearmanr(xa, ya)
    r, p = float(res.statistic), float(res.pvalue)
    if interval == "fisher":
        low, high, p = fisher_z_test(r, n, method, level)
        return Correlation(method, r, low, high, p, n, level, interval)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    xs, ys = xa[idx], ya[idx]
    if method == "spearman":
        xs, ys = stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1)
    boots = _rowwise_pearson(xs, ys)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return Correlation(method, r, nan, nan, p, n, level, interval)
    alpha = (1 - level) / 2
    blow, bhigh = np.quantile(boots, [alpha, 1 - alpha])
    return Correlation(method, r, float(blow), float(bhigh), p, n, level, interval)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control over the whole family given).

    Args:
        pvalues: the family's p-values; NaNs are left out of the family and stay NaN.

    Returns:
        Adjusted p-values in the input order: the k-th smallest of m gets max over j <= k of min(1, (m-j+1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def leave_one_out(x: Sequence[float], y: Sequence[float], labels: Sequence[str], method: str = "pearson",
                  level: float = 0.95) -> pd.DataFrame:
    """The correlation with each point left out in turn: how much one language pair drives it.

    Args:
        x, y: the points' feature and outcome.
        labels: one label per point (e.g. the pair "it→scn").
        method: "pearson" or "spearman".
        level: CI level of each refit (Fisher's z).

    Returns:
        One row per point: left_out, r, low, high, p, n, and shift (r without the point minus r with all points),
        largest |shift| first.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (len(xa) == len(ya) == len(labels)):
        raise ValueError(f"x, y and labels must have the same length; got {len(xa)}, {len(ya)}, {len(labels)}")
    full = correlation(xa.tolist(), ya.tolist(), method, level=level).r
    rows = []
    for i, label in enumerate(labels):
        keep = np.arange(len(xa)) != i
        c = correlation(xa[keep].tolist(), ya[keep].tolist(), method, level=level)
        rows.append({"left_out": label, "r": c.r, "low": c.low, "high": c.high, "p": c.p, "n": c.n,
                     "shift": c.r - full})
    out = pd.DataFrame(rows, columns=["left_out", "r", "low", "high", "p", "n", "shift"])
    return out.reindex(out["shift"].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)


@dataclass(frozen=True)
class OlsFit:
    """An ordinary-least-squares line y = intercept + slope * x with a confidence band for the mean.

    Attributes:
        slope, intercept: the fitted line.
        r2: coefficient of determination.
        n: points used.
        level: band level, e.g. 0.95.
        x: grid of x values (sorted) where the line and band are evaluated.
        y: the line on the grid.
        lower, upper: the pointwise confidence band of the mean response on the grid
            (y ± t_{(1+level)/2, n-2} · s · sqrt(1/n + (x - mean x)² / Sxx)).
    """

    slope: float
    intercept: float
    r2: float
    n: int
    level: float
    x: tuple[float, ...]
    y: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


def ols_fit(x: Sequence[float], y: Sequence[float], level: float = 0.95, grid: Sequence[float] | None = None,
            points: int = 50) -> OlsFit | None:
    """Fit an OLS line and its confidence band.

    Args:
        x: feature values (NaN pairs are dropped).
        y: outcome values.
        level: band level in (0, 1).
        grid: x values to evaluate on (default: `points` evenly spaced values from min to max x).
        points: grid size when `grid` is None.

    Returns:
        An OlsFit, or None when a line cannot be fitted (fewer than 3 points, or x constant).
    """
    from scipy import stats

    xa, ya = _finite_xy(x, y)
    n = len(xa)
    if n < 3 or np.ptp(xa) == 0:
        return None
    xbar, ybar = xa.mean(), ya.mean()
    sxx = float(((xa - xbar) ** 2).sum())
    slope = float(((xa - xbar) * (ya - ybar)).sum() / sxx)
    intercept = float(ybar - slope * xbar)
    resid = ya - (intercept + slope * xa)
    sse = float((resid ** 2).sum())
    sst = float(((ya - ybar) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else float("nan")
    s = math.sqrt(sse / (n - 2))
    t = float(stats.t.ppf((1 + level) / 2, n - 2))
    gx = np.asarray(grid, dtype=float) if grid is not None else np.linspace(xa.min(), xa.max(), points)
    gx = np.sort(gx)
    gy = intercept + slope * gx
    half = t * s * np.sqrt(1.0 / n + (gx - xbar) ** 2 / sxx)
    return OlsFit(slope, intercept, r2, n, level, tuple(gx.tolist()), tuple(gy.tolist()),
                  tuple((gy - half).tolist()), tuple((gy + half).tolist()))


def stats_table(points: pd.DataFrame, x: str, y: str, by: Sequence[str] = ("setting", "perturbation", "model",
                                                                          "origin"),
                n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Pearson and Spearman r (Fisher-z CI and p, see `correlation`) and the OLS slope of y on x, per group.

    Args:
        points: from `view_points`.
        x: feature column.
        y: outcome column ("drop" or "f1").
        by: grouping columns (one regression per group, as drawn in the overview).
        n_boot, level, seed: as for `correlation`.

    Returns:
        One row per group: the `by` columns, n, pearson_r, pearson_low, pearson_high, pearson_p, pearson_p_holm,
        spearman_r, spearman_low, spearman_high, spearman_p, spearman_p_holm, slope, intercept, r2. The Holm
        columns adjust each method's p-values over the table's groups (the family a reader scans at once).
    """
    cols = [*by, "n", "pearson_r", "pearson_low", "pearson_high", "pearson_p", "pearson_p_holm", "spearman_r",
            "spearman_low", "spearman_high", "spearman_p", "spearman_p_holm", "slope", "intercept", "r2"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, group in points.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        pr = correlation(group[x], group[y], "pearson", n_boot, level, seed)
        sr = correlation(group[x], group[y], "spearman", n_boot, level, seed)
        fit = ols_fit(group[x], group[y], level)
        nan = float("nan")
        rows.append([*key, pr.n, pr.r, pr.low, pr.high, pr.p, nan, sr.r, sr.low, sr.high, sr.p, nan,
                     fit.slope if fit else nan, fit.intercept if fit else nan, fit.r2 if fit else nan])
    table = pd.DataFrame(rows, columns=cols)
    for m in ("pearson", "spearman"):
        table[f"{m}_p_holm"] = holm(table[f"{m}_p"].tolist())
    return table


def robustness_gap(points: pd.DataFrame, by: Sequence[str] = ("origin", "model", "perturbation")) -> pd.DataFrame:
    """Do transfer models lose less under a perturbation than native ones? Paired by language pair.

    For each group, the pairs that have both a native and a transfer drop are compared: mean drops, the mean
    gap (native − transfer, F1 points), the share of pairs where the transfer model lost less, and the two-sided
    Wilcoxon signed-rank p-value of the paired drops (NaN with fewer than 3 pairs or all gaps zero).

    Args:
        points: from `view_points` (one row per pair, model, setting, perturbation, origin), perturbed rows.
        by: grouping columns.

    Returns:
        One row per group: the `by` columns, n_pairs, native_drop, transfer_drop, gap, transfer_less_share,
        wilcoxon_p.
    """
    from scipy import stats

    cols = [*by, "n_pairs", "native_drop", "transfer_drop", "gap", "transfer_less_share", "wilcoxon_p"]
    df = points[(points["perturbation"] != CLEAN) & points["setting"].isin(["native", "transfer"])]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, group in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        wide = group.pivot_table(index="pair", columns="setting", values="drop", aggfunc="mean")
        if not {"native", "transfer"} <= set(wide.columns):
            continue
        wide = wide[["native", "transfer"]].dropna()
        if wide.empty:
            continue
        gap = wide["native"] - wide["transfer"]
        p = float("nan")
        if len(wide) >= 3 and (gap != 0).any():
            p = float(stats.wilcoxon(wide["native"], wide["transfer"]).pvalue)
        rows.append([*key, len(wide), wide["native"].mean(), wide["transfer"].mean(), gap.mean(),
                     float((gap > 0).mean()), p])
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------ cluster bootstrap and paired t-test


def bootstrap_interval(boots: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Percentile CI and two-sided p-value of "the statistic is 0" from one bootstrap distribution.

    p = min(1, 2 * min(share of resamples <= 0, share >= 0)). The CI is [b_(k), b_(B-k+1)] (the k-th smallest and
    k-th largest of the B sorted resamples, i.e. inverted-CDF quantiles) with k the smallest count c for which
    min(1, 2c/B) >= 1 - level. Then low > 0 exactly when fewer than k resamples are <= 0, and high < 0 exactly when
    fewer than k are >= 0, so the CI excludes 0 exactly when p < 1 - level (same arithmetic, no rounding gap).

    Args:
        boots: the resampled statistics (NaNs are dropped).
        level: CI level in (0, 1).

    Returns:
        (low, high, p); NaNs when no resample is finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    b = np.sort(np.asarray(boots, dtype=float))
    b = b[np.isfinite(b)]
    n = len(b)
    nan = float("nan")
    if n == 0:
        return nan, nan, nan
    alpha = 1 - level

    def pval(count: int) -> float:
        return min(1.0, 2.0 * count / n)

    k = max(1, math.ceil(alpha * n / 2))
    while k > 1 and pval(k - 1) >= alpha:
        k -= 1
    while pval(k) < alpha:
        k += 1
    k = min(k, n)
    p = pval(min(int((b <= 0).sum()), int((b >= 0).sum())))
    return float(b[k - 1]), float(b[n - k]), p


def _weighted_midranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of `values` (n,) in each resample that repeats point i weights[b, i] times: (B, n)."""
    less = (values[None, :] < values[:, None]).astype(float)  # [i, j]: value j < value i
    same = (values[None, :] == values[:, None]).astype(float)
    return weights @ less.T + (weights @ same.T + 1.0) / 2.0


def _weighted_pearson(xs: np.ndarray, ys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of each resample (row) that repeats point i weights[b, i] times; NaN with fewer than 3 distinct
    points or a constant variable."""
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (weights * xs).sum(axis=1) / total
        my = (weights * ys).sum(axis=1) / total
        xc, yc = xs - mx[:, None], ys - my[:, None]
        r = (weights * xc * yc).sum(axis=1) / np.sqrt((weights * xc * xc).sum(axis=1) * (weights * yc * yc).sum(axis=1))
    chosen = weights > 0
    spread_x = np.where(chosen, xs, -np.inf).max(axis=1) - np.where(chosen, xs, np.inf).min(axis=1)
    spread_y = np.where(chosen, ys, -np.inf).max(axis=1) - np.where(chosen, ys, np.inf).min(axis=1)
    r[(chosen.sum(axis=1) < 3) | ~(spread_x > 0) | ~(spread_y > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def cluster_bootstrap_correlation(x: Sequence[float], y: Sequence[float], clusters: Sequence[str],
                                  method: str = "pearson", n_boot: int = 4000, level: float = 0.95,
                                  seed: int = 0) -> Correlation:
    """Pearson or Spearman correlation with a cluster-bootstrap CI and p-value from the same resamples.

    Points of one cluster (language pairs sharing a source: es→ca, es→an and es→ast share the es model) are not
    independent, so whole clusters are resampled with replacement; a resample repeats every point of a cluster
    drawn twice. The CI and p come from that one distribution (`bootstrap_interval`) and agree by construction.
    Resamples with fewer than 3 distinct points or a constant variable have no r and are left out.

    Args:
        x: feature values (points with a NaN are dropped).
        y: outcome values.
        clusters: one cluster label per point (e.g. the pair's source language).
        method: "pearson" or "spearman" (Pearson on average ranks, ranked within each resample).
        n_boot: resamples.
        level: CI level in (0, 1).
        seed: seed of the resampling (same inputs + seed = same result).

    Returns:
        A Correlation with interval "cluster", `clusters` (distinct clusters) and `resamples` (resamples with a
        defined r); r is the coefficient on all points; low/high/p are NaN with fewer than 3 clusters or no
        defined resample.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r}; choose one of: pearson, spearman")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels = np.asarray([str(c) for c in clusters], dtype=object)
    if not (len(xa) == len(ya) == len(labels)):
        raise ValueError(f"x, y and clusters must have the same length; got {len(xa)}, {len(ya)}, {len(labels)}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya, labels = xa[keep], ya[keep], labels[keep]
    full = correlation(xa.tolist(), ya.tolist(), method, level=level)
    names = sorted(set(labels.tolist()))
    nan = float("nan")
    if not np.isfinite(full.r) or len(names) < 3:
        return Correlation(method, full.r, nan, nan, nan, full.n, level, "cluster", len(names), 0)
    index = np.array([names.index(c) for c in labels])
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(names), size=(n_boot, len(names)))
    counts = np.zeros((n_boot, len(names)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(names)), drawn.ravel()), 1.0)
    weights = counts[:, index]
    if method == "spearman":
        xs, ys = _weighted_midranks(xa, weights), _weighted_midranks(ya, weights)
    else:
        xs, ys = np.broadcast_to(xa, weights.shape), np.broadcast_to(ya, weights.shape)
    boots = _weighted_pearson(xs, ys, weights)
    boots = boots[np.isfinite(boots)]
    low, high, p = bootstrap_interval(boots, level)
    return Correlation(method, full.r, low, high, p, full.n, level, "cluster", len(names), len(boots))


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of the mean difference a − b, with its t interval (one method: the CI excludes 0 exactly
    when p < 1 − level), and the Wilcoxon signed-rank p-value beside it (a second opinion without a CI).

    Attributes:
        mean: mean difference.
        low, high: the t CI of the mean (mean ± t_{(1+level)/2, n−1} · sd / sqrt(n)).
        p: two-sided p-value of mean = 0 (Student's t, n − 1 degrees of freedom).
        n: differences used (both values finite).
        sd: sample standard deviation of the differences.
        level: CI level.
        wilcoxon_p: two-sided Wilcoxon signed-rank p-value (NaN with fewer than 3 differences or all zero).
    """

    mean: float
    low: float
    high: float
    p: float
    n: int
    sd: float
    level: float
    wilcoxon_p: float


def paired_t(a: Sequence[float], b: Sequence[float] | None = None, level: float = 0.95) -> PairedTest:
    """Paired t-test of a − b (or of `a` alone when b is None) with its t CI.

    Args:
        a: first values (e.g. native drops, one per language pair).
        b: second values, same length and order (e.g. transfer drops); None tests `a` against 0.
        level: CI level in (0, 1).

    Returns:
        A PairedTest; NaNs with fewer than 2 differences. With all differences equal the CI is the point and p is
        0 (or 1 when they are all 0).
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    aa = np.asarray(a, dtype=float)
    bb = np.zeros_like(aa) if b is None else np.asarray(b, dtype=float)
    if aa.shape != bb.shape:
        raise ValueError(f"a and b must have the same length; got {aa.shape} and {bb.shape}")
    d = (aa - bb)[np.isfinite(aa) & np.isfinite(bb)]
    n = len(d)
    nan = float("nan")
    if n < 2:
        return PairedTest(float(d.mean()) if n else nan, nan, nan, nan, n, nan, level, nan)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    wil = nan
    if n >= 3 and bool((d != 0).any()):
        wil = float(stats.wilcoxon(d).pvalue)
    if not se > 0:
        return PairedTest(mean, mean, mean, 0.0 if mean != 0 else 1.0, n, sd, level, wil)
    q = float(stats.t.ppf((1 + level) / 2, n - 1))
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return PairedTest(mean, mean - q * se, mean + q * se, p, n, sd, level, wil)
