"""Findings of a black-box test of a running studio (issue 16), each pinned
down without a server: ids and booleans that bend, server paths on the way out,
ids that came back after a delete, a reference sweep that never finished, and
the smaller ones (a deleted run still listed, a resumed sweep's earlier runs
missing, a CSV with a byte-order mark refused)."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3

import pytest
from rowkit import store_run, sweep_with_runs

from db.migrations import MIGRATIONS
from db.store import Store
from runner.config import REDACT_ENV, ConfigError
from runner.host.prompts import parse_prompts
from runner.result import RunResult
from studio.sweeps.reference import ensure_reference_sweeps
from studio.web import history, params, views

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


@pytest.mark.parametrize("value", [61.9, 1.5, True, False, math.nan, math.inf, -math.inf, 2**64, -1, 0, "7a",
                                   "1.5", [3], {"id": 3}])

def test_an_id_is_a_whole_number_or_refused_with_its_name(value):
    with pytest.raises(ConfigError, match="^run_id: "):
        params.record_id("run_id", value)


@pytest.mark.parametrize("value, expected", [(61, 61), (61.0, 61), ("61", 61), (" 7 ", 7)])
def test_whole_ids_pass(value, expected):
    assert params.record_id("run_id", value) == expected


def test_missing_and_wrongly_typed_arguments_are_named():
    with pytest.raises(ConfigError, match="^run_id: is missing"):
        params.record_id("run_id", None)
    with pytest.raises(ConfigError, match="^fixed_length: must be true or false"):
        params.boolean("fixed_length", "false")
    with pytest.raises(ConfigError, match="^fixed_length: must be true or false"):
        params.boolean("fixed_length", "no")
    with pytest.raises(ConfigError, match="^prompts: must be text"):
        params.text("prompts", 12)
    assert params.boolean("fixed_length", False) is False


def test_a_fractional_id_deletes_nothing(store):
    _, (first, second) = sweep_with_runs(store)
    with pytest.raises(ConfigError, match="run_ids: must be a whole number, got 61.9"):
        history.delete_selected(store, run_ids=[61.9])
    with pytest.raises(ConfigError, match="run_ids: must be a whole number"):
        history.delete_selected(store, run_ids=[float(second) + 0.5])
    assert {r["id"] for r in store.list_runs()} == {first, second}
    with pytest.raises(ConfigError, match="run_id: must be a whole number"):
        history.get_run(store, 1.5)


def test_deleted_ids_never_come_back(store):
    sweep_id, run_ids = sweep_with_runs(store)
    history.delete_selected(store, sweep_ids=[sweep_id])
    again, again_runs = sweep_with_runs(store)
    assert again > sweep_id and min(again_runs) > max(run_ids)


def test_the_id_migration_keeps_every_row_of_an_existing_database(tmp_path):
    path = tmp_path / "before.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    migrate_until(conn, "007")  # the schema as it was, rows written in plain SQL
    conn.execute("INSERT INTO sweeps (id, created_at, status, external) VALUES (1, 't', 'succeeded', 0), "
                 "(2, 't', 'succeeded', 0)")
    conn.execute("INSERT INTO runs (id, sweep_id, created_at, status, model, mode, batch_size, max_new_tokens, "
                 "num_gpus, num_prompts, config, error) VALUES (5, 2, 't', 'failed', 'tiny', 'batched', 1, 1, 1, 1, "
                 "'{}', 'kept')")
    conn.execute("INSERT INTO outputs (run_id, prompt_index, rank, prompt, output, tokens) "
                 "VALUES (5, 0, 0, 'p', 'o', 1)")
    conn.close()
    store = Store(path)
    run = store.get_run(5)
    assert run["error"] == "kept" and run["sweep_id"] == 2 and run["outputs"][0]["output"] == "o"
    assert [s["id"] for s in store.list_sweeps()] == [2, 1]
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('view', 'trigger', 'index')")}
    assert {"sweep_summary", "run_summary", "external_run_no_delete", "runs_sweep", "runs_created"} <= names
    store.delete_runs([5])  # the newest run goes; the next one does not take its id
    assert store.create_run({"model": "tiny", "mode": "batched", "batch_size": 1, "max_new_tokens": 1,
                             "gpus_per_node": 1, "prompts": ["a"]}) == 6
    # the reference triggers still guard published figures
    ids = ensure_reference_sweeps(store)
    with pytest.raises(ValueError, match="read-only"):
        store.delete_sweep(ids["batched"])


def migrate_until(conn: sqlite3.Connection, before: str) -> None:
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in sorted(MIGRATIONS, key=lambda m: m[0]):
        if name < before:
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))


def test_server_paths_never_leave_by_any_way(store, monkeypatch):
    from runner.environment import PROJECT_ROOT

    leak = f'File "{PROJECT_ROOT}/runner/worker.py", line 12, in load\nOSError: no weights'
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1)
    run_id = store_run(store, sweep_id, 1, None, status="failed", error=leak, stderr=leak)
    monkeypatch.setenv(REDACT_ENV, "1")  # as `studio serve` sets it
    status = {"sweep_id": sweep_id, "state": "failed", "runs": [{"run_id": run_id, "status": "failed",
                                                                  "error": leak}], "log": [leak]}
    ways_out = [
        json.dumps([history.run_public(r) for r in store.list_runs()]),
        json.dumps(views.sweep_snapshot(status, store.get_sweep(sweep_id))),
        history.export_text(store, history.selected_runs(store, run_ids=[run_id]), "csv"),
        history.export_text(store, history.selected_runs(store, run_ids=[run_id]), "json"),
        json.dumps(history.get_run(store, run_id)),
        views.log_html(views.sweep_snapshot(status, store.get_sweep(sweep_id))),
        views.progress_html(views.sweep_snapshot(status, store.get_sweep(sweep_id))),
    ]
    for text in ways_out:
        assert str(PROJECT_ROOT) not in text and "<studio>/runner/worker.py" in text.replace("&lt;", "<").replace(
            "&gt;", ">").replace("\\u003c", "<").replace("\\u003e", ">")


def test_a_reference_sweep_is_finished(store):
    ids = ensure_reference_sweeps(store)
    snapshot = views.sweep_snapshot(None, store.get_sweep(ids["batched"]))
    assert snapshot["state"] == "external" and snapshot["finished"] is True


def test_a_deleted_run_leaves_the_live_status(store):
    sweep_id, (first, second) = sweep_with_runs(store)
    live = {"sweep_id": sweep_id, "state": "running", "runs": [
        {"run_id": first, "status": "succeeded"}, {"run_id": second, "status": "succeeded"}], "log": []}
    history.delete_selected(store, run_ids=[first])
    snapshot = views.sweep_snapshot(live, store.get_sweep(sweep_id))
    assert [r["run_id"] for r in snapshot["runs"]] == [second]


def test_a_resumed_sweep_lists_its_earlier_runs_too(store):
    sweep_id, (first, second) = sweep_with_runs(store)
    third = store.create_run({"model": "tiny", "mode": "batched", "batch_size": 1, "max_new_tokens": 4,
                              "gpus_per_node": 1, "prompts": ["a"]}, sweep_id=sweep_id, repeat_index=1)
    live = {"sweep_id": sweep_id, "state": "running", "runs": [{"run_id": third, "status": "running"}], "log": []}
    snapshot = views.sweep_snapshot(live, store.get_sweep(sweep_id))
    assert [r["run_id"] for r in snapshot["runs"]] == [first, second, third]
    assert [r["status"] for r in snapshot["runs"]] == ["succeeded", "succeeded", "running"]


def test_a_csv_with_a_byte_order_mark_is_read():
    text = "\ufeffprompt,source\nCall me Ishmael.,moby\n"
    assert parse_prompts(text, "csv") == ["Call me Ishmael."]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["prompt"], ["The King is dead."]])
    assert parse_prompts("\ufeff" + buffer.getvalue(), "csv") == ["The King is dead."]
    assert parse_prompts("\ufeffone\ntwo\n", "txt") == ["one", "two"]


def test_a_failed_result_reports_no_throughput(store):
    run_id = store.create_run({"model": "tiny", "mode": "batched", "batch_size": 1, "max_new_tokens": 1,
                               "gpus_per_node": 1, "prompts": ["a"]})
    store.finish_run(run_id, RunResult(status="failed", config={}, tokens_per_second=99.0, seconds=1.0))
    assert store.get_run(run_id)["tokens_per_second"] is None
