"""Layouts where GPU counts are shown: the results and History tables, a run's detail,
the export, the live snapshot and the Analysis tab, from a layout sweep in a real store."""

from __future__ import annotations

import csv
import io

from rowkit import layout_sweep

from db.store import Store
from studio.web import history, views
from studio.web.analysis_tab import analyse

FIRST = {"prompt_index": 1, "position": 3, "reference_token": 11, "token": 12}
BELOW = {3: (0.5, {"compared": 2, "identical": 1, "differences": [FIRST]})}


def test_results_table_has_layout_and_agreement_beside_the_gpus(db_path):
    store = Store(db_path)
    sweep_id, ids = layout_sweep(store, below=BELOW)
    table = views.results_table(store.get_sweep(sweep_id)["runs"])
    assert list(table.columns[:3]) == ["run", "GPUs", "layout"] and table.columns[-1] == "agreement"
    rows = {r["run"]: r for r in table.to_dict("records")}
    assert [rows[i]["layout"] for i in ids] == ["2 replicas", "tp 2", "4 replicas", "2 × tp 2", "tp 4"]
    assert [rows[i]["agreement"] for i in ids] == ["reference", "100 %", "100 %", "50 % ⚠", "100 %"]
    assert set(table["setting"]) == {"–"}  # the layout column says what the setting would repeat
    # speedup is within a layout: tp 2 on 4 GPUs over tp 2 on 2
    assert rows[ids[3]]["speedup"] == round(230 / 120, 2)


def test_history_shows_layout_and_agreement_and_the_export_carries_tp_and_dp(db_path):
    store = Store(db_path)
    _, ids = layout_sweep(store)
    table = history.history_table(history.list_history(store))
    assert table.columns.get_loc("layout") == table.columns.get_loc("GPUs") + 1
    assert dict(zip(table["run"], table["layout"]))[ids[3]] == "2 × tp 2"
    assert dict(zip(table["run"], table["agreement"]))[ids[0]] == "reference"
    rows = list(csv.DictReader(io.StringIO(history.export_text(store, store.list_runs(), "csv"))))
    by_id = {int(r["id"]): r for r in rows}
    assert (by_id[ids[3]]["tp_size"], by_id[ids[3]]["dp_size"], by_id[ids[3]]["comm_fraction"]) == ("2", "2", "0.2")
    assert by_id[ids[1]]["agreement"] == "1.0" and by_id[ids[1]]["agreement_reference"] == str(ids[0])


def test_run_detail_shows_the_layout_and_the_first_differing_tokens(db_path):
    store = Store(db_path)
    _, ids = layout_sweep(store, below=BELOW)
    run = history.get_run(store, ids[3])
    assert run["agreement_detail"]["differences"] == [FIRST]  # decoded for the API, not JSON text
    _, settings, results, _ = views.run_summary_parts(run)
    assert "| layout | 2 × tp 2 (tp 2, dp 2) |" in settings
    assert f"| agreement with the reference (greedy tokens) | 50 % ⚠ (against run {ids[0]}) |" in results
    assert "| first difference | prompt 1: first differs at token 3 (reference 11, this run 12) |" in results
    assert "| share of a decode step in all-reduce | 20.0 % |" in results
    reference = views.run_summary_parts(history.get_run(store, ids[0]))[2]
    assert "agreement" not in reference and "all-reduce" not in reference  # tp 1, the reference itself


def test_an_older_row_without_dp_gets_it_from_the_world_size(db_path):
    store = Store(db_path)
    _, ids = layout_sweep(store)
    store.conn.execute("UPDATE runs SET dp_size = NULL WHERE id = ?", (ids[3],))
    assert history.get_run(store, ids[3])["dp_size"] == 2


def test_the_live_snapshot_names_each_runs_layout(db_path):
    store = Store(db_path)
    sweep_id, ids = layout_sweep(store)
    snapshot = views.sweep_snapshot(None, store.get_sweep(sweep_id))
    assert [(r["tp_size"], r["layout"]) for r in snapshot["runs"]][3] == (2, "2 × tp 2")
    progress = views.progress_html(snapshot)
    assert "4 processes as 2 × tp 2 · repeat" in progress and "4 processes as 4 replicas · repeat" in progress


def test_the_analysis_tab_shows_the_layout_chart_and_table_for_a_layout_sweep(db_path):
    store = Store(db_path)
    sweep_id, _ = layout_sweep(store)
    out = analyse(store, str(sweep_id))
    assert out["layouts"] is not None and len(out["layout_table"]) == 5
    assert "4 replicas gave 3.1x the tokens/s of tp 4" in out["explanation"]
    assert [label for label, _ in out["setting_choices"]] == ["tp 1 (replicas)", "tp 2", "tp 4"]


def test_the_analysis_tab_hides_layouts_for_a_plain_sweep(db_path):
    from rowkit import sweep_with_runs

    store = Store(db_path)
    sweep_id, _ = sweep_with_runs(store)
    out = analyse(store, str(sweep_id))
    assert out["layouts"] is None and out["layout_table"].empty


def test_sweep_and_run_labels_name_the_layouts(db_path):
    from studio.web.analysis_tab import list_sweep_choices

    store = Store(db_path)
    sweep_id, ids = layout_sweep(store)
    assert "GPUs 2,4 · tp 1,2,4" in list_sweep_choices(store)[0][0]
    assert "GPUs 2,4 · tp 1,2,4" in history.sweep_choices(store)[0][0]
    labels = dict((int(v), label) for label, v in analyse(store, str(sweep_id))["run_choices"])
    assert "4 GPU as 2 × tp 2" in labels[ids[3]] and " as " not in labels[ids[2]]
    assert "as 2 × tp 2" in history.run_label(store.get_run(ids[3]))
