"""What the page shows of sweeps and runs, without a browser: progress bars, the
results and compare tables, one run in detail; and the page never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT
from rowkit import store_run, sweep_with_runs

from runner.config import ConfigError, RunConfig
from runner.result import RunResult
from studio.web import history, views

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


def live_status(sweep_id, run_ids, **run_changes):
    runs = [{"run_id": rid, "num_gpus": i + 1, "repeat": 0, "status": "queued", "phase": "", "done": 0, "total": 2,
             "tokens_per_second": None, "error": None} for i, rid in enumerate(run_ids)]
    runs[0].update(run_changes)
    return {"sweep_id": sweep_id, "state": "running", "queue_position": None, "current_run_id": run_ids[0],
            "gpu_counts": [1, 2], "repeats": 1, "runs": runs, "log": ["line 1", "<b>line 2</b>"]}


def test_progress_shows_a_bar_per_run_with_prompts_done(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1, 2], 1)
    ids = [store.create_run(RunConfig(prompts=["a", "b"], gpus_per_node=n).to_dict(), sweep_id=sweep_id) for n in (1, 2)]
    status = live_status(sweep_id, ids, status="running", phase="generate", done=1)
    snapshot = views.sweep_snapshot(status, store.get_sweep(sweep_id))
    page = views.progress_html(snapshot)
    assert page.count("class='studio-run'") == 2
    assert "1 / 2 prompts" in page and "0 / 2 prompts" in page
    assert "generating" in page and "aria-valuenow='1'" in page
    assert "&lt;b&gt;line 2&lt;/b&gt;" in views.log_html(snapshot)


def test_a_failed_run_shows_its_error_and_stderr_tail_escaped(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1)
    run_id = store_run(store, sweep_id, 1, None, status="failed", error="rank 0: <boom>",
                       stderr="Traceback\nValueError: <bad>")
    store.finish_sweep(sweep_id, "failed")
    snapshot = views.sweep_snapshot(None, store.get_sweep(sweep_id))  # after a restart: from the store
    assert snapshot["finished"] and snapshot["runs"][0]["status"] == "failed"
    page = views.progress_html(snapshot)
    assert "rank 0: &lt;boom&gt;" in page and "ValueError: &lt;bad&gt;" in page and "<boom>" not in page
    detail = history.get_run(store, run_id)
    assert "rank 0: &lt;boom&gt;" in views.error_markdown(detail)


def test_the_stored_final_status_wins_over_a_stale_live_one(store):
    sweep_id, ids = sweep_with_runs(store)
    status = live_status(sweep_id, ids, status="running")
    snapshot = views.sweep_snapshot(status, store.get_sweep(sweep_id))
    assert [r["status"] for r in snapshot["runs"]] == ["succeeded", "succeeded"]
    assert snapshot["runs"][1]["tokens_per_second"] == 150.0


def test_results_table_has_speedup_over_the_smallest_count(store):
    sweep_id, ids = sweep_with_runs(store, ((1, 100.0), (2, 150.0), (4, 180.0)))
    table = views.results_table(store.get_sweep(sweep_id)["runs"])
    assert list(table["GPUs"]) == [1, 2, 4]
    assert list(table["speedup"]) == [1.0, 1.5, 1.8]


def test_the_chart_redraws_only_when_a_run_finishes(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1)
    store.create_run(RunConfig(prompts=["a"]).to_dict(), sweep_id=sweep_id)
    before = views.finished_signature(store.get_sweep(sweep_id)["runs"])
    assert before == views.finished_signature(store.get_sweep(sweep_id)["runs"])
    store_run(store, sweep_id, 1, 100.0)
    assert before != views.finished_signature(store.get_sweep(sweep_id)["runs"])


def test_run_detail_has_settings_results_and_outputs(store):
    _, ids = sweep_with_runs(store)
    run = history.get_run(store, ids[1])
    title, settings, results, times = views.run_summary_parts(run)
    assert f"Run {ids[1]} of sweep" in title and "succeeded" in title
    assert "| GPUs / processes | 2 |" in settings
    assert "| padding tokens | 2 |" in results
    assert list(views.outputs_table(run)["output"]) == ["xy"]
    with pytest.raises(ConfigError, match="no run 12345"):
        history.get_run(store, 12345)


def test_compare_table_has_median_speedup_and_efficiency(store):
    sweep_id, _ = sweep_with_runs(store, ((1, 100.0), (2, 150.0)))
    store_run(store, sweep_id, 2, 170.0, repeat=1)
    points = views.compare_points(history.selected_runs(store, [sweep_id]))
    assert [(p["GPUs"], p["runs"], p["median tokens/s"]) for p in points] == [(1, 1, 100.0), (2, 2, 160.0)]
    assert points[1]["speedup"] == 1.6 and points[1]["efficiency"] == 0.8


def test_the_page_process_never_imports_torch(db_path):
    """Build the whole app, load its tabs' data and validate a sweep; torch must stay out."""
    script = textwrap.dedent(f"""
        import sys
        from studio.sweeps.supervisor import Supervisor
        from studio.web.app import build_app
        from studio.web import forms, history, views
        supervisor = Supervisor({str(db_path)!r})
        app = build_app(supervisor, {str(db_path)!r})
        forms.plan_request(forms.SweepRequest(prompts_text="a", gpu_counts="1,2", mode="auto"))
        history.list_history(supervisor.store)
        supervisor.shutdown()
        heavy = sorted(m for m in ("torch", "transformers", "accelerate") if m in sys.modules)
        print("IMPORTED", heavy)
        sys.exit(1 if heavy else 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IMPORTED []" in done.stdout


def test_a_grid_sweep_names_each_run_s_cell(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1, 2], 1)
    for gpus, batch, tps in ((1, 1, 100.0), (1, 8, 500.0), (2, 1, 180.0), (2, 8, 900.0)):
        config = RunConfig(prompts=["a", "b"], gpus_per_node=gpus, batch_size=batch, max_new_tokens=4).to_dict()
        run_id = store.create_run(config, sweep_id=sweep_id)
        store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=gpus, tokens=8,
                                           raw_tokens=8, seconds=8 / tps, tokens_per_second=tps))
    rows = store.get_sweep(sweep_id)["runs"]
    table = views.results_table(rows)
    assert list(zip(table["GPUs"], table["setting"], table["speedup"])) == [
        (1, "batch 1", 1.0), (1, "batch 8", 1.0), (2, "batch 1", 1.8), (2, "batch 8", 1.8)]
    html = views.progress_html(views.sweep_snapshot(None, store.get_sweep(sweep_id)))
    assert "1 process · batch 8" in html and "2 processes · batch 1" in html


def test_the_running_sweep_stays_in_view_with_the_queue_behind_it(store):
    grid = {"model": "tiny", "mode": "batched", "batch_size": None, "max_new_tokens": 8, "num_prompts": 16,
            "axes": {"batch_size": [1, 8], "gpus_per_node": [1, 2]}}
    sweep_id = store.create_sweep(grid, [1, 2], 1)
    ids = [store.create_run(RunConfig(prompts=["a", "b"], gpus_per_node=n).to_dict(), sweep_id=sweep_id) for n in (1, 2)]
    snapshot = views.sweep_snapshot(live_status(sweep_id, ids, status="running"), store.get_sweep(sweep_id))
    queue = [{"sweep_id": sweep_id, "state": "running", "position": 0},
             {"sweep_id": sweep_id + 1, "state": "queued", "position": 1},
             {"sweep_id": sweep_id + 2, "state": "queued", "position": 2}]
    page = views.progress_html(snapshot, queue)
    # a grid's varied batch is its values, never "batch None"
    assert "batch 1, 8 · 8 new tokens · 16 prompts" in page and "None" not in page
    assert f"<b>Sweep {sweep_id}</b>" in page
    assert f"sweep {sweep_id + 1} (position 1), sweep {sweep_id + 2} (position 2)" in page
    assert "Waiting in the queue" not in views.progress_html(snapshot, queue[:1])


def test_a_cancelled_sweep_does_not_call_its_runs_finished():
    assert views.ended_text(["succeeded", "succeeded"], 3) == "2 of 3 run(s) finished"
    assert views.ended_text(["cancelled", "cancelled"], 2) == "2 of 2 run(s) ended: 2 cancelled"
    assert views.ended_text(["succeeded", "failed", "cancelled"], 3) == \
        "3 of 3 run(s) ended: 1 succeeded, 1 failed, 1 cancelled"


def test_outputs_of_a_random_weight_model_say_their_text_is_noise():
    assert "random weights" in views.outputs_label({"model": "tiny"})
    assert "random weights" in views.outputs_label({"config": {"model": "arch:llama-2-7b"}})
    assert views.outputs_label({"model": "/models/my-llama"}) == "Outputs"
