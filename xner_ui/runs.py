"""What the runs page reads: the results store's location and schema, a preset grid's status against the store,
the model cache's entries (with how many copies this server process holds in memory), and the TAPT head note
wherever the `tapt` setting shows (e5-small has no pretrained masked-LM head, so TAPT trains a fresh one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import pandas as pd

from xner_ui import hooks


def store_path() -> str:
    """The local results store (`XNER_RESULTS`, default `<cache>/results.duckdb`)."""
    from xner_core.experiments.store import default_store_path

    return str(default_store_path())


def store_schema() -> pd.DataFrame:
    """The store's columns: name, SQL type, description."""
    from xner_core.experiments.store import SCHEMA

    return pd.DataFrame([{"column": c.name, "type": c.sql_type, "description": c.description} for c in SCHEMA])


def preset_names() -> list[str]:
    """The built-in grid presets."""
    from xner_core.experiments.spec import preset_names as names

    return names()


def tapt_notes(models: Iterable[str], heads: Mapping[str, str | None] | None = None) -> list[str]:
    """The TAPT head note (`training.tapt.tapt_head_note`) of each distinct model, for wherever `tapt` shows.

    Args:
        models: model names of `tapt` rows, models or a preset.
        heads: model -> the head its runs recorded (`train_info.tapt_head`), where known.

    Returns:
        One sentence per model, in first-seen order.
    """
    from xner_core.training.tapt import tapt_head_note

    return [tapt_head_note(m, (heads or {}).get(m)) for m in dict.fromkeys(str(m) for m in models)]


def frame_tapt_notes(frame: pd.DataFrame) -> list[str]:
    """`tapt_notes` of the models that have `tapt` rows in a results frame (none: no note)."""
    if frame.empty or "setting" not in frame.columns:
        return []
    return tapt_notes(frame.loc[frame["setting"] == "tapt", "model"])


@dataclass(frozen=True)
class GridStatus:
    """A preset's plan against the store: counts, the planner's skip notes, one status row per model, and notes
    on its settings (the TAPT head note when the preset trains `tapt` models)."""

    description: str
    total: int
    done: int
    running: int
    missing: int
    skipped: tuple[str, ...]
    rows: pd.DataFrame
    notes: tuple[str, ...] = ()


def grid_status(preset: str) -> GridStatus:
    """Plan the preset offline and compare it with the local store (done, running = claimed, missing)."""
    from xner_core.experiments.plan import expand
    from xner_core.experiments.spec import load_spec
    from xner_core.experiments.status import plan_status, status_rows
    from xner_core.experiments.store import ResultsStore

    spec = load_spec(preset)
    plan = expand(spec, online=False)
    status = plan_status(plan, ResultsStore())
    notes = tuple(tapt_notes(spec.models)) if "tapt" in spec.settings else ()
    return GridStatus(spec.description, status.total, len(status.done), len(status.running), len(status.missing),
                      tuple(plan.skipped), pd.DataFrame(status_rows(plan, status)), notes)


def _tapt_heads() -> dict[str, str | None]:
    """hash -> `train_info.tapt_head` of the cached tapt models' manifests."""
    from xner_core.evaluation.modelstore import model_cache

    out: dict[str, str | None] = {}
    for manifest in model_cache().manifests():
        info = manifest.get("train_info") or {}
        if isinstance(info, dict) and "tapt_head" in info:
            out[str(manifest.get("hash"))] = info.get("tapt_head")
    return out


def cached_models() -> pd.DataFrame:
    """The valid cached models, newest first: model, setting, config label, hash, MB, created, `loaded` (the
    copies this server process holds in memory) and `note` (for tapt models: which masked-LM head TAPT used, from
    the manifest where it says). Empty when none is cached."""
    from xner_core.evaluation.modelstore import cached_configs
    from xner_core.runs.config import config_label
    from xner_core.training.tapt import tapt_head_note

    in_memory = hooks.loaded_models()
    entries = cached_configs()
    heads = _tapt_heads() if any(cfg.setting == "tapt" for cfg, _ in entries) else {}
    return pd.DataFrame([{"model": cfg.model, "setting": cfg.setting, "config": config_label(cfg),
                          "hash": info["hash"], "MB": round(info["size_bytes"] / 2**20, 1),
                          "created": str(info["created"]), "loaded": in_memory.count(info["hash"]),
                          "note": tapt_head_note(cfg.model, heads.get(info["hash"])) if cfg.setting == "tapt" else ""}
                         for cfg, info in entries])
