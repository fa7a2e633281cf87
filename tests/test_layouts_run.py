"""Real tensor-parallel layouts on CPU: gloo, real `accelerate launch` processes,
`tiny` in float32 with fixed output length.

The hybrid test is the one that would have caught transformers building its mesh
over the whole world: two data groups whose batches have different lengths.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from conftest import run_cli
from faultkit import EventLog, assert_no_leftovers

from db.store import Store
from runner.config import RunConfig
from runner.host.validate import prepare
from studio.sweeps.agreement import compare_outputs
from studio.sweeps.plan import plan_sweep
from studio.sweeps.run import run_one, run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SHORT = ["Hi.", "Yes?", "No.", "Go!"]
LONG = ["A much longer prompt that makes this data group's batches far wider than the other's.",
        "Another long prompt, so that the two groups never share a sequence length in any batch.",
        "The embedding's all-reduce sees a different tensor size in each group: exactly the case.",
        "If a collective still spanned the whole world, gloo would abort on these mismatched sizes."]


def test_a_layout_sweep_stores_each_layout_and_agrees_with_one_process(tmp_path):
    db = str(tmp_path / "s.db")
    done = run_cli("run", "--model", "tiny", "--gpus", "1,2", "--tp", "1,2", "--max-new-tokens", "8",
                   "--fixed-length", "--device", "cpu", "--json", "--db", db)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(done.stdout)
    layouts = [(r["world_size"], r["tp_size"], r["dp_size"]) for r in runs]
    assert layouts == [(1, 1, 1), (2, 1, 2), (2, 2, 1)]
    store = Store(db)
    try:
        for summary in runs:
            run = store.get_run(summary["id"])
            assert sorted(o["prompt_index"] for o in run["outputs"]) == list(range(100))  # each prompt once
            assert run["tokens"] == 800
        reference, replicas, sharded = (store.get_run(r["id"]) for r in runs)
        assert reference["agreement"] is None  # the reference itself
        for run in (replicas, sharded):
            assert run["agreement_reference"] == reference["id"]
            detail = run["agreement_detail"]
            print(f"layout tp {run['tp_size']}: {detail['identical']} of {detail['compared']} prompts identical")
            assert detail["compared"] == 100 and detail["identical"] >= 90
        assert 0 < sharded["comm_fraction"] < 1  # the profiler saw the tensor group's all-reduces
        assert replicas["comm_fraction"] is None
    finally:
        store.close()


def test_two_replicas_of_a_two_rank_group_with_prompts_of_different_lengths(store):
    prompts = SHORT + LONG  # data group 0 takes the short ones, group 1 the long ones
    base = RunConfig(prompts=prompts, device="cpu", max_new_tokens=6, fixed_length=True, batch_size=4)
    single = run_sweep(plan_sweep(base, [1]), store)
    hybrid = run_sweep(plan_sweep(base, {"gpus_per_node": [4], "tp_size": [2]}), store)
    assert [r.status for r in single.results + hybrid.results] == ["succeeded", "succeeded"], \
        hybrid.results[0].error
    run = store.get_run(hybrid.run_ids[0])
    assert (run["world_size"], run["tp_size"], run["dp_size"]) == (4, 2, 2)
    assert sorted(o["prompt_index"] for o in run["outputs"]) == list(range(8))
    # the leaders of the two groups (ranks 0 and 2) reported the outputs, each its own half
    assert {o["rank"] for o in run["outputs"] if o["prompt_index"] < 4} == {0}
    assert {o["rank"] for o in run["outputs"] if o["prompt_index"] >= 4} == {2}
    reference = store.get_run(single.run_ids[0])["outputs"]
    assert compare_outputs(reference, run["outputs"])["identical"] == 8
    assert run["tokens"] == 8 * 6


def test_sampling_makes_layouts_differ_and_the_first_differing_token_is_stored(store):
    base = RunConfig(prompts=SHORT + LONG, device="cpu", max_new_tokens=6, fixed_length=True, batch_size=2,
                     do_sample=True, temperature=1.5)
    outcome = run_sweep(plan_sweep(base, [1, 2]), store)
    assert outcome.status == "succeeded"
    run = store.get_run(outcome.run_ids[1])
    detail = run["agreement_detail"]
    # rank 1 samples with its own seed: its half of the prompts cannot be expected to match
    assert run["agreement"] == detail["identical"] / detail["compared"] < 1
    first = detail["differences"][0]
    reference = {o["prompt_index"]: o["token_ids"] for o in store.get_run(outcome.run_ids[0])["outputs"]}
    mine = {o["prompt_index"]: o["token_ids"] for o in run["outputs"]}
    index, position = first["prompt_index"], first["position"]
    assert reference[index][:position] == mine[index][:position]
    assert (reference[index][position], mine[index][position]) == (first["reference_token"], first["token"])


def test_a_killed_rank_of_a_tensor_group_fails_the_run_within_seconds(store, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "3")
    config = RunConfig(prompts=SHORT, device="cpu", max_new_tokens=4, batch_size=1, gpus_per_node=2, tp_size=2,
                       warmup=False, timeout_s=120)
    log, holder = EventLog(), {}
    run_id = store.create_run(config.to_dict(), dp_size=1)
    thread = threading.Thread(target=lambda: holder.update(result=run_one(
        prepare(config), store, run_id, on_event=log, run_dir=tmp_path / "run")), daemon=True)
    thread.start()
    log.wait_for(lambda e: e["event"] == "outputs" and e["rank"] == 0, 120, "the group's first batch")
    victim = log.rank_pids()[1]  # not the leader: it reports nothing, but the group needs it
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    thread.join(30)
    took = time.monotonic() - started
    assert not thread.is_alive() and took < 10, f"took {took:.1f} s"
    row = store.get_run(run_id)
    assert row["status"] == "failed" and "rank 1" in row["error"], row["error"]
    assert_no_leftovers([victim, *log.rank_pids().values()], timeout=5)


def test_an_error_inside_generate_on_one_rank_of_a_tensor_group_fails_the_run_within_seconds(store, tmp_path,
                                                                                              monkeypatch):
    # Rank 1 raises at its third forward (prefill and one decode step done): rank 0 is by then in that
    # step's all-reduce, which rank 1 never joins. Before the fix rank 1 went on to the run's gather
    # while rank 0 waited in the all-reduce, until the run's time limit (120 s here) ended both.
    monkeypatch.setenv("STUDIO_TEST_FAIL_FORWARD", "3")
    config = RunConfig(prompts=SHORT, device="cpu", max_new_tokens=4, batch_size=1, gpus_per_node=2, tp_size=2,
                       warmup=False, timeout_s=120)
    log, holder = EventLog(), {}
    run_id = store.create_run(config.to_dict(), dp_size=1)
    started = time.monotonic()
    thread = threading.Thread(target=lambda: holder.update(result=run_one(
        prepare(config), store, run_id, on_event=log, run_dir=tmp_path / "run")), daemon=True)
    thread.start()
    log.wait_for(lambda e: e["event"] == "phase" and e["phase"] == "generate" and e["rank"] == 1, 120,
                 "rank 1 to start generating")
    generating = time.monotonic()
    thread.join(150)
    ended = time.monotonic()
    print(f"tp-2 run with a failing rank: {ended - started:.1f} s in all, "
          f"{ended - generating:.1f} s after rank 1 started generating; error: {store.get_run(run_id)['error']}")
    assert not thread.is_alive(), "the run did not end within 150 s"
    row = store.get_run(run_id)
    assert row["status"] == "failed"
    assert "rank 1" in row["error"] and "injected failure at forward 3" in row["error"], row["error"]
    assert ended - generating < 20 and ended - started < 60, f"took {ended - started:.1f} s"
    assert_no_leftovers([*log.rank_pids().values()], timeout=5)
