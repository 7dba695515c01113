"""Stage 7, analysis: the frames the findings (`xner_core.analysis.findings`) test and draw: our rows per language
pair (seeds averaged, their spread kept), the pairs left out and why (a clean-F1 floor; a matched perturbation the
source cannot reach; too few entities changed to divide by), the overlap and paired plot frames, and the control
pair's rows. Constants the findings share live here too.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xner_core.analysis.tidy import CLEAN, DEFAULT_PRESET, protocols

FLOOR = 50.0          # clean F1 (points) below which a model's drops are left out
MATCH_SHARE = 0.9     # a matched row counts when it changed at least this share of the intended entity share
MIN_CHANGED = 0.01    # a drop per changed entity needs at least 1 % of the gold entities changed
NULL_P = 0.5          # study's direction but p >= this: indistinguishable from 0
MIN_PAIRS = 3         # fewer pairs left than this: not measured
CONTROL_PAIR = "ar→hi"
P1, P2, P3 = "entity_replace", "context_replace", "entity_context"
P2_STUDY, P3_STUDY, LOC_SWAP = "context_replace_study", "entity_context_study", "location_swap"
P1_MATCHED, RANDOM, RANDOM_MATCHED = "entity_replace_matched", "entity_random", "entity_random_matched"
SHORT: Mapping[str, str] = {P1: "P1", P2: "P2", P3: "P3", P2_STUDY: "P2 (study's rules)",
                            P3_STUDY: "P3 (study's rules)", LOC_SWAP: "LOC swap",
                            P1_MATCHED: "P1 matched", RANDOM: "random-entity control",
                            RANDOM_MATCHED: "random-entity control (matched)"}
VERDICTS: tuple[str, ...] = ("holds", "weaker", "not supported here", "not measured")
# Streamlit badge colours of the verdicts (the Findings page).
VERDICT_COLOURS: Mapping[str, str] = {"holds": "green", "weaker": "orange", "not supported here": "red",
                                      "not measured": "gray"}
TABLE_COLUMNS: tuple[str, ...] = (
    "id", "finding", "test", "statistic", "model", "estimate", "low", "high", "p", "p_holm", "n", "seeds",
    "seed_sd", "protocol", "verdict", "study", "note", "alt_method", "alt_estimate", "alt_low", "alt_high", "alt_p",
    "seed_estimates", "seed_n", "seed_mean", "seed_low", "seed_high", "seed_p", "seed_agree", "plot")
EXCLUSION_COLUMNS: tuple[str, ...] = ("finding", "model", "pair", "setting", "reason")
CLAIMS: Mapping[str, str] = {
    "1": "Transfer F1 grows with entity overlap",
    "2": "The transfer drop grows with entity overlap",
    "3": "Transfer models are more robust than native ones",
    "4": "LOC swaps hurt native models more than transfer models",
    "5": f"The control pair {CONTROL_PAIR} does not move",
    "6": "What P1 costs is unseen entities, not any changed entity (our control)",
}

# ------------------------------------------------------------------------------------------------- inputs


def default_protocol(tidy: pd.DataFrame) -> str | None:
    """The protocol the findings test by default: the `paper-faithful` run when it has rows, else the largest."""
    from xner_core.analysis.tidy import spec_protocol
    from xner_core.experiments.spec import load_spec

    spec = load_spec(DEFAULT_PRESET)
    found = protocols(tidy, prefer=[spec_protocol(spec, m) for m in spec.models])
    return found[0] if found else None


_CELL_KEYS = ["pair", "pair_order", "source", "setting", "perturbation"]
_CELL_VALUES = ["clean_f1", "f1", "drop", "per_pct", "changed", "rate", "overlap"]
_SD_VALUES = ["clean_f1", "f1", "drop", "per_pct"]


def seed_cells(tidy: pd.DataFrame, protocol: str | None, model: str) -> pd.DataFrame:
    """Our overall-scope rows of the reference pairs (native and single-source transfer), one per seed.

    Args:
        tidy: the tidy frame.
        protocol: our run (`protocol_label`); None: every protocol.
        model: the model.

    Returns:
        One row per (pair, setting, perturbation, seed) (rows repeated for one seed are averaged; a row without a
        seed is its own seed, NaN): the columns of `pair_cells`, with `seed`, sds NaN, seeds 1 and seed_list
        (seed,); the frames of this module accept it wherever they accept `pair_cells`.
    """
    df = tidy[(tidy["origin"] == "ours") & (tidy["scope"] == "overall") & (tidy["model"] == model)
              & tidy["setting"].isin(["native", "transfer"]) & (tidy["pair_order"] < 10_000)]
    if protocol is not None:
        df = df[df["protocol"] == protocol]
    df = df.assign(changed=pd.to_numeric(df.get("entities_changed_frac", np.nan), errors="coerce"),
                   rate=pd.to_numeric(df.get("perturb_rate", np.nan), errors="coerce"),
                   overlap=df["entity_token_overlap"], seed=pd.to_numeric(df["seed"], errors="coerce"))
    df = df.assign(per_pct=np.where(df["changed"] >= MIN_CHANGED, df["drop"] / (100 * df["changed"]), np.nan))
    columns = [*_CELL_KEYS, *_CELL_VALUES, *(f"{v}_sd" for v in _SD_VALUES), "seeds", "seed_list", "seed"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    out = df.groupby([*_CELL_KEYS, "seed"], sort=False, dropna=False)[_CELL_VALUES].mean().reset_index()
    for v in _SD_VALUES:
        out[f"{v}_sd"] = np.nan
    out["seeds"] = 1
    out["seed_list"] = [() if s != s else (int(s),) for s in out["seed"]]
    return out.sort_values(["pair_order", "setting", "perturbation", "seed"], kind="stable")[columns] \
        .reset_index(drop=True)


def pair_cells(tidy: pd.DataFrame, protocol: str | None, model: str) -> pd.DataFrame:
    """Our overall-scope rows of the reference pairs (native and single-source transfer), seeds averaged.

    Args:
        tidy: the tidy frame.
        protocol: our run (`protocol_label`); None: every protocol.
        model: the model.

    Returns:
        One row per (pair, setting, perturbation): pair, pair_order, source, setting, perturbation, clean_f1, f1,
        drop, per_pct (drop per 1 % of gold entities changed), changed, rate, overlap (entity_token_overlap), the
        seed sd of clean_f1 / f1 / drop / per_pct (`*_sd`), seeds (count) and seed_list.
    """
    return average_seeds(seed_cells(tidy, protocol, model))


def average_seeds(cells: pd.DataFrame) -> pd.DataFrame:
    """`seed_cells` averaged over seeds: the rows of `pair_cells` (seed sds, seeds, seed_list)."""
    if cells.empty:
        return cells.drop(columns="seed")
    g = cells.groupby(_CELL_KEYS, sort=False)
    out = g[_CELL_VALUES].mean()
    sd = g[_SD_VALUES].std().add_suffix("_sd")
    seeds = g["seed"].agg(lambda s: tuple(sorted({int(v) for v in s.dropna()}))).rename("seed_list")
    out = pd.concat([out, sd, seeds], axis=1).reset_index()
    out["seeds"] = out["seed_list"].map(lambda t: max(len(t), 1))
    return out.sort_values(["pair_order", "setting", "perturbation"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- plot frames


def _floor_reasons(cells: pd.DataFrame, floor: float) -> dict[tuple[str, str], str]:
    """(pair, setting) -> why its drops are left out: clean F1 below the floor."""
    clean = cells[cells["perturbation"] == CLEAN]
    return {(p, s): f"{s} clean F1 {f:.1f} < floor {floor:g}"
            for p, s, f in zip(clean["pair"], clean["setting"], clean["f1"]) if f < floor}


def overlap_frame(cells: pd.DataFrame, perturbation: str, value: str = "drop",
                  left_out: Mapping[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """A finding's scatter: one transfer point per pair, our entity-token overlap against `value`.

    Args:
        cells: from `pair_cells`.
        perturbation: the perturbation ("clean" for clean F1).
        value: "drop" or "f1".
        left_out: (pair, setting) -> reason, for points not to use.

    Returns:
        Columns pair, source, x, y, y_sd, seeds, reason ("" = used); empty when the perturbation has no rows.
    """
    rows = cells[(cells["setting"] == "transfer") & (cells["perturbation"] == perturbation)]
    reasons = left_out or {}
    return pd.DataFrame({"pair": rows["pair"], "source": rows["source"], "x": rows["overlap"], "y": rows[value],
                         "y_sd": rows[f"{value}_sd"], "seeds": rows["seeds"],
                         "reason": [reasons.get((p, "transfer"), "") for p in rows["pair"]]}).reset_index(drop=True)


def paired_frame(cells: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], value: str = "drop",
                 left_out: Mapping[tuple[str, str], str] | None = None,
                 by: Sequence[str] = ("pair",)) -> pd.DataFrame:
    """A finding's paired chart: per pair, `value` of side a and side b ((setting, perturbation) each).

    Args:
        cells: from `pair_cells`.
        a, b: (setting, perturbation) of the two sides, e.g. ("native", "location_swap"), ("transfer", ...).
        value: "drop" or "per_pct".
        left_out: (pair, setting) -> reason; a pair is left out when either side's setting is.
        by: the columns that name one row of each side: ("pair",) for pair cells, ("pair", "seed") for
            `seed_cells` (one row per pair and seed).

    Returns:
        Columns `by` (pair first), source, a, b, a_sd, b_sd, diff (a − b), seeds (fewest of the two), reason
        ("" = used); only rows with both sides.
    """
    keys = list(dict.fromkeys(["pair", *by]))

    def side(setting: str, pert: str) -> pd.DataFrame:
        rows = cells[(cells["setting"] == setting) & (cells["perturbation"] == pert)]
        return rows.set_index(keys)[["source", "pair_order", value, f"{value}_sd", "seeds"]]

    sa, sb = side(*a), side(*b)
    both = (sa.join(sb, lsuffix="_a", rsuffix="_b", how="inner").sort_values("pair_order_a", kind="stable")
            .reset_index())
    reasons = left_out or {}

    def why(pair: str) -> str:
        return "; ".join(dict.fromkeys(r for s in (a[0], b[0]) if (r := reasons.get((pair, s)))))

    return pd.DataFrame({
        **{k: both[k].to_numpy() for k in keys}, "source": both["source_a"].to_numpy(),
        "a": both[f"{value}_a"].to_numpy(),
        "b": both[f"{value}_b"].to_numpy(), "a_sd": both[f"{value}_sd_a"].to_numpy(),
        "b_sd": both[f"{value}_sd_b"].to_numpy(),
        "diff": (both[f"{value}_a"] - both[f"{value}_b"]).to_numpy(),
        "seeds": np.minimum(both["seeds_a"], both["seeds_b"]).to_numpy(),
        "reason": [why(p) for p in both["pair"]]})


def control_frame(tidy: pd.DataFrame, protocol: str | None, model: str, pair: str = CONTROL_PAIR,
                  perturbations: Sequence[str] = (P1, P2, P3, P2_STUDY, P3_STUDY)) -> pd.DataFrame:
    """The control pair's transfer drops, one row per perturbation and seed, with the rows' bootstrap CIs.

    Args:
        tidy: the tidy frame.
        protocol: our run; None: every protocol.
        model: the model.
        pair: the control pair's label.
        perturbations: which drops.

    Returns:
        Columns perturbation, seed, label ("P1 · seed 0"), estimate, low, high (points), n_sentences, changed and
        tokens (shares of gold entities and of tokens the perturbation changed; NaN where unknown).
    """
    df = tidy[(tidy["origin"] == "ours") & (tidy["scope"] == "overall") & (tidy["model"] == model)
              & (tidy["pair"] == pair) & (tidy["setting"] == "transfer") & tidy["perturbation"].isin(perturbations)]
    if protocol is not None:
        df = df[df["protocol"] == protocol]
    df = df.assign(_o=df["perturbation"].map({p: i for i, p in enumerate(perturbations)}))
    df = df.sort_values(["_o", "seed"], kind="stable")
    labels = [f"{SHORT.get(p, p)} · seed {int(s) if s == s else '?'}" for p, s in zip(df["perturbation"], df["seed"])]
    return pd.DataFrame({
        "perturbation": df["perturbation"], "seed": df["seed"], "label": labels, "estimate": df["drop"],
        "low": df["drop_low"], "high": df["drop_high"], "n_sentences": df["n_sentences"],
        "changed": df.get("entities_changed_frac", np.nan), "tokens": df.get("tokens_changed_frac", np.nan),
    }).reset_index(drop=True)


def _seed_lists(cells: pd.DataFrame, setting: str, pert: str, pairs: Any) -> list[tuple[int, ...]]:
    rows = cells[(cells["setting"] == setting) & (cells["perturbation"] == pert) & cells["pair"].isin(list(pairs))]
    return list(rows["seed_list"])


def _short_changes(cells: pd.DataFrame, pert: str, settings: Sequence[str],
                   matched: bool) -> dict[tuple[str, str], str]:
    """(pair, setting) -> reason, for rows that changed too few gold entities. `matched`: the source shares fewer
    entities than the intended share (plain P1, which changes every shared one, changed less; without a P1 row:
    the row itself changed under MATCH_SHARE of it: a random shortfall on a small test set is no reason); else
    under MIN_CHANGED (a drop per changed entity needs something to divide by)."""
    rows = cells[(cells["perturbation"] == pert) & cells["setting"].isin(list(settings))]
    p1 = cells[cells["perturbation"] == P1]
    reach = dict(zip(zip(p1["pair"], p1["setting"]), p1["changed"]))
    out = {}
    for pair, setting, changed, rate in zip(rows["pair"], rows["setting"], rows["changed"], rows["rate"]):
        what = f"{setting} {SHORT.get(pert, pert)}"
        can = reach.get((pair, setting), float("nan"))
        if not (changed == changed and (rate == rate or not matched)):
            out[(pair, setting)] = f"{what}: changed-entity share unknown"
        elif matched and (can < rate if can == can else changed < MATCH_SHARE * rate):
            shares = can if can == can else changed
            out[(pair, setting)] = (f"{what} changed {100 * changed:.1f} % of gold entities: the source shares "
                                    f"{100 * shares:.1f} %, under the intended {100 * rate:g} %")
        elif not matched and changed < MIN_CHANGED:
            out[(pair, setting)] = (f"{what} changed {100 * changed:.1f} % of gold entities (< {100 * MIN_CHANGED:g}"
                                    " %): nothing to divide by")
    return out
