"""The one owner of runs inside the server.

Sweeps wait in a queue and run one at a time (one hardware job at a time); the
supervisor is the only writer to the database while the server runs. Runs belong
to the server, not to a browser tab: a page only reads `status()`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from db.store import Store
from runner.processes import has_live_owner, kill_orphans, owner_env, owner_from_env
from runner.result import RunResult
from studio.sweeps.plan import SweepPlan, resume_plan
from studio.sweeps.run import create_rows, run_sweep
from studio.sweeps.server_settings import ServerPlan

LOG_LINES = 200
FINAL = ("succeeded", "failed", "cancelled", "interrupted")


@dataclass
class RunProgress:
    run_id: int
    num_gpus: int
    repeat: int
    total: int
    status: str = "queued"
    phase: str = ""
    done_by_rank: dict = field(default_factory=dict)
    tokens_per_second: float | None = None
    error: str | None = None

    @property
    def done(self) -> int:
        return sum(self.done_by_rank.values())

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id, "num_gpus": self.num_gpus, "repeat": self.repeat, "status": self.status,
            "phase": self.phase, "done": self.done, "total": self.total,
            "tokens_per_second": self.tokens_per_second, "error": self.error,
        }


class StopRequest(threading.Event):
    """A sweep's stop flag, with why: 'user' (Stop) or 'shutdown' (the server is
    stopping), so the runs it ends are stored as cancelled or interrupted."""

    reason = ""

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.set()


@dataclass
class SweepJob:
    sweep_id: int
    plan: SweepPlan
    run_ids: list[int]
    submitted_at: float
    cancel: "StopRequest" = field(default_factory=lambda: StopRequest())
    state: str = "queued"
    runs: dict[int, RunProgress] = field(default_factory=dict)
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LOG_LINES))
    current_run_id: int | None = None
    hardware_position: int | None = None  # place in line for the machine, while another runner holds it
    server: dict | None = None  # a server sweep's cell and load under way (its runs are stored per load)


ADOPT_EVERY_S = 10.0  # how often an idle server looks for sweeps a dead owner left


class Supervisor:
    def __init__(self, db_path: str | Path | None = None, *, keep_finished: int = 50, resume: bool = True,
                 server_runner: Callable | None = None):
        """`server_runner`: what runs a `ServerPlan` (studio.exchange.serving_run.run_server_sweep,
        given by the layer above, which counts and stores its loads)."""
        self.store = Store(db_path)
        self.server_runner = server_runner
        self.db_path = self.store.path
        self.resume = resume
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[SweepJob] = collections.deque()
        self._jobs: dict[int, SweepJob] = {}
        self._finished: collections.deque[int] = collections.deque(maxlen=keep_finished)
        self._current: SweepJob | None = None
        self._stopping = False
        self.killed: list[int] = []
        self.interrupted_at_start, self.resumed_at_start = self.adopt_orphans()
        self.killed_at_start = self.killed
        self._thread = threading.Thread(target=self._loop, name="studio-supervisor", daemon=True)
        self._thread.start()

    def adopt_orphans(self) -> tuple[list[int], list[int]]:
        """Take over what a dead server or CLI left on this database; at start-up and
        whenever this server is idle or asked to stop or delete another's sweep.

        End whatever of the dead owner's processes still runs (only those: their
        environment names the dead owner), then mark the runs that had started
        interrupted; they cannot be resumed mid-generate. Runs of a server's sweep
        that never started touched no hardware: with `resume`, they join this
        server's queue. Sweeps whose owner (this server, a CLI, another server on this
        database) or whose processes' owner still runs are left alone.
        Returns (runs marked interrupted, sweeps resumed)."""
        with self._lock:
            stale, unfinished = self.store.active_runs(), self.store.unfinished_sweeps()
            if not stale and not unfinished:
                return [], []
            live = {run["sweep_id"] for run in stale
                    if any(has_live_owner(p) for p in run.get("pids") or [])} - {None}
            live |= {s["id"] for s in unfinished if s["owner"] and owner_from_env(s["owner"])}
            live |= set(self._jobs)  # this server's own, finished or not
            self.killed = kill_orphans(pid for run in stale for pid in (run.get("pids") or []))
            resumable = self.store.resumable_sweeps(exclude=live) if self.resume else []
            interrupted = self.store.mark_stale_interrupted(keep_sweeps=live, resume_sweeps=resumable)
            return interrupted, [sweep_id for sweep_id in resumable if self._resume(sweep_id)]

    # submitting and stopping ------------------------------------------------
    def submit(self, plan: SweepPlan | ServerPlan) -> int:
        with self._lock:
            if self._stopping:
                raise RuntimeError("the studio is shutting down; submit again after it restarts")
            if isinstance(plan, ServerPlan):
                return self._submit_server(plan)
            sweep_id, run_ids = create_rows(plan, self.store, origin="server")
            self._enqueue(sweep_id, plan, run_ids,
                          f"sweep {sweep_id} queued: {len(run_ids)} run(s) over GPU counts {plan.gpu_counts}")
            return sweep_id

    def _submit_server(self, plan: ServerPlan) -> int:
        """A server sweep's runs are its loads, known only as each cell runs: the sweep row
        is made now, its runs as each cell ends (studio.exchange.serving_run)."""
        if self.server_runner is None:
            raise RuntimeError("this studio was started without the server scenario's runner; run it with "
                               "`studio run --scenario server`")
        sweep_id = self.store.create_sweep(plan.settings, plan.gpu_counts, 1, name=plan.name, origin="server",
                                           owner=owner_env())
        self._enqueue(sweep_id, plan, [], f"sweep {sweep_id} queued: the server scenario, {len(plan.cells)} "
                      f"cell(s) over GPU counts {plan.gpu_counts}, the {plan.settings['profile']} profile")
        return sweep_id

    def _enqueue(self, sweep_id: int, plan: SweepPlan | ServerPlan, run_ids: list[int], note: str) -> None:
        with self._lock:
            job = SweepJob(sweep_id=sweep_id, plan=plan, run_ids=run_ids, submitted_at=time.time())
            for (count_index, repeat), run_id in zip(getattr(plan, "order", ()), run_ids):
                config = plan.prepared[count_index].config
                job.runs[run_id] = RunProgress(run_id, config.gpus_per_node, repeat, len(config.prompts))
            job.log.append(note)
            self._jobs[sweep_id] = job
            self._queue.append(job)
            self._wake.notify_all()

    def _resume(self, sweep_id: int) -> bool:
        try:
            plan, run_ids = resume_plan(self.store, sweep_id)
        except Exception as exc:  # the server must start whatever a stored row holds; the reason is kept
            # e.g. the machine changed under the sweep (a model folder gone, fewer GPUs): it cannot run as planned
            reason = f"not resumed after the studio server restarted: {exc}"
            for run in self.store.list_runs(sweep_id=sweep_id, status="queued"):
                self.store.finish_run(run["id"], RunResult.failure(run["config"], "interrupted", reason))
            self.store.finish_sweep(sweep_id, "interrupted")
            return False
        interrupted = sum(status == "interrupted" for status in plan.ended_before)
        self._enqueue(sweep_id, plan, run_ids,
                      f"sweep {sweep_id} resumed after the studio server restarted: {len(run_ids)} queued run(s)"
                      + (f"; {interrupted} run(s) under way when it stopped stay interrupted" if interrupted else ""))
        return True

    def cancel(self, sweep_id: int | None = None) -> bool:
        """Stop a sweep (the running one by default). Queued runs never start."""
        if sweep_id is not None and sweep_id not in self._jobs:
            self.adopt_orphans()  # a dead owner's sweep becomes this server's, or is ended
        with self._lock:
            job = self._current if sweep_id is None else self._jobs.get(sweep_id)
            if job is None or job.state in FINAL:
                return False
            job.cancel.stop("user")
            job.log.append("stop requested")
            if job in self._queue:
                self._queue.remove(job)
                self._finish_unstarted(job, "cancelled", "cancelled before it started")
            else:
                # on disk before the caller hears "stopped": a crash in between must not resume it
                self.store.record_stop(job.sweep_id)
            return True

    def shutdown(self, timeout: float = 15.0) -> None:
        with self._lock:
            self._stopping = True
            for job in list(self._queue):
                self._queue.remove(job)
                self._finish_unstarted(job, "interrupted", "the studio server stopped before this run started")
            if self._current is not None:
                self._current.cancel.stop("shutdown")
            self._wake.notify_all()
        self._thread.join(timeout)

    def _finish_unstarted(self, job: SweepJob, status: str, reason: str) -> None:
        for run_id in job.run_ids:
            progress = job.runs[run_id]
            if progress.status == "queued":
                config = job.plan.prepared[0].config.replace(gpus_per_node=progress.num_gpus)
                self.store.finish_run(run_id, RunResult.failure(config.to_dict(), status, reason))
                progress.status = status
        self.store.finish_sweep(job.sweep_id, status)
        job.state = status
        self._finished.append(job.sweep_id)

    def forget(self, sweep_ids) -> None:
        """Deleted sweeps: their finished jobs must not answer sweep_status any more."""
        with self._lock:
            for sweep_id in sweep_ids or ():
                job = self._jobs.get(sweep_id)
                if job is not None and job.state in FINAL:
                    del self._jobs[sweep_id]
            kept = [s for s in self._finished if s in self._jobs]
            self._finished.clear()
            self._finished.extend(kept)

    # reading ------------------------------------------------------------------
    def status(self, sweep_id: int | None = None) -> dict | None:
        with self._lock:
            job = self._current if sweep_id is None else self._jobs.get(sweep_id)
            if job is None and sweep_id is None and self._finished:
                job = self._jobs.get(self._finished[-1])
            if job is None:
                return None
            position = None
            if job.state == "queued":
                position = next(i for i, j in enumerate(self._queue) if j is job) + 1
            elif job.state == "running":
                position = job.hardware_position  # waiting for the machine (another server or a CLI holds it)
            return {
                "sweep_id": job.sweep_id,
                "state": job.state,
                "queue_position": position,
                "current_run_id": job.current_run_id,
                "gpu_counts": job.plan.gpu_counts,
                "repeats": getattr(job.plan, "repeats", 1),
                "runs": [job.runs[r].to_dict() for r in job.run_ids],
                "server": dict(job.server) if job.server else None,
                "log": list(job.log),
            }

    def queue(self) -> list[dict]:
        with self._lock:
            jobs = ([self._current] if self._current else []) + list(self._queue)
            return [{"sweep_id": j.sweep_id, "state": j.state, "position": i} for i, j in enumerate(jobs)]

    def busy(self) -> bool:
        with self._lock:
            return self._current is not None or bool(self._queue)

    # the loop -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    if not self._wake.wait(ADOPT_EVERY_S):
                        self.adopt_orphans()
                if self._stopping and not self._queue:
                    return
                job = self._queue.popleft()
                job.state = "running"
                self._current = job
            try:
                state = self._run_server(job) if isinstance(job.plan, ServerPlan) else self._run_offline(job)
            except Exception as exc:  # keep serving: record it, go on with the queue
                state = "failed"
                job.log.append(f"sweep failed: {type(exc).__name__}: {exc}")
                for run_id in job.run_ids:
                    if job.runs[run_id].status in ("queued", "running"):
                        config = job.plan.base.replace(gpus_per_node=job.runs[run_id].num_gpus)
                        self.store.finish_run(run_id, RunResult.failure(config.to_dict(), "failed", str(exc)))
                        job.runs[run_id].status = "failed"
                self.store.finish_sweep(job.sweep_id, "failed")
            with self._lock:
                job.state = state
                job.current_run_id = None
                self._current = None
                self._finished.append(job.sweep_id)
                job.log.append(f"sweep {job.sweep_id} {state}")

    def _run_offline(self, job: SweepJob) -> str:
        outcome = run_sweep(job.plan, self.store, on_event=lambda e, j=job: self._on_event(j, e),
                            cancel=job.cancel, sweep_id=job.sweep_id, run_ids=job.run_ids,
                            submitted_at=job.submitted_at, program="server")
        return self._interrupted_by_shutdown(job) if job.cancel.reason == "shutdown" else outcome.status

    def _run_server(self, job: SweepJob) -> str:
        outcome = self.server_runner(job.plan, self.store, sweep_id=job.sweep_id, stop=job.cancel, program="server",
                                     on_progress=lambda event, j=job: self._on_server_progress(j, event))
        with self._lock:
            job.server = None
            job.log.extend(f"failed: {error}" for error in outcome.errors)
            if outcome.sentence:
                job.log.append(outcome.sentence)
        if job.cancel.reason == "shutdown":  # nobody pressed Stop: the studio stopped under the load
            self.store.finish_sweep(job.sweep_id, "interrupted")
            return "interrupted"
        return outcome.status

    def _on_server_progress(self, job: SweepJob, event: dict) -> None:
        """The cell and load under way, for status(); a line in the log as each phase begins."""
        with self._lock:
            def step(server: dict) -> tuple:  # what a new log line is written for; requests done are not
                return tuple(server.get(k) for k in ("cell", "phase", "profile", "rate"))

            before = job.server or {}
            job.server = {k: event.get(k) for k in ("cell", "cells", "gpus", "tp_size", "replicas", "phase",
                                                    "profile", "rate", "done", "total", "holder")}
            if step(job.server) != step(before):
                job.log.append(server_line(job.server))

    def _interrupted_by_shutdown(self, job: SweepJob) -> str:
        """The server stopped under this sweep: runs it kept from starting are
        interrupted, not cancelled (nobody pressed Stop), and so is the sweep."""
        for row in self.store.list_runs(ids=job.run_ids):
            if row["status"] == "cancelled" and row["started_at"] is None:
                config = job.plan.base.replace(gpus_per_node=row["num_gpus"])
                self.store.finish_run(row["id"], RunResult.failure(
                    config.to_dict(), "interrupted", "the studio server stopped before this run started"))
                job.runs[row["id"]].status = "interrupted"
        self.store.finish_sweep(job.sweep_id, "interrupted")
        return "interrupted"

    def _on_event(self, job: SweepJob, event: dict) -> None:
        with self._lock:
            kind = event["event"]
            progress = job.runs.get(event.get("run_id"))
            if progress is None:
                return
            if kind != "waiting":
                job.hardware_position = None
            if kind == "run-start":
                job.current_run_id = progress.run_id
                progress.status = "running"
                progress.phase = "launching"
                job.log.append(f"run {progress.run_id}: {progress.num_gpus} GPU(s), repeat {progress.repeat + 1}")
            elif kind == "phase":
                progress.phase = event["phase"]
            elif kind == "waiting":
                progress.phase = "waiting"
                job.hardware_position = event.get("position")
                job.log.append(f"run {progress.run_id}: waiting for the hardware: {event['holder']}"
                               + (f" (place in line: {job.hardware_position})" if job.hardware_position else ""))
            elif kind == "progress":
                progress.done_by_rank[event["rank"]] = event["done"]
            elif kind == "error":
                job.log.append(f"rank {event.get('rank')}: {event.get('message')}")
            elif kind == "log":
                job.log.append(event["line"])
            elif kind == "run-end":
                progress.status = event["status"]
                progress.phase = ""
                progress.tokens_per_second = event.get("tokens_per_second")
                progress.error = event.get("error")
                tps = progress.tokens_per_second
                job.log.append(
                    f"run {progress.run_id} {progress.status}"
                    + (f": {tps:.1f} tokens/s" if tps else "")
                    + (f": {progress.error}" if progress.error else "")
                )


SERVER_PHASES = {"waiting": "waiting for the hardware", "starting": "starting the server",
                 "health": "waiting for the server's /health", "stopping": "stopping the server"}


def server_line(server: dict) -> str:
    """A server sweep's step in words: 'cell 1/2 · 1 GPU(s), tp 1 · constant load at 2.5 req/s · 12/20 requests'."""
    head = f"cell {server['cell'] + 1}/{server['cells']} · {server['gpus']} GPU(s), tp {server['tp_size']}"
    phase = server.get("phase")
    if phase != "load":
        return f"{head} · {server.get('holder') or SERVER_PHASES.get(phase, phase)}"
    rate = server.get("rate")
    at = f" at {rate:.3g} req/s" if rate is not None else ""
    return f"{head} · {server.get('profile') or ''} load{at} · {server.get('done')}/{server.get('total')} requests"
