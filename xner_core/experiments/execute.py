"""Stage 6, experiments: running a plan (`run_plan`), resumably, with the local executor.

`run_plan` executes the missing part of a plan. Resumability rests on three atomic writes: a model cache entry
is moved into place whole (`models.cache`), predictions are written to a temp file and renamed, and each
evaluation job's rows are committed in one DuckDB transaction keyed by (job_id, scope). A run killed at any
moment (SIGKILL included) and started again skips every job whose rows are in the store and redoes the rest:
nothing is duplicated (INSERT OR REPLACE on the key) and nothing is partial (one transaction per job). Jobs are
claimed while they run (see `status`).

Executors: `local` runs the model groups one after another in this process (here); `ray` submits one task per
training job (a GPU each when the cluster has GPUs) and one streaming task per model's evaluation batch, which
yields each job's rows as it finishes (`ray_executor`); the driver alone writes to the store.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from xner_core.errors import ConfigError, DataError, XnerError
from xner_core.experiments.plan import EvalBatch, ModelGroup, Plan, group_options
from xner_core.experiments.status import _Claims, read_done

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridEvent:
    """A progress event of `run_plan`.

    kind: "start", "train_start", "train_done", "job_done", "failed" or "finish"; counts are after the event.
    """

    kind: str
    label: str = ""
    models_total: int = 0
    models_done: int = 0
    jobs_total: int = 0
    jobs_done: int = 0
    seconds: float = 0.0
    message: str = ""


ProgressFn = Callable[[GridEvent], None]


@dataclass(frozen=True)
class RunSummary:
    """What a `run_plan` call did.

    Attributes:
        jobs_total: evaluation jobs in the plan.
        jobs_done_before: already stored when the run started.
        jobs_run: jobs computed and stored by this run.
        rows_written: result rows committed.
        models_used: model groups this run needed (trained or loaded).
        models_trained: of those, trained now (not in the cache before).
        failures: one message per failed model group or job.
        skipped: the plan's skipped units.
        wall_seconds: wall time of the run.
        compute_seconds: time inside evaluation calls (train_model, iter_evaluate) on the driver; for ray, the
            tasks' own compute time.
        write_seconds: time spent committing rows (on the writer thread, overlapping compute).
    """

    jobs_total: int
    jobs_done_before: int
    jobs_run: int
    rows_written: int
    models_used: int
    models_trained: int
    failures: tuple[str, ...]
    skipped: tuple[str, ...]
    wall_seconds: float
    compute_seconds: float
    write_seconds: float

    @property
    def overhead_seconds(self) -> float:
        """Wall time not spent in evaluation compute (planning, store reads, claims, writes not overlapped)."""
        return max(0.0, self.wall_seconds - self.compute_seconds)


class _Writer:
    """Commits finished jobs' rows on a background thread, so the next job computes while the last one is
    written; then removes the jobs' claims. Errors surface on the next call.

    Group commit: a job is committed in the first transaction after it finishes; jobs that finish while a
    commit is in progress go together into the next one (one DuckDB commit costs ~0.1-0.3 s, more than a tiny
    model's job). Each job's rows are always inside exactly one transaction: never partial, never duplicated.
    """

    def __init__(self, store: Any, claims: "_Claims", on_written: Callable[[str, int], None],
                 lock_wait_s: float = 120.0) -> None:
        self.store = store
        self.claims = claims
        self.on_written = on_written
        self.lock_wait_s = lock_wait_s
        self.q: queue.Queue[tuple[str, Sequence[Mapping[str, Any]]] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.rows = 0
        self.commits = 0
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._loop, name="xner-grid-writer", daemon=True)
        self.thread.start()

    def _write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                return self.store.write(rows)
            except DataError as exc:  # the file is open in another process (a reader); wait for it
                if "cannot open" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _loop(self) -> None:
        stop = False
        while not stop:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            while True:  # everything that finished meanwhile joins this commit
                try:
                    more = self.q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if self.error is not None:
                continue
            try:
                t0 = time.perf_counter()
                self.rows += self._write([r for _, rows in batch for r in rows])
                self.seconds += time.perf_counter() - t0
                self.commits += 1
                for job_id, rows in batch:
                    self.claims.release(job_id)
                    self.on_written(job_id, len(rows))
            except BaseException as exc:  # noqa: BLE001 (re-raised on the caller's thread)
                self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, job_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.check()
        self.q.put((job_id, rows))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        self.check()


@dataclass
class _Tally:
    jobs_done: int = 0
    models_done: int = 0
    models_trained: int = 0
    compute: float = 0.0
    failures: list[str] = field(default_factory=list)


def _needed_groups(plan: Plan, done: set[str]) -> list[tuple[ModelGroup, list[EvalBatch]]]:
    """Model groups with work left, with their batches that have missing jobs; teachers are kept when a student
    that needs them has work left."""
    todo: dict[str, list[EvalBatch]] = {}
    for g in plan.groups:
        todo[g.train.key] = [b for b in g.batches if any(j.id not in done for j in b.jobs)]
    needed: set[str] = {h for h, bs in todo.items() if bs}
    for g in plan.groups:
        if g.train.key in needed:
            needed.update(g.train.needs)
    return [(g, todo[g.train.key]) for g in plan.groups if g.train.key in needed]


def cached_first(needed: list[tuple[ModelGroup, list[EvalBatch]]], is_cached: Callable[[Any], bool]
                 ) -> list[tuple[ModelGroup, list[EvalBatch]]]:
    """The groups whose model is already in the cache first, the others after, each part in plan order.

    New evaluation jobs for models trained earlier (a perturbation added to a spec) then run before any training,
    so their rows arrive within minutes; existing checkpoints (never trained) count as cached. Teachers still
    precede their students among the models to train: a cached student needs no teacher.

    Args:
        needed: from `_needed_groups`, in plan order.
        is_cached: config -> whether its weights are in the model cache.
    """
    flags = [g.train.checkpoint or bool(is_cached(g.train.config)) for g, _ in needed]  # a checkpoint: no training
    return [n for n, f in zip(needed, flags) if f] + [n for n, f in zip(needed, flags) if not f]


def run_plan(
    plan: Plan,
    store: Any,
    executor: str = "local",
    address: str | None = None,
    progress: ProgressFn | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    device: Any = None,
) -> RunSummary:
    """Run the missing part of a plan and store each evaluation job's rows as soon as it finishes.

    Args:
        plan: from `expand`.
        store: a `store.ResultsStore`.
        executor: "local" (this process) or "ray".
        address: Ray address ("auto", "HOST:PORT"); None starts a local Ray instance unless one is initialized.
        progress: called with a GridEvent at each step (start, model trained, job stored, failure, finish).
        data_dir: WikiANN directory (default: the plan's, then XNER_DATA_DIR).
        cache: xner cache root (models, predictions, embeddings).
        device: torch device for the local executor.

    Returns:
        A RunSummary. A failing model group is reported in `failures` and the run goes on with the others.
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; choose one of: local, ray")
    t_start = time.perf_counter()
    data_dir = data_dir if data_dir is not None else plan.data_dir
    emit = progress or (lambda event: None)
    done = read_done(store)
    all_jobs = plan.eval_jobs
    done_before = sum(1 for j in all_jobs if j.id in done)
    needed = _needed_groups(plan, done)
    jobs_total = len(all_jobs)
    tally = _Tally(jobs_done=done_before)
    models_total = len(needed)
    lock = threading.Lock()

    def event(kind: str, label: str = "", seconds: float = 0.0, message: str = "") -> None:
        log.log(logging.WARNING if kind == "failed" else logging.INFO, "grid %s: %s %s%s", plan.spec.name, kind,
                label, f" ({message})" if message else (f" {seconds:.1f}s" if seconds else ""))
        emit(GridEvent(kind, label, models_total, tally.models_done, jobs_total, tally.jobs_done, seconds, message))

    def on_written(job_id: str, n: int) -> None:
        with lock:
            tally.jobs_done += 1
        event("job_done", job_id)

    claims = _Claims(Path(store.path))
    writer = _Writer(store, claims, on_written)
    event("start")
    try:
        if executor == "local":
            _run_local(needed, done, plan, writer, claims, tally, event, data_dir, cache, device)
        else:
            # Imported here: the ray executor builds on this module's writer and tally (and imports Ray itself
            # only when it runs).
            from xner_core.experiments.ray_executor import _run_ray

            _run_ray(needed, done, plan, writer, claims, tally, event, address, data_dir, cache)
    finally:
        try:
            writer.close()
        finally:
            claims.release_all()
    event("finish", seconds=time.perf_counter() - t_start)
    return RunSummary(
        jobs_total=jobs_total, jobs_done_before=done_before, jobs_run=tally.jobs_done - done_before,
        rows_written=writer.rows, models_used=models_total, models_trained=tally.models_trained,
        failures=tuple(tally.failures), skipped=plan.skipped, wall_seconds=time.perf_counter() - t_start,
        compute_seconds=tally.compute, write_seconds=writer.seconds,
    )


def _run_local(needed: list[tuple[ModelGroup, list[EvalBatch]]], done: set[str], plan: Plan, writer: _Writer,
               claims: _Claims, tally: _Tally, event: Callable[..., None], data_dir: Any, cache: Any,
               device: Any) -> None:
    from xner_core.evaluation.evaluate import iter_evaluate
    from xner_core.evaluation.modelstore import load_checkpoint_model, model_cache, train_model

    mc = model_cache(cache)
    for group, batches in cached_first(needed, mc.has):
        tj = group.train
        options = group_options(plan, group)
        todo_ids = [j.id for b in batches for j in b.jobs if j.id not in done]
        claims.claim(todo_ids)
        try:
            cached = tj.checkpoint or mc.has(tj.config)
            if not batches and cached:
                tally.models_done += 1
                event("train_done", tj.label, 0.0, "cached")
                continue  # a teacher already in the cache: nothing to load
            event("train_start", tj.label)
            t0 = time.perf_counter()
            if tj.checkpoint:  # evaluated as it is: loaded, never trained
                lm = load_checkpoint_model(tj.config, device=device)
            else:
                lm = train_model(tj.config, data_dir=data_dir, cache=cache, device=device,
                                 precision=plan.spec.precision)
            dt = time.perf_counter() - t0
            tally.compute += dt
            tally.models_trained += 0 if cached else 1
            tally.models_done += 1
            event("train_done", tj.label, dt, "checkpoint" if tj.checkpoint else "cached" if cached else "trained")
            for batch in batches:
                it = iter_evaluate(batch.config, plan.spec.perturbations, options, data_dir=data_dir, cache=cache,
                                   loaded=lm, device=device, skip=done)
                while True:
                    t0 = time.perf_counter()
                    try:
                        outcome = next(it)
                    except StopIteration:
                        tally.compute += time.perf_counter() - t0
                        break
                    tally.compute += time.perf_counter() - t0
                    writer.put(outcome.job.id, outcome.rows)
        except Exception as exc:  # one failing model (bad data, a bug, out of memory) must not stop the others
            writer.check()  # a store failure is fatal: re-raise it rather than report it as this model's
            message = str(exc) if isinstance(exc, XnerError) else f"{type(exc).__name__}: {exc}"
            tally.failures.append(f"{tj.label}: {message}")
            event("failed", tj.label, message=message)
            for jid in todo_ids:
                if jid in claims.held:
                    claims.release(jid)
