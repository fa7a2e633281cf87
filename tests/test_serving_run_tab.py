"""The server scenario from the page and the API (issue 26): the Run tab's fields
for it, what the page hides and so does not send, the engine and URL kept to a
studio started with --allow-engines, and the supervisor running a server sweep
with its cell and load in the progress and Stop reaching the load. The cell is a
fake (tests/test_serving_cli.py); the real one from the page is tests/test_serving_page_run.py."""

import functools
import threading
import time

import pytest
from test_serving_cli import FakeCell

from db.serving import server_runs
from runner.config import ConfigError
from studio.exchange.serving_run import run_server_sweep
from studio.sweeps.plan import SweepPlan, plan_request
from studio.sweeps.server_settings import ServerPlan
from studio.sweeps.supervisor import Supervisor
from studio.web import forms, views
from studio.web.serving_panel import server_results_table

PROMPTS = "Call me Ishmael.\nThe King is dead."


def page(**values) -> dict:
    """The Run tab's values: each field's default, the prompts, then `values`."""
    from studio.sweeps.settings import BY_NAME

    given = {name: BY_NAME[name].default for name in forms.FORM_FIELDS}
    return {**given, "prompts": PROMPTS, "gpu_counts": [1, 2], **values}


def test_the_page_hides_each_scenarios_fields_and_does_not_send_them():
    assert forms.hidden_fields(page()) >= {"engine", "url", "profile", "rates", "concurrency"}
    server = forms.hidden_fields(page(scenario="server", profile="sweep"))
    assert {"batch_size", "mode", "repeats", "prompt_tokens", "rates", "concurrency"} <= server
    assert "engine" not in server and "gpu_counts" not in server
    assert "rates" not in forms.hidden_fields(page(scenario="server", profile="poisson"))
    assert "concurrency" not in forms.hidden_fields(page(scenario="server", profile="concurrency"))
    assert {"gpu_counts", "tp_size", "engine"} <= forms.hidden_fields(page(scenario="server", url="http://h:1"))
    # a batch size typed before switching to the server scenario is hidden, so it cannot refuse the sweep
    plan = plan_request(forms.form_request(page(scenario="server", batch_size="8", mode="simple", rates="3")))
    assert isinstance(plan, ServerPlan) and [c.gpus for c in plan.cells] == [1, 2]
    # and rates typed in the server scenario do not reach an offline sweep
    assert isinstance(plan_request(forms.form_request(page(rates="1,2", gpu_counts=[1]))), SweepPlan)


def test_the_same_server_settings_are_refused_from_the_api_as_from_the_cli():
    from studio.sweeps.settings import SweepRequest

    with pytest.raises(ConfigError) as refused:
        plan_request(SweepRequest(prompts_text=PROMPTS, rates="1,2"))  # offline, with a server setting
    assert refused.value.field == "rates" and "server scenario" in refused.value.message
    with pytest.raises(ConfigError) as refused:
        plan_request(SweepRequest(prompts_text=PROMPTS, scenario="server", profile="sweep", rates="1,2"))
    assert refused.value.field == "rates" and "constant or poisson" in refused.value.message
    plan = plan_request(SweepRequest(prompts_text=PROMPTS, scenario="server", profile="constant", rates="2,0.5",
                                     concurrency=1.0, requests_per_load=5.0, max_new_tokens="8"))
    assert plan.cells[0].rates == (0.5, 2.0) and plan.cells[0].requests_per_load == 5 and plan.max_new_tokens == 8


@pytest.mark.parametrize("name, value", [("engine", "vllm serve {model} --port {port}"), ("url", "http://10.0.0.9:8000")])
def test_an_engine_or_url_from_the_page_needs_allow_engines(monkeypatch, name, value):
    monkeypatch.delenv("STUDIO_ALLOW_ENGINES", raising=False)
    request = forms.form_request(page(scenario="server", **{name: value}))
    problems = forms.check_request(request)
    assert set(problems) == {name} and "studio serve --allow-engines" in problems[name]
    monkeypatch.setenv("STUDIO_ALLOW_ENGINES", "1")
    assert forms.check_request(request) == {}


def test_the_grid_line_says_what_a_server_sweep_runs():
    line = forms.grid_summary(forms.form_request(page(scenario="server", gpu_counts=[1, 2], requests_per_load=7)))
    assert line.startswith("Server scenario: **2 cell(s)** (1 GPU · 2 GPUs as 2 replicas)"), line
    assert "7 measured requests a load" in line
    assert "⚠ Rates (requests/s)" in forms.grid_summary(forms.form_request(
        page(scenario="server", profile="constant", rates="fast")))


class SlowCell(FakeCell):
    """FakeCell whose first load waits until it is released (or stopped), so the test can
    read the supervisor's status mid-load."""

    def __init__(self):
        super().__init__()
        self.release, self.in_load = threading.Event(), threading.Event()

    def __call__(self, spec, on_progress=None, stop=None):
        on_progress({"phase": "starting", "rate": None, "done": 0, "total": 0})
        on_progress({"phase": "load", "profile": "constant", "rate": 0.5, "done": 3, "total": 6})
        self.in_load.set()
        while not self.release.is_set():
            if stop.is_set():
                return {**super().__call__(spec, stop=stop), "status": "cancelled", "error": "stopped"}
            time.sleep(0.01)
        return super().__call__(spec, stop=stop)


@pytest.fixture
def slow_supervisor(db_path):
    cell = SlowCell()
    supervisor = Supervisor(db_path, resume=False, server_runner=functools.partial(run_server_sweep, run_cell=cell))
    yield supervisor, cell
    cell.release.set()
    supervisor.shutdown()


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_supervisor_runs_a_server_sweep_with_its_load_in_the_progress(slow_supervisor):
    supervisor, cell = slow_supervisor
    plan = plan_request(forms.form_request(page(scenario="server", slo="ttft=500,tpot=200")))
    sweep_id = supervisor.submit(plan)
    assert cell.in_load.wait(10)
    snapshot, _ = views.load_sweep(supervisor, supervisor.store, sweep_id)
    assert snapshot["server"]["phase"] == "load" and snapshot["server"]["rate"] == 0.5
    shown = views.progress_html(snapshot)
    assert "cell 1/2 · 1 GPU(s), tp 1 · constant load at 0.5 req/s · 3/6 requests" in shown
    assert "server scenario · sweep profile" in shown
    assert "starting the server" in "\n".join(snapshot["log"])
    cell.release.set()
    wait_for(lambda: supervisor.status(sweep_id)["state"] == "succeeded")
    runs = server_runs(supervisor.store, sweep_id)
    assert [r["num_gpus"] for r in runs] == [1] * 4 + [2] * 4 and {r["status"] for r in runs} == {"succeeded"}
    snapshot, _ = views.load_sweep(supervisor, supervisor.store, sweep_id)
    assert snapshot["server"] is None
    shown = views.progress_html(snapshot)
    assert "6 / 6 requests" in shown and "constant rate 0.5 req/s" in shown and "8 load(s) stored" in shown
    table = server_results_table(supervisor.store.get_sweep(sweep_id)["runs"])
    assert list(table["load"])[:4] == ["constant rate 0.5 req/s", "constant rate 0.9 req/s", "constant rate 1.5 req/s",
                                      "constant rate 2.5 req/s"]
    assert list(table["GPUs"]) == [1] * 4 + [2] * 4 and table["latency p50 ms"].iloc[0] == pytest.approx(200, rel=0.01)
    assert "1 GPU sustains 1.5 req/s within TTFT p99 500 ms and TPOT p99 200 ms; 2 GPUs as 2 replicas give 3" \
        in snapshot["log"][-2], snapshot["log"]


def test_stop_ends_the_server_sweeps_load_and_no_further_cell_runs(slow_supervisor):
    supervisor, cell = slow_supervisor
    sweep_id = supervisor.submit(plan_request(forms.form_request(page(scenario="server"))))
    assert cell.in_load.wait(10)
    assert supervisor.cancel(sweep_id)
    wait_for(lambda: supervisor.status(sweep_id)["state"] == "cancelled")
    assert [spec.gpus for spec in cell.specs] == [1]  # the 2-GPU cell never started
    assert supervisor.store.get_sweep(sweep_id)["status"] == "cancelled"
    assert server_runs(supervisor.store, sweep_id)[-1]["status"] == "cancelled"


def test_a_studio_without_the_server_runner_refuses_a_server_sweep_before_storing_it(db_path):
    supervisor = Supervisor(db_path, resume=False)
    try:
        with pytest.raises(RuntimeError, match="studio run --scenario server"):
            supervisor.submit(plan_request(forms.form_request(page(scenario="server"))))
        assert supervisor.store.list_sweeps() == []
    finally:
        supervisor.shutdown()


def test_start_sweep_queues_a_server_sweep_and_counts_its_cells():
    from types import SimpleNamespace

    from studio.web.api import start_sweep_endpoint

    plans = []
    supervisor = SimpleNamespace(submit=lambda plan: plans.append(plan) or 3,
                                 status=lambda sweep_id: {"state": "queued", "queue_position": 1})
    start_sweep = start_sweep_endpoint(supervisor)
    answer = start_sweep(prompts=PROMPTS, scenario="server", gpu_counts="1,2", profile="synchronous",
                         max_new_tokens="16")
    assert answer == {"sweep_id": 3, "state": "queued", "queue_position": 1, "runs": None, "cells": 2}
    assert [(c.gpus, c.tp_size, c.replicas) for c in plans[0].cells] == [(1, 1, 1), (2, 1, 2)]
    with pytest.raises(ConfigError, match="engine template has no {tp}"):  # the default engine has no tp option
        start_sweep(prompts=PROMPTS, scenario="server", gpu_counts="2", tp_size="2")
    with pytest.raises(ConfigError, match="belongs to the offline scenario"):
        start_sweep(prompts=PROMPTS, scenario="server", batch_size="8")  # the API sends what it is given


def test_a_server_cell_waits_for_the_machine_another_studio_holds(store):
    """A server launched beside another studio's job would skew both: the cell waits for the
    hardware lock as an offline run does, and says who holds it."""
    from runner.host.hardware_lock import HardwareLock
    from studio.sweeps.settings import SweepRequest

    plan = plan_request(SweepRequest(prompts_text=PROMPTS, scenario="server", gpu_counts="1"))
    cell, seen = FakeCell(), []
    held = HardwareLock()
    assert held.acquire({"program": "cli", "run_id": 41})
    worker = threading.Thread(target=run_server_sweep, args=(plan, store),
                              kwargs={"run_cell": cell, "on_progress": seen.append})
    worker.start()
    try:
        wait_for(lambda: any(e["phase"] == "waiting" for e in seen))
        assert not cell.specs  # nothing launched while another job holds the machine
        waiting = next(e for e in seen if e["phase"] == "waiting")
        assert "run 41" in waiting["holder"] and waiting["position"] == 1
    finally:
        held.release()
    worker.join(10)
    assert [spec.gpus for spec in cell.specs] == [1]
