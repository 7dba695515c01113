"""What the runs page reads: the results store's location and schema, a preset grid's status against the store,
and the model cache's entries (with how many copies this server process holds in memory)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class GridStatus:
    """A preset's plan against the store: counts, the planner's skip notes and one status row per model."""

    description: str
    total: int
    done: int
    running: int
    missing: int
    skipped: tuple[str, ...]
    rows: pd.DataFrame


def grid_status(preset: str) -> GridStatus:
    """Plan the preset offline and compare it with the local store (done, running = claimed, missing)."""
    from xner_core.experiments.plan import expand
    from xner_core.experiments.spec import load_spec
    from xner_core.experiments.status import plan_status, status_rows
    from xner_core.experiments.store import ResultsStore

    spec = load_spec(preset)
    plan = expand(spec, online=False)
    status = plan_status(plan, ResultsStore())
    return GridStatus(spec.description, status.total, len(status.done), len(status.running), len(status.missing),
                      tuple(plan.skipped), pd.DataFrame(status_rows(plan, status)))


def cached_models() -> pd.DataFrame:
    """The valid cached models, newest first: model, setting, config label, hash, MB, created, and `loaded` (the
    copies this server process holds in memory). Empty when none is cached."""
    from xner_core.evaluation.modelstore import cached_configs
    from xner_core.runs.config import config_label

    in_memory = hooks.loaded_models()
    return pd.DataFrame([{"model": cfg.model, "setting": cfg.setting, "config": config_label(cfg),
                          "hash": info["hash"], "MB": round(info["size_bytes"] / 2**20, 1),
                          "created": str(info["created"]), "loaded": in_memory.count(info["hash"])}
                         for cfg, info in cached_configs()])
