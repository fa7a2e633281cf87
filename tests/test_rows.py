"""db.rows.RunRow: a stored run with its layout worked out once, older rows included,
and the store handing out RunRows wherever it reads runs."""

from __future__ import annotations

import json
import sqlite3

from rowkit import store_layout_run, store_run, sweep_with_runs

from db.migrations import MIGRATIONS
from db.rows import LAYOUT_KEYS, RunRow
from db.store import Store


def test_a_row_from_before_layouts_ran_tp_1_with_one_copy_per_gpu():
    row = RunRow({"id": 1, "num_gpus": 4})  # no num_nodes, tp_size or dp_size: stored before each existed
    assert {k: row[k] for k in LAYOUT_KEYS} == {"num_nodes": 1, "world_size": 4, "tp_size": 1, "dp_size": 4,
                                                "layout": "4 replicas"}


def test_a_tp_2_dp_2_row():
    row = RunRow({"num_gpus": 4, "num_nodes": 1, "tp_size": 2, "dp_size": 2})
    assert (row["world_size"], row["tp_size"], row["dp_size"], row["layout"]) == (4, 2, 2, "2 × tp 2")


def test_the_world_size_is_nodes_times_gpus_whatever_was_stored():
    failed = RunRow({"num_gpus": 2, "num_nodes": 3, "world_size": None, "tp_size": 2, "dp_size": None})
    assert (failed["world_size"], failed["dp_size"], failed["layout"]) == (6, 3, "3 × tp 2")


def test_one_gpu_tp_1_and_a_whole_world_as_one_group():
    assert RunRow({"num_gpus": 1})["layout"] == "1 GPU"
    assert RunRow({"num_gpus": 4, "tp_size": 4})["layout"] == "tp 4"


def test_a_row_whose_tp_does_not_divide_its_gpus_is_named_by_its_numbers():
    row = RunRow({"num_gpus": 3, "tp_size": 2})
    assert (row["layout"], row["dp_size"]) == ("3 GPU(s) at tp 2", 1)


def test_a_row_is_a_dict_and_its_copies_keep_the_layout():
    row = RunRow({"id": 7, "num_gpus": 2, "config": {"seed": 1}}, status="succeeded")
    assert isinstance(row, dict) and row["status"] == "succeeded" and row["config"] == {"seed": 1}
    assert {**row}["world_size"] == 2 and json.loads(json.dumps(row))["layout"] == "2 replicas"


def test_every_read_of_a_run_is_a_run_row(store):
    sweep_id, ids = sweep_with_runs(store)
    tp = store_layout_run(store, sweep_id, 4, 2, 100.0)
    reads = [store.get_run(ids[0]), *store.list_runs(), *store.get_sweep(sweep_id)["runs"],
             *store.list_runs(ids=[tp])]
    assert reads and all(isinstance(r, RunRow) and set(LAYOUT_KEYS) <= set(r) for r in reads)
    row = store.get_run(tp)
    assert (row["world_size"], row["tp_size"], row["dp_size"], row["layout"]) == (4, 2, 2, "2 × tp 2")


def test_a_failed_run_stores_no_world_size_but_reads_one_and_exports_as_stored(store):
    run_id = store_run(store, None, 2, None, status="failed")
    assert store.get_run(run_id)["world_size"] == 2
    _, (exported,) = store.export_rows(run_ids=[run_id])
    assert not isinstance(exported, RunRow) and exported["world_size"] is None and "layout" not in exported


def test_a_row_written_before_layouts_reads_with_its_layout(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in sorted(MIGRATIONS):
        if name < "010":
            if callable(sql):
                sql(conn)
            else:
                conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    conn.execute("INSERT INTO runs (id, created_at, status, model, mode, batch_size, max_new_tokens, num_gpus, "
                 "num_nodes, num_prompts, config) VALUES (3, 't', 'succeeded', 'tiny', 'batched', 1, 1, 2, 2, 1, '{}')")
    conn.close()
    row = Store(path).get_run(3)
    assert {k: row[k] for k in LAYOUT_KEYS} == {"num_nodes": 2, "world_size": 4, "tp_size": 1, "dp_size": 4,
                                                "layout": "4 replicas"}
