"""A server that died with sweeps half done starts again: the runs it had started stay
interrupted, the runs of its own sweeps that never started are run, and nothing a
CLI left behind is ever picked up."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest
from faultkit import assert_database_sound, fault_config, store_earlier_run, wait_until_final

from db.store import Store
from runner.processes import owner_env
from studio.sweeps.plan import plan_sweep, resume_plan
from studio.sweeps.run import sweep_status
from studio.sweeps.supervisor import Supervisor

pytestmark = pytest.mark.timeout(180)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _left_by_a_dead_server(store: Store, *, origin: str, config: dict, runs: int) -> tuple[int, list[int]]:
    """A sweep as a killed program leaves it: the first run running, the rest queued."""
    sweep = store.create_sweep({"model": config["model"]}, [config["gpus_per_node"]], runs, origin=origin)
    ids = [store.create_run(config, sweep_id=sweep, repeat_index=r) for r in range(runs)]
    store.mark_running(ids[0], [_dead_pid()])
    return sweep, ids




@pytest.mark.slow  # live servers and real launches
def test_restart_runs_what_its_own_sweep_left_queued_and_nothing_of_a_cli(db_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    config = fault_config(gpus_per_node=1).to_dict()
    ours, (under_way, queued) = _left_by_a_dead_server(store, origin="server", config=config, runs=2)
    cli_sweep, (cli_under_way, cli_queued) = _left_by_a_dead_server(store, origin="cli", config=config, runs=2)

    supervisor = Supervisor(db_path)
    try:
        assert supervisor.resumed_at_start == [ours]
        assert sorted(supervisor.interrupted_at_start) == [under_way, cli_under_way, cli_queued]
        status = wait_until_final(supervisor, ours)
        assert any("resumed after the studio server restarted" in line for line in status["log"])
    finally:
        supervisor.shutdown()

    runs = {r["id"]: r for r in store.list_runs(limit=100)}
    assert runs[queued]["status"] == "succeeded" and runs[queued]["tokens"] > 0
    assert len(store.get_run(queued)["outputs"]) == len(config["prompts"])
    assert runs[under_way]["status"] == "interrupted" and runs[under_way]["tokens_per_second"] is None
    assert runs[cli_under_way]["status"] == runs[cli_queued]["status"] == "interrupted"
    # one of its runs never finished, so the sweep as a whole says so
    assert store.get_sweep(ours)["status"] == "interrupted"
    assert store.get_sweep(cli_sweep)["status"] == "interrupted"
    assert_database_sound(db_path, [earlier])


@pytest.mark.slow
def test_the_queued_sweep_of_another_live_server_is_left_alone(db_path):
    store = Store(db_path)
    config = fault_config(gpus_per_node=1).to_dict()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = owner_env(psutil.Process(other.pid))
        sweep = store.create_sweep({"model": "tiny"}, [1], 1, origin="server", owner=owner)
        queued = store.create_run(config, sweep_id=sweep)
        supervisor = Supervisor(db_path)
        try:
            assert supervisor.resumed_at_start == [] and supervisor.interrupted_at_start == []
            assert not supervisor.busy()
        finally:
            supervisor.shutdown()
        assert store.get_run(queued)["status"] == "queued" and store.get_sweep(sweep)["status"] == "running"
    finally:
        other.kill()
        other.wait()
    # once that server is gone, its queued run is this server's to run
    supervisor = Supervisor(db_path)
    try:
        assert supervisor.resumed_at_start == [sweep]
        wait_until_final(supervisor, sweep)
    finally:
        supervisor.shutdown()
    assert store.get_run(queued)["status"] == "succeeded"


def test_no_resume_leaves_every_queued_run_interrupted(db_path):
    store = Store(db_path)
    config = fault_config(gpus_per_node=1).to_dict()
    ours, ids = _left_by_a_dead_server(store, origin="server", config=config, runs=2)
    supervisor = Supervisor(db_path, resume=False)
    try:
        assert supervisor.resumed_at_start == []
        assert sorted(supervisor.interrupted_at_start) == ids
        assert supervisor.status(ours) is None and not supervisor.busy()
    finally:
        supervisor.shutdown()
    assert {r["status"] for r in store.list_runs(sweep_id=ours)} == {"interrupted"}


def test_a_sweep_whose_model_is_gone_is_not_resumed_and_says_why(db_path, tmp_path):
    store = Store(db_path)
    config = fault_config(gpus_per_node=1, model=str(tmp_path / "deleted-model")).to_dict()
    ours, (under_way, queued) = _left_by_a_dead_server(store, origin="server", config=config, runs=2)
    supervisor = Supervisor(db_path)
    try:
        assert supervisor.resumed_at_start == [] and not supervisor.busy()
    finally:
        supervisor.shutdown()
    row = store.get_run(queued)
    assert row["status"] == "interrupted"
    assert "not resumed" in row["error"] and "no config.json" in row["error"]
    assert store.get_sweep(ours)["status"] == "interrupted"


def test_resume_plan_keeps_the_order_and_repeats_of_what_was_left(db_path):
    store = Store(db_path)
    plan = plan_sweep(fault_config(gpus_per_node=1), [1, 2], repeats=2)
    sweep = store.create_sweep(plan.base.settings(), plan.gpu_counts, plan.repeats, origin="server")
    ids = [store.create_run(plan.prepared[c].config.to_dict(), sweep_id=sweep, repeat_index=r) for c, r in plan.order]
    store.mark_running(ids[0], [])
    store.mark_stale_interrupted(resume_sweeps=[sweep])  # the first run (1 process, repeat 0) was under way

    resumed, run_ids = resume_plan(store, sweep)
    assert run_ids == ids[1:]
    assert resumed.gpu_counts == [1, 2]  # the sweep's own axis
    assert [(resumed.prepared[c].config.gpus_per_node, r) for c, r in resumed.order] == [(2, 0), (1, 1), (2, 1)]
    assert resumed.ended_before == ("interrupted",)
    assert [p.config.prompts for p in resumed.prepared] == [plan.base.prompts] * 2


def test_a_sweeps_status_is_a_stop_first_then_the_worst_of_its_runs():
    assert sweep_status(["succeeded", "succeeded"]) == "succeeded"
    assert sweep_status(["succeeded", "interrupted"]) == "interrupted"
    assert sweep_status(["interrupted", "failed", "succeeded"]) == "failed"
    assert sweep_status(["failed", "cancelled"]) == "cancelled"
