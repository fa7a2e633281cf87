"""The studio through `gradio_client` against a live `studio serve`: the README's
client example as written, server-side validation, a failed run's error, Stop,
history, export and delete."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT
from live_server import live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, studio_home):
    from conftest import find_free_port

    folder = tmp_path_factory.mktemp("api")
    with live_server(folder / "studio.db", find_free_port(), folder / "serve.log") as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def wait_finished(client, sweep_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(sweep_id=sweep_id, api_name="/sweep_status")
        if status["finished"]:
            return status
        time.sleep(1)
    raise AssertionError(f"sweep {sweep_id} did not finish in {timeout} s: {status}")


def readme_example() -> str:
    text = (ROOT / "docs" / "web.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def documented_endpoints() -> set[str]:
    section = (ROOT / "README.md").read_text().split("## API", 1)[1].split("```", 1)[0]
    return set(re.findall(r"`(/\w+)`", section))


def test_the_public_api_is_what_the_readme_lists(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/start_sweep", "/sweep_status", "/stop_sweep", "/list_runs", "/get_run", "/delete_runs",
            "/export_runs", "/compare", "/list_sweeps", "/analyse_sweep", "/predict", "/recommend", "/import_results"} == \
        documented_endpoints()
    assert names == documented_endpoints()  # the page's own events stay private


def test_bad_settings_are_refused_on_the_server_and_nothing_is_stored(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="max_new_tokens: must be at least 1"):
        client.predict(prompts="hello", max_new_tokens=0, api_name="/start_sweep")
    with pytest.raises(AppError, match="gpus: .* is not a whole number"):
        client.predict(prompts="hello", gpu_counts="1,two", api_name="/start_sweep")
    with pytest.raises(AppError, match="prompts: no prompts"):
        client.predict(prompts="", api_name="/start_sweep")
    with pytest.raises(AppError, match="since: .* is not a date"):
        client.predict(since="last week", api_name="/list_runs")
    assert client.predict(api_name="/list_runs") == []


def test_the_readme_client_example_runs_a_sweep(server, client, capsys):
    url, proc = server
    code = readme_example().replace("http://127.0.0.1:7860/", url)
    exec(compile(code, "docs/web.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.search(r"^1 processes: succeeded [\d.]+ tokens/s$", printed, re.M), printed
    assert re.search(r"^2 processes: succeeded [\d.]+ tokens/s$", printed, re.M), printed
    assert re.search(r"^2 GPUs: speedup [\d.]+ of an ideal 2.0$", printed, re.M), printed

    runs = client.predict(status="succeeded", api_name="/list_runs")
    assert sorted(r["num_gpus"] for r in runs) == [1, 2]
    run = client.predict(run_id=runs[0]["id"], api_name="/get_run")
    assert len(run["outputs"]) == 2 and run["tokens_per_second"] > 0 and len(run["ranks"]) == 2
    assert "torch" in run["environment"]["nodes"][0]["versions"]
    # generation happened in the accelerate subprocesses only: the server never loaded torch
    maps = Path(f"/proc/{proc.pid}/maps")
    if maps.exists():
        assert "libtorch" not in maps.read_text()


def test_analyse_sweep_answers_with_the_report_json(client):
    from gradio_client.exceptions import AppError

    (sweep,) = client.predict(api_name="/list_sweeps")  # the README example's
    report = client.predict(sweep_id=sweep["id"], api_name="/analyse_sweep")
    assert report["sweep"]["id"] == sweep["id"] and report["explanation"]
    assert [p["gpus"] for p in report["points"]] == [1, 2]
    compare = {p["GPUs"]: p for p in client.predict(sweep_ids=[sweep["id"]], api_name="/compare")}
    assert report["points"][1]["speedup"] == pytest.approx(compare[2]["speedup"], abs=0.005)  # one computation
    with pytest.raises(AppError, match="no sweep 99999"):
        client.predict(sweep_id=99999, api_name="/analyse_sweep")


def test_recommend_answers_as_the_cli(client):
    from gradio_client.exceptions import AppError

    (sweep,) = client.predict(api_name="/list_sweeps")
    answer = client.predict(sweep_ids=[sweep["id"]], slo="ttft=100000,tpot=100000", price=1.0, max_gpus=2,
                            api_name="/recommend")
    measured = {c["gpus"]: c for c in answer["candidates"] if c["kind"] == "measured"}
    assert sorted(measured) == [1, 2] and answer["sentence"].startswith("Use ")
    for n, c in measured.items():  # $1 per GPU-hour: tokens/s per $/hour is tokens/s per GPU
        assert c["tokens_per_second_per_dollar_hour"] == pytest.approx(c["tokens_per_second"] / n)
    best = max(measured.values(), key=lambda c: c["tokens_per_second_per_dollar_hour"])
    assert answer["chosen"]["run_ids"] == best["run_ids"]
    with pytest.raises(AppError, match="slo"):
        client.predict(sweep_ids=[sweep["id"]], slo="fast", api_name="/recommend")


def test_export_and_delete(client):
    runs = client.predict(status="succeeded", api_name="/list_runs")
    ids = [r["id"] for r in runs]
    rows = list(csv.DictReader(io.StringIO(client.predict(run_ids=ids, format="csv", api_name="/export_runs"))))
    assert sorted(int(r["id"]) for r in rows) == sorted(ids)
    full = json.loads(client.predict(run_ids=ids[:1], format="json", api_name="/export_runs"))
    assert full[0]["outputs"]
    message = client.predict(run_ids=ids[:1], api_name="/delete_runs")["message"]
    assert message == "Deleted 1 run(s)."
    assert [r["id"] for r in client.predict(status="succeeded", api_name="/list_runs")] == ids[1:]


def test_a_failed_run_reports_its_error_and_stderr_tail(client, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 256}))
    sweep = client.predict(prompts="hello", model=str(broken), max_new_tokens=4, api_name="/start_sweep")
    status = wait_finished(client, sweep["sweep_id"])
    assert status["state"] == "failed"
    run = status["runs"][0]
    assert run["status"] == "failed" and run["error"] and run["stderr_tail"]
    stored = client.predict(run_id=run["run_id"], api_name="/get_run")
    assert stored["status"] == "failed" and stored["error"] == run["error"] and stored["tokens_per_second"] is None
    # remote users see no server folder, not even the model folder they named
    shown = stored["error"] + stored["stderr_tail"] + run["error"] + run["stderr_tail"]
    assert str(tmp_path) not in shown and "$TMPDIR" in shown


def test_stop_ends_the_sweep_and_its_processes(client):
    sweep = client.predict(preset="seed", gpu_counts="1,2", max_new_tokens=16, api_name="/start_sweep")
    sweep_id = sweep["sweep_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the worker processes run (they report the load phase)
        status = client.predict(sweep_id=sweep_id, api_name="/sweep_status")
        if status["runs"][0]["phase"] in ("load", "warmup", "generate") or status["finished"]:
            break
        time.sleep(0.3)
    assert not status["finished"], status
    first = status["runs"][0]["run_id"]
    pids = client.predict(run_id=first, api_name="/get_run").get("pids") or []
    assert len(pids) >= 2  # the launcher and the rank
    assert client.predict(sweep_id=sweep_id, api_name="/stop_sweep")["stopped"] is True
    status = wait_finished(client, sweep_id, timeout=60)
    assert status["state"] == "cancelled"
    assert [r["status"] for r in status["runs"]] == ["cancelled", "cancelled"]
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes of the stopped run still alive: {alive}"
    assert client.predict(sweep_id=sweep_id, api_name="/stop_sweep")["stopped"] is False
