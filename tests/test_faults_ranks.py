"""Real faults during a real 2-process run: a rank killed mid-run, the launcher
SIGKILLed, Stop during model load, a run past its timeout.

Each test is bounded in time and asserts the run's final state, that no process
of the run remains, that the database passes integrity_check, and that a run
stored before the fault is still there. The worker's test hooks
(STUDIO_TEST_PAUSE_LOAD / _BATCH) hold the ranks long enough to be hit.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from faultkit import EventLog, assert_database_sound, assert_no_leftovers, fault_config, store_earlier_run

from db.store import Store
from runner.host.validate import prepare
from studio.sweeps.run import run_one

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # real accelerate launches


class RunInThread:
    """run_one on a thread, as the supervisor does, with its events collected."""

    def __init__(self, store: Store, config, tmp_path, cancel: threading.Event | None = None):
        self.store, self.log, self.cancel = store, EventLog(), cancel or threading.Event()
        self.run_id = store.create_run(config.to_dict())
        self.result = None
        prepared = prepare(config)
        self.thread = threading.Thread(
            target=lambda: setattr(self, "result", run_one(prepared, store, self.run_id, on_event=self.log,
                                                           cancel=self.cancel, run_dir=tmp_path / "run")),
            daemon=True,
        )
        self.started_at = time.monotonic()
        self.thread.start()

    def finish(self, timeout: float) -> float:
        """Wait for the run to end; seconds it took from now."""
        t = time.monotonic()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not end within {timeout} s"
        return time.monotonic() - t

    def all_pids(self) -> list[int]:
        return [*(self.store.get_run(self.run_id)["pids"] or []), *self.log.rank_pids().values()]


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


def test_a_rank_killed_mid_run_fails_the_run_fast_and_keeps_partial_outputs(store, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "3")  # each rank: batch, 3 s pause, batch, 3 s pause
    earlier = store_earlier_run(store)
    run = RunInThread(store, fault_config(gpus_per_node=2), tmp_path)
    # both ranks have finished one batch (and sent its outputs): now kill rank 1
    run.log.wait_for(lambda e: e["event"] == "outputs" and e["rank"] == 1, 90, "rank 1's first batch")
    run.log.wait_for(lambda e: e["event"] == "outputs" and e["rank"] == 0, 30, "rank 0's first batch")
    victim = run.log.rank_pids()[1]
    os.kill(victim, signal.SIGKILL)
    took = run.finish(timeout=20)

    assert took < 10, f"a dead rank took {took:.1f} s to fail the run"
    row = store.get_run(run.run_id)
    assert row["status"] == "failed"
    assert "rank 1" in row["error"] and str(victim) in row["error"], row["error"]
    assert "SIGKILL" in row["error"] or "died" in row["error"]
    assert row["stderr_tail"]
    assert row["partial"] == 1
    assert 2 <= len(row["outputs"]) < 4  # the batches finished before the kill, not more
    assert {o["rank"] for o in row["outputs"]} == {0, 1}
    assert row["tokens_per_second"] is None and row["seconds"] is None and row["tokens"] is None
    assert_no_leftovers(run.all_pids())
    assert_database_sound(db_path, [earlier])


def test_sigkill_on_the_launcher_leaves_no_rank_behind(store, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "3")
    earlier = store_earlier_run(store)
    run = RunInThread(store, fault_config(gpus_per_node=2), tmp_path)
    run.log.wait_for(lambda e: e["event"] == "progress", 90, "generation to start")
    ranks = run.log.rank_pids()
    assert len(ranks) == 2
    launcher = store.get_run(run.run_id)["pids"][0]
    assert launcher not in ranks.values()
    os.kill(launcher, signal.SIGKILL)
    took = run.finish(timeout=20)

    assert took < 10
    row = store.get_run(run.run_id)
    assert row["status"] == "failed"
    assert "SIGKILL" in row["error"], row["error"]
    assert row["tokens_per_second"] is None
    assert_no_leftovers([launcher, *ranks.values()], timeout=5)
    assert_database_sound(db_path, [earlier])


def test_stop_during_model_load_cancels_within_seconds(store, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_LOAD", "60")  # ranks sit in the load phase
    earlier = store_earlier_run(store)
    run = RunInThread(store, fault_config(gpus_per_node=2), tmp_path)
    for rank in (0, 1):
        run.log.wait_for(lambda e, r=rank: e["event"] == "phase" and e["phase"] == "load" and e["rank"] == r,
                         90, f"rank {rank} to load the model")
    pids = run.all_pids()
    run.cancel.set()
    took = run.finish(timeout=20)

    assert took < 8, f"Stop took {took:.1f} s"
    row = store.get_run(run.run_id)
    assert row["status"] == "cancelled"
    assert row["outputs"] == [] and row["tokens_per_second"] is None
    assert_no_leftovers(pids, timeout=5)
    assert_database_sound(db_path, [earlier])


def test_a_run_past_its_timeout_is_stopped_and_failed(store, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_LOAD", "60")
    earlier = store_earlier_run(store)
    run = RunInThread(store, fault_config(gpus_per_node=1, timeout_s=3), tmp_path)
    run.finish(timeout=30)
    assert time.monotonic() - run.started_at < 20
    row = store.get_run(run.run_id)
    assert row["status"] == "failed"
    assert "timed out after 3 s" in row["error"]
    assert row["tokens_per_second"] is None
    assert_no_leftovers(run.all_pids(), timeout=5)
    assert_database_sound(db_path, [earlier])
