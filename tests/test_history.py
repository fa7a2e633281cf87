"""The History tab's functions against a real store: filters, choices, selection,
export and delete."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rowkit import store_run, sweep_with_runs

from runner.config import ConfigError, RunConfig
from studio.web import history

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


def test_history_filters_by_settings_and_dates(store):
    sweep_id, ids = sweep_with_runs(store)
    failed = store_run(store, None, 1, None, status="failed")
    assert [r["id"] for r in history.list_history(store)] == [failed, *reversed(ids)]
    assert [r["id"] for r in history.list_history(store, status="failed")] == [failed]
    assert len(history.list_history(store, model="any", batch_size="16")) == 3
    assert history.list_history(store, batch_size="32") == []
    today = store.get_run(failed)["created_at"][:10]
    assert len(history.list_history(store, since=today, until=today)) == 3
    assert history.list_history(store, until="2000-01-01") == []


@pytest.mark.parametrize("since, until, field", [("yesterday", "", "since"), ("2025-02-01", "2025-01-01", "until")])
def test_bad_dates_are_refused(store, since, until, field):
    with pytest.raises(ConfigError) as caught:
        history.list_history(store, since=since, until=until)
    assert caught.value.field == field


def test_history_table_and_choices_show_the_runs(store):
    sweep_id, ids = sweep_with_runs(store)
    runs = history.list_history(store)
    table = history.history_table(runs)
    assert list(table["run"]) == list(reversed(ids)) and list(table["GPUs"]) == [2, 1]
    assert history.sweep_choices(store)[0][1] == sweep_id
    assert "“demo”" in history.sweep_choices(store)[0][0]
    assert history.filter_choices(store)["status"] == ["any", "succeeded"]


def test_a_selection_is_whole_sweeps_plus_single_runs_each_once(store):
    sweep_id, ids = sweep_with_runs(store)
    other = store_run(store, None, 1, 90.0)
    chosen = history.selected_runs(store, [sweep_id], [ids[0], other])
    assert [r["id"] for r in chosen] == [*ids, other]
    with pytest.raises(ConfigError):
        history.selected_runs(store, [999], [])


def test_export_csv_has_a_row_per_run_and_json_everything(store):
    sweep_id, ids = sweep_with_runs(store)
    runs = history.selected_runs(store, [sweep_id])
    rows = list(csv.DictReader(io.StringIO(history.export_text(store, runs, "csv"))))
    assert [int(r["id"]) for r in rows] == ids
    assert [float(r["tokens_per_second"]) for r in rows] == [100.0, 150.0]
    full = json.loads(history.export_text(store, runs, "json"))
    assert [r["id"] for r in full] == ids and full[0]["outputs"][0]["output"] == "xy"
    with pytest.raises(ConfigError):
        history.export_text(store, runs, "xlsx")


def test_delete_removes_the_selection_and_refuses_running_runs(store):
    sweep_id, ids = sweep_with_runs(store)
    keep = store_run(store, None, 1, 90.0)
    running = store.create_run(RunConfig(prompts=["a"]).to_dict())
    store.mark_running(running)
    with pytest.raises(ConfigError, match="still queued or running"):
        history.delete_selected(store, [], [running, keep])
    assert store.get_run(keep) is not None  # nothing lost by the refused delete
    assert history.delete_selected(store, [sweep_id], []) == "Deleted 2 run(s) and 1 sweep(s)."
    assert store.get_sweep(sweep_id) is None and all(store.get_run(i) is None for i in ids)
    with pytest.raises(ConfigError, match="nothing selected"):
        history.delete_selected(store, [], [])


def test_the_csv_carries_the_latency_percentiles_the_run_table_shows(store):
    sweep_id, ids = sweep_with_runs(store)
    runs = [{**r, "ttft_ms_p50": 12.5, "tpot_ms_p99": 3.25} for r in history.selected_runs(store, [sweep_id])]
    rows = list(csv.DictReader(io.StringIO(history.export_text(store, runs, "csv"))))
    assert {"ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "tpot_ms_p50", "latency_ms_p99"} <= set(rows[0])
    assert [(r["ttft_ms_p50"], r["tpot_ms_p99"]) for r in rows] == [("12.5", "3.25")] * 2
