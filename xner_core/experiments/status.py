"""Stage 6, experiments: the status of a plan's evaluation jobs (done / running / missing) and the claims behind it.

"Done" means the job's rows are in the results store. "Running" (`plan_status`) means claimed: before a model's
jobs start, the process writes one claim file per job next to the store (`<store>.claims/<job_id>.json` with its
pid and host) and removes it once the job's rows are committed. A claim whose process is gone (same host, pid not
alive) counts as missing; a claim from another host is trusted.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from xner_core.errors import DataError
from xner_core.experiments.plan import Plan


def claims_dir(store_path: str | os.PathLike[str]) -> Path:
    """Where a run keeps its claim files: `<store>.claims/` next to the store file."""
    p = Path(store_path)
    return p.with_name(p.name + ".claims")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def live_claims(store_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Claims of jobs being worked on by a live process (stale claims of dead processes are ignored).

    Args:
        store_path: the results store file.

    Returns:
        job_id -> claim (pid, host, started).
    """
    d = claims_dir(store_path)
    out: dict[str, dict[str, Any]] = {}
    if not d.is_dir():
        return out
    host = socket.gethostname()
    for f in d.glob("*.json"):
        try:
            claim = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written or removed right now
        if claim.get("host") != host or _pid_alive(int(claim.get("pid", -1))):
            out[f.stem] = claim
    return out


@dataclass(frozen=True)
class PlanStatus:
    """Which evaluation jobs of a plan are done (rows stored), running (claimed by a live run) or missing."""

    done: tuple[str, ...]
    running: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def total(self) -> int:
        return len(self.done) + len(self.running) + len(self.missing)


def read_done(store: Any, attempts: int = 50, delay: float = 0.1) -> set[str]:
    """`store.job_ids()`, retried while another process holds the DuckDB file for a write.

    Args:
        store: a ResultsStore.
        attempts: tries before giving up.
        delay: seconds between tries.

    Returns:
        The ids of stored jobs.
    """
    for i in range(attempts):
        try:
            return store.job_ids()
        except DataError:
            if i == attempts - 1:
                raise
            time.sleep(delay)
    return set()


def plan_status(plan: Plan, store: Any) -> PlanStatus:
    """Classify every evaluation job of a plan.

    Args:
        plan: the plan.
        store: the ResultsStore.

    Returns:
        A PlanStatus; "running" = a live process has claimed the job (see the module docstring).
    """
    done_ids = read_done(store)
    claimed = live_claims(store.path)
    done: list[str] = []
    running: list[str] = []
    missing: list[str] = []
    for j in plan.eval_jobs:
        (done if j.id in done_ids else running if j.id in claimed else missing).append(j.id)
    return PlanStatus(tuple(done), tuple(running), tuple(missing))


def status_rows(plan: Plan, status: PlanStatus) -> list[dict[str, Any]]:
    """One row per model of a plan: its label, hash, targets and how many of its jobs are done/running/missing.

    Args:
        plan: the plan.
        status: its `plan_status`.

    Returns:
        Rows {model, hash, targets, done, running, missing} (for `xner grid status` and the dashboard).
    """
    done, running = set(status.done), set(status.running)
    rows = []
    for g in plan.groups:
        ids = [j.id for j in g.jobs]
        rows.append({"model": g.train.label, "hash": g.train.hash,
                     "targets": ",".join(b.config.target for b in g.batches) or "(teacher)",
                     "done": sum(i in done for i in ids), "running": sum(i in running for i in ids),
                     "missing": sum(i not in done and i not in running for i in ids)})
    return rows


class _Claims:
    """Claim files of the jobs this process works on (see the module docstring)."""

    def __init__(self, store_path: Path) -> None:
        self.dir = claims_dir(store_path)
        self.payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        self.held: set[str] = set()
        self.lock = threading.Lock()

    def claim(self, job_ids: Iterable[str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for jid in job_ids:
            path = self.dir / f"{jid}.json"
            tmp = self.dir / f".{jid}.{os.getpid()}.tmp"
            tmp.write_text(self.payload, encoding="utf-8")
            os.replace(tmp, path)
            with self.lock:
                self.held.add(jid)

    def release(self, job_id: str) -> None:
        with self.lock:
            self.held.discard(job_id)
        try:
            (self.dir / f"{job_id}.json").unlink()
        except FileNotFoundError:
            pass

    def release_all(self) -> None:
        with self.lock:
            held = list(self.held)
        for jid in held:
            self.release(jid)
