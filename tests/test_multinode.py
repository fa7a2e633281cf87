"""A real two-node job on one machine: two `studio run` commands, one per node,
meeting over loopback (2 nodes x 1 CPU process, gloo). Node 0 stores the one run;
node 1 only lends its process and stores nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT, SHORT_PROMPTS, run_cli

pytestmark = pytest.mark.slow


def start_node(rank: int, port: int, db, prompts_file) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "studio", "run", "--prompts", str(prompts_file), "--max-new-tokens", "8",
         "--nodes", "2", "--gpus-per-node", "1", "--node-rank", str(rank), "--main-address", "127.0.0.1",
         "--main-port", str(port), "--timeout", "240", "--db", str(db), "--json"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_nodes_over_loopback_store_one_run_with_both_ranks(tmp_path, free_port):
    prompts = SHORT_PROMPTS[:4]
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n")
    main_db, other_db = tmp_path / "node0.db", tmp_path / "node1.db"

    nodes = [start_node(rank, free_port, db, prompts_file) for rank, db in ((0, main_db), (1, other_db))]
    try:
        finished = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    (out0, err0), (out1, err1) = finished
    assert nodes[0].returncode == 0, err0[-3000:]
    assert nodes[1].returncode == 0, err1[-3000:]

    # node 1: a clear receipt, and no database of its own
    receipt = json.loads(out1)
    assert receipt == {"node_rank": 1, "num_nodes": 2, "stored": False, "main_address": "127.0.0.1", "runs": 1,
                       "status": "succeeded", "errors": []}
    assert not other_db.exists()

    # node 0: exactly one run, spanning both nodes
    [summary] = json.loads(out0)
    assert summary["status"] == "succeeded"
    assert (summary["num_gpus"], summary["num_nodes"], summary["world_size"]) == (1, 2, 2)
    conn = sqlite3.connect(main_db)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    ranks = conn.execute("SELECT rank, node, num_prompts, tokens FROM ranks ORDER BY rank").fetchall()
    assert [(r[0], r[1]) for r in ranks] == [(0, 0), (1, 1)]
    assert all(r[2] == 2 and r[3] > 0 for r in ranks)
    outputs = conn.execute("SELECT prompt_index, rank, prompt FROM outputs ORDER BY prompt_index").fetchall()
    assert [o[0] for o in outputs] == [0, 1, 2, 3]
    assert {o[1] for o in outputs} == {0, 1}
    assert [o[2] for o in outputs] == prompts
    tokens = conn.execute("SELECT tokens FROM runs").fetchone()[0]
    assert tokens == sum(r[3] for r in ranks)
    environment = json.loads(conn.execute("SELECT environment FROM runs").fetchone()[0])
    assert len(environment["nodes"]) == 2  # each node's fingerprint


def test_a_node_rank_outside_the_job_is_refused_before_launch(tmp_path):
    db = tmp_path / "studio.db"
    result = run_cli("run", "--nodes", "2", "--node-rank", "2", "--main-port", "29500", "--db", str(db), timeout=60)
    assert result.returncode == 2
    assert "node_rank" in result.stderr and "at most 1" in result.stderr
    result = run_cli("run", "--nodes", "2", "--node-rank", "1", "--db", str(db), timeout=60)
    assert result.returncode == 2
    assert "--main-port" in result.stderr
    result = run_cli("run", "--mode", "auto", "--nodes", "2", "--node-rank", "0", "--main-port", "29500",
                     "--db", str(db), timeout=60)
    assert result.returncode == 2
    assert "--memory-budget-gb" in result.stderr  # else each node could plan different batches
    assert not db.exists()


def test_a_node_whose_main_node_never_comes_says_so_and_stores_nothing(tmp_path, free_port):
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(SHORT_PROMPTS[:2]) + "\n")
    db = tmp_path / "node1.db"
    result = run_cli("run", "--prompts", str(prompts_file), "--device", "cpu", "--max-new-tokens", "4", "--nodes", "2",
                     "--gpus-per-node", "1", "--node-rank", "1", "--main-port", str(free_port), "--timeout", "15",
                     "--db", str(db), timeout=120)
    assert result.returncode == 1
    assert "node 1 of 2: 0 of 1 run(s) finished on this node; nothing stored here" in result.stdout
    assert f"never met at 127.0.0.1:{free_port}: start node 0 with the same" in result.stdout
    assert not db.exists()


def test_only_node_0_creates_run_rows(db_path, prompts):
    from db.store import Store
    from runner.config import ConfigError, RunConfig
    from studio.sweeps.plan import plan_sweep
    from studio.sweeps.run import create_rows

    plan = plan_sweep(RunConfig(prompts=prompts, num_nodes=2, node_rank=1, main_port=29500), [1])
    store = Store(db_path)
    with pytest.raises(ConfigError, match="node 1 stores nothing"):
        create_rows(plan, store)
    assert store.list_runs() == [] and store.list_sweeps() == []
