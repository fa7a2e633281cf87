"""What a shared launch leaves: its phases (once) against each run's own, and its
`launches` row (pure and store-level, no launch)."""

from __future__ import annotations

import pytest
from faultkit import fault_config

from db.store import Store
from runner.host import cell_results
from runner.phases import describe_launch
from runner.result import RunResult


def test_the_launch_phases_are_the_slowest_ranks_and_a_runs_are_its_own():
    events = [
        {"event": "started", "rank": 0, "time": 101.0}, {"event": "started", "rank": 1, "time": 100.5},
        {"event": "launch-phases", "rank": 0, "imports": [101.0, 103.0], "load": [103.0, 106.0]},
        {"event": "launch-phases", "rank": 1, "imports": [100.5, 103.5], "load": [103.5, 105.0]},
    ]
    phases = cell_results.launch_phases(100.0, 120.0, events)
    assert phases == {"launch": 0.5, "imports": 3.0, "load": 3.0, "total": 20.0}
    assert cell_results.launch_spans(events)[1] == [{"phase": "imports", "start": 100.5, "end": 103.5},
                                                    {"phase": "load", "start": 103.5, "end": 105.0}]
    data = {"seconds": 1.5, "wall": [110.0, 112.5], "ranks": [
        {"timeline": [{"phase": "warmup", "start": 110.0, "end": 110.2},
                      {"phase": "generate", "start": 110.3, "end": 111.0}]},
        {"timeline": [{"phase": "warmup", "start": 110.0, "end": 110.4}]}]}
    assert cell_results.run_phases(data) == pytest.approx({"warmup": 0.4, "generate": 1.5, "total": 2.5})


def test_partial_outputs_are_the_runs_own():
    events = [{"event": "outputs", "cell": 0, "outputs": [{"prompt_index": 1}]},
              {"event": "outputs", "cell": 1, "outputs": [{"prompt_index": 3}, {"prompt_index": 2}]}]
    assert cell_results.partial_outputs(events, 1) == [{"prompt_index": 2}, {"prompt_index": 3}]


def test_a_launch_row_names_its_runs_and_ends_with_a_dead_server(db_path):
    store = Store(db_path)
    config = fault_config().to_dict()
    sweep = store.create_sweep({"model": "tiny"}, [1, 2], 1, origin="server")
    ids = [store.create_run(config, sweep_id=sweep) for _ in range(3)]
    launch = store.create_launch(sweep, ids, 2)
    store.mark_running(ids[0], [])
    again = store.get_launch(launch)
    assert again["run_ids"] == ids and again["status"] == "running" and again["world_size"] == 2
    assert store.get_run(ids[1])["launch"]["id"] == launch
    store.finish_run(ids[0], RunResult(status="succeeded", config=config, world_size=1, tokens=4, seconds=1.0,
                                       tokens_per_second=4.0))
    store.mark_running(ids[1], [])
    # a restart: the run under way ends interrupted, and so does its launch
    assert store.mark_stale_interrupted(resume_sweeps=[sweep]) == [ids[1]]
    assert store.get_launch(launch)["status"] == "interrupted"
    store.finish_launch(launch, "failed", {"load": 2.0}, "rank 1 died")
    assert "load 2.0 s, paid once for all its runs" in describe_launch(store.get_run(ids[0])["launch"])
    assert describe_launch(None) == ""
