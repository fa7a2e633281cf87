"""The page's handler functions, without a browser: form values in, plans,
tables, HTML and exports out, against a real SQLite store."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from db.store import Store
from runner.config import ConfigError, RunConfig
from runner.result import RunResult


@pytest.fixture(autouse=True)
def page_sees_no_gpu(monkeypatch):
    """The page has no device choice, so its forms plan CPU processes on any host."""
    from conftest import CPU_ONLY_ENV
    from runner.hardware import detect

    for key, value in CPU_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    detect.cache_clear()
    yield
    detect.cache_clear()
from studio import handlers


def request(**changes) -> handlers.SweepRequest:
    values = dict(prompts_text="Call me Ishmael.\nThe King is dead.", model="tiny", mode="batched", batch_size=4,
                  max_new_tokens=8, gpu_counts=["2", "1"], repeats=1)
    values.update(changes)
    return handlers.SweepRequest(**values)


def store_run(store: Store, sweep_id: int | None, gpus: int, tps: float | None, *, status: str = "succeeded",
              repeat: int = 0, error: str | None = None, stderr: str | None = None) -> int:
    config = RunConfig(prompts=["a", "b"], num_gpus=gpus, max_new_tokens=4).to_dict()
    run_id = store.create_run(config, sweep_id=sweep_id, repeat_index=repeat)
    if status == "succeeded":
        seconds = 8 / tps
        result = RunResult(
            status="succeeded", config=config, device="cpu", dtype="float32", world_size=gpus, tokens=8,
            raw_tokens=10, seconds=seconds, tokens_per_second=tps,
            ranks=[{"rank": r, "num_prompts": 1, "tokens": 4, "seconds": seconds, "peak_memory_bytes": 2**20}
                   for r in range(gpus)],
            outputs=[{"prompt_index": 0, "rank": 0, "prompt": "a", "output": "xy", "tokens": 4}],
            phases={"launch": 1.0, "generate": seconds, "total": 3.0},
        )
    else:
        result = RunResult.failure(config, status, error or "it broke", stderr_tail=stderr)
    store.finish_run(run_id, result)
    return run_id


@pytest.fixture
def store(db_path) -> Store:
    return Store(db_path)


def sweep_with_runs(store: Store, points=((1, 100.0), (2, 150.0))) -> tuple[int, list[int]]:
    settings = RunConfig(prompts=["a", "b"], max_new_tokens=4).settings()
    sweep_id = store.create_sweep(settings, [p[0] for p in points], 1, name="demo")
    ids = [store_run(store, sweep_id, gpus, tps) for gpus, tps in points]
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id, ids


# --- the sweep form -----------------------------------------------------------

def test_a_good_form_becomes_a_plan_with_counts_in_order():
    plan = handlers.plan_request(request())
    assert plan.gpu_counts == [1, 2]
    assert plan.base.prompts == ("Call me Ishmael.", "The King is dead.")
    assert plan.base.max_new_tokens == 8 and plan.base.batch_size == 4


def test_gradio_floats_are_taken_as_whole_numbers():
    plan = handlers.plan_request(request(batch_size=4.0, max_new_tokens=8.0, repeats=2.0, gpu_counts="1"))
    assert plan.base.batch_size == 4 and plan.repeats == 2


@pytest.mark.parametrize("changes, field, words", [
    ({"prompts_text": "  \n "}, "prompts", "no prompts"),
    ({"max_new_tokens": 0}, "max_new_tokens", "at least 1"),
    ({"max_new_tokens": None}, "max_new_tokens", "is empty"),
    ({"batch_size": 2.5}, "batch_size", "whole number"),
    ({"gpu_counts": []}, "gpu_counts", "tick at least one"),
    ({"gpu_counts": ["999"]}, "gpu_counts", "at most"),
    ({"repeats": 0}, "repeats", "from 1 to"),
    ({"model": "-rf"}, "model", "starts with '-'"),
    ({"model": "arch:nope"}, "model", "unknown architecture"),
    ({"mode": "turbo"}, "mode", "must be one of"),
    ({"dtype": "int3"}, "dtype", "must be one of"),
])
def test_bad_settings_are_named_next_to_their_field(changes, field, words):
    problems = handlers.check_request(request(**changes))
    assert list(problems) == [field]
    assert words in problems[field]
    with pytest.raises(ConfigError):
        handlers.plan_request(request(**changes))


def test_an_uploaded_file_wins_over_the_text_box(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "from the file"}\n{"prompt": "second"}\n')
    plan = handlers.plan_request(request(prompts_file=str(path)))
    assert plan.base.prompts == ("from the file", "second")
    assert handlers.prompt_summary("ignored", str(path)).startswith("2 prompt(s) from the file p.jsonl")


def test_a_broken_file_is_reported_at_the_prompts(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text\nhello\n")
    problems = handlers.check_request(request(prompts_file=str(path)))
    assert "no 'prompt' column" in problems["prompts"]


def test_the_preset_is_the_reference_posts_hundred_prompts():
    assert len(handlers.preset_text().splitlines()) == 100
    plan = handlers.plan_request(request(prompts_text="", preset="seed"))
    assert len(plan.base.prompts) == 100


def test_api_prompts_may_be_jsonl_text():
    plan = handlers.plan_request(request(prompts_text='{"prompt": "a"}\n{"prompt": "b"}', prompts_format="jsonl"))
    assert plan.base.prompts == ("a", "b")


def test_the_gpu_count_choices_follow_the_machine():
    choices = handlers.device_choices()
    assert choices["counts"] == list(range(1, choices["max"] + 1))
    assert choices["device"] in ("cpu", "cuda")


def test_the_model_box_offers_allowed_folders_and_cached_hub_ids(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "my-llama"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (tmp_path / "models" / "not-a-model").mkdir()
    hub = tmp_path / "hub"
    (hub / "models--org--name").mkdir(parents=True)
    (hub / "datasets--org--data").mkdir()
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(tmp_path / "models"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    choices = handlers.model_choices()
    assert choices[0] == "tiny" and "arch:llama-2-7b" in choices
    assert str(folder) in choices and "org/name" in choices
    assert not any("not-a-model" in c or "data" in c for c in choices)


# --- the live view --------------------------------------------------------------

def live_status(sweep_id, run_ids, **run_changes):
    runs = [{"run_id": rid, "num_gpus": i + 1, "repeat": 0, "status": "queued", "phase": "", "done": 0, "total": 2,
             "tokens_per_second": None, "error": None} for i, rid in enumerate(run_ids)]
    runs[0].update(run_changes)
    return {"sweep_id": sweep_id, "state": "running", "queue_position": None, "current_run_id": run_ids[0],
            "gpu_counts": [1, 2], "repeats": 1, "runs": runs, "log": ["line 1", "<b>line 2</b>"]}


def test_progress_shows_a_bar_per_run_with_prompts_done(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1, 2], 1)
    ids = [store.create_run(RunConfig(prompts=["a", "b"], num_gpus=n).to_dict(), sweep_id=sweep_id) for n in (1, 2)]
    status = live_status(sweep_id, ids, status="running", phase="generate", done=1)
    snapshot = handlers.sweep_snapshot(status, store.get_sweep(sweep_id))
    page = handlers.progress_html(snapshot)
    assert page.count("class='studio-run'") == 2
    assert "1 / 2 prompts" in page and "0 / 2 prompts" in page
    assert "generating" in page and "aria-valuenow='1'" in page
    assert "&lt;b&gt;line 2&lt;/b&gt;" in handlers.log_html(snapshot)


def test_a_failed_run_shows_its_error_and_stderr_tail_escaped(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1)
    run_id = store_run(store, sweep_id, 1, None, status="failed", error="rank 0: <boom>",
                       stderr="Traceback\nValueError: <bad>")
    store.finish_sweep(sweep_id, "failed")
    snapshot = handlers.sweep_snapshot(None, store.get_sweep(sweep_id))  # after a restart: from the store
    assert snapshot["finished"] and snapshot["runs"][0]["status"] == "failed"
    page = handlers.progress_html(snapshot)
    assert "rank 0: &lt;boom&gt;" in page and "ValueError: &lt;bad&gt;" in page and "<boom>" not in page
    detail = handlers.get_run(store, run_id)
    assert "rank 0: &lt;boom&gt;" in handlers.error_markdown(detail)


def test_the_stored_final_status_wins_over_a_stale_live_one(store):
    sweep_id, ids = sweep_with_runs(store)
    status = live_status(sweep_id, ids, status="running")
    snapshot = handlers.sweep_snapshot(status, store.get_sweep(sweep_id))
    assert [r["status"] for r in snapshot["runs"]] == ["succeeded", "succeeded"]
    assert snapshot["runs"][1]["tokens_per_second"] == 150.0


def test_results_table_has_speedup_over_the_smallest_count(store):
    sweep_id, ids = sweep_with_runs(store, ((1, 100.0), (2, 150.0), (4, 180.0)))
    table = handlers.results_table(store.get_sweep(sweep_id)["runs"])
    assert list(table["GPUs"]) == [1, 2, 4]
    assert list(table["speedup"]) == [1.0, 1.5, 1.8]


def test_the_chart_redraws_only_when_a_run_finishes(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1)
    store.create_run(RunConfig(prompts=["a"]).to_dict(), sweep_id=sweep_id)
    before = handlers.finished_signature(store.get_sweep(sweep_id)["runs"])
    assert before == handlers.finished_signature(store.get_sweep(sweep_id)["runs"])
    store_run(store, sweep_id, 1, 100.0)
    assert before != handlers.finished_signature(store.get_sweep(sweep_id)["runs"])


def test_a_reopened_page_gets_the_form_of_the_sweep_it_shows(store):
    sweep_id = store.create_sweep({"model": "tiny"}, [1, 2], 2)
    for repeat in (0, 1):
        for n in (1, 2):
            config = RunConfig(prompts=["a", "b"], num_gpus=n, max_new_tokens=8, mode="simple", label="x")
            store.create_run(config.to_dict(), sweep_id=sweep_id, repeat_index=repeat)
    values = handlers.form_values(store.get_sweep(sweep_id)["runs"])
    assert values["prompts"] == "a\nb" and values["gpu_counts"] == [1, 2] and values["repeats"] == 2
    assert (values["mode"], values["max_new_tokens"], values["name"]) == ("simple", 8, "x")
    assert handlers.plan_request(handlers.SweepRequest(prompts_text=values["prompts"], **{
        k: v for k, v in values.items() if k != "prompts"})).gpu_counts == [1, 2]


# --- history ------------------------------------------------------------------------

def test_history_filters_by_settings_and_dates(store):
    sweep_id, ids = sweep_with_runs(store)
    failed = store_run(store, None, 1, None, status="failed")
    assert [r["id"] for r in handlers.list_history(store)] == [failed, *reversed(ids)]
    assert [r["id"] for r in handlers.list_history(store, status="failed")] == [failed]
    assert len(handlers.list_history(store, model="any", batch_size="16")) == 3
    assert handlers.list_history(store, batch_size="32") == []
    today = store.get_run(failed)["created_at"][:10]
    assert len(handlers.list_history(store, since=today, until=today)) == 3
    assert handlers.list_history(store, until="2000-01-01") == []


@pytest.mark.parametrize("since, until, field", [("yesterday", "", "since"), ("2025-02-01", "2025-01-01", "until")])
def test_bad_dates_are_refused(store, since, until, field):
    with pytest.raises(ConfigError) as caught:
        handlers.list_history(store, since=since, until=until)
    assert caught.value.field == field


def test_history_table_and_choices_show_the_runs(store):
    sweep_id, ids = sweep_with_runs(store)
    runs = handlers.list_history(store)
    table = handlers.history_table(runs)
    assert list(table["run"]) == list(reversed(ids)) and list(table["GPUs"]) == [2, 1]
    assert handlers.sweep_choices(store)[0][1] == sweep_id
    assert "“demo”" in handlers.sweep_choices(store)[0][0]
    assert handlers.filter_choices(store)["status"] == ["any", "succeeded"]


def test_a_selection_is_whole_sweeps_plus_single_runs_each_once(store):
    sweep_id, ids = sweep_with_runs(store)
    other = store_run(store, None, 1, 90.0)
    chosen = handlers.selected_runs(store, [sweep_id], [ids[0], other])
    assert [r["id"] for r in chosen] == [*ids, other]
    with pytest.raises(ConfigError):
        handlers.selected_runs(store, [999], [])


def test_run_detail_has_settings_results_and_outputs(store):
    _, ids = sweep_with_runs(store)
    run = handlers.get_run(store, ids[1])
    title, settings, results, times = handlers.run_summary_parts(run)
    assert f"Run {ids[1]} of sweep" in title and "succeeded" in title
    assert "| GPUs / processes | 2 |" in settings
    assert "| padding tokens | 2 |" in results
    assert list(handlers.outputs_table(run)["output"]) == ["xy"]
    with pytest.raises(ConfigError, match="no run 12345"):
        handlers.get_run(store, 12345)


def test_export_csv_has_a_row_per_run_and_json_everything(store):
    sweep_id, ids = sweep_with_runs(store)
    runs = handlers.selected_runs(store, [sweep_id])
    rows = list(csv.DictReader(io.StringIO(handlers.export_text(store, runs, "csv"))))
    assert [int(r["id"]) for r in rows] == ids
    assert [float(r["tokens_per_second"]) for r in rows] == [100.0, 150.0]
    full = json.loads(handlers.export_text(store, runs, "json"))
    assert [r["id"] for r in full] == ids and full[0]["outputs"][0]["output"] == "xy"
    with pytest.raises(ConfigError):
        handlers.export_text(store, runs, "xlsx")


def test_delete_removes_the_selection_and_refuses_running_runs(store):
    sweep_id, ids = sweep_with_runs(store)
    keep = store_run(store, None, 1, 90.0)
    running = store.create_run(RunConfig(prompts=["a"]).to_dict())
    store.mark_running(running)
    with pytest.raises(ConfigError, match="still queued or running"):
        handlers.delete_selected(store, [], [running, keep])
    assert store.get_run(keep) is not None  # nothing lost by the refused delete
    assert handlers.delete_selected(store, [sweep_id], []) == "Deleted 2 run(s) and 1 sweep(s)."
    assert store.get_sweep(sweep_id) is None and all(store.get_run(i) is None for i in ids)
    with pytest.raises(ConfigError, match="nothing selected"):
        handlers.delete_selected(store, [], [])


def test_compare_table_has_median_speedup_and_efficiency(store):
    sweep_id, _ = sweep_with_runs(store, ((1, 100.0), (2, 150.0)))
    store_run(store, sweep_id, 2, 170.0, repeat=1)
    points = handlers.compare_points(handlers.selected_runs(store, [sweep_id]))
    assert [(p["GPUs"], p["runs"], p["median tokens/s"]) for p in points] == [(1, 1, 100.0), (2, 2, 160.0)]
    assert points[1]["speedup"] == 1.6 and points[1]["efficiency"] == 0.8


def test_the_page_process_never_imports_torch(db_path):
    """Build the whole app, load its tabs' data and validate a sweep; torch must stay out."""
    script = textwrap.dedent(f"""
        import sys
        from studio.supervisor import Supervisor
        from studio.app import build_app
        from studio import handlers
        supervisor = Supervisor({str(db_path)!r})
        app = build_app(supervisor, {str(db_path)!r})
        handlers.plan_request(handlers.SweepRequest(prompts_text="a", gpu_counts="1,2", mode="auto"))
        handlers.list_history(supervisor.store)
        supervisor.shutdown()
        heavy = sorted(m for m in ("torch", "transformers", "accelerate") if m in sys.modules)
        print("IMPORTED", heavy)
        sys.exit(1 if heavy else 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IMPORTED []" in done.stdout
