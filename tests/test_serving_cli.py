"""`studio run --scenario server` and `--url` (issue 26) against a fake
run_server_cell: the cells asked for, what is stored, what is printed, and the
settings refused together. The real cell is tested in tests/test_serving_*.py."""

import threading

import pytest

import runner.host.serving.cell as cell_module
from db.serving import server_runs
from db.store import Store


def fake_load(profile, rate, served, latency_s, n=6):
    """n requests spaced at 1/served s, each `latency_s` long with 4 tokens."""
    requests = []
    for i in range(n):
        sent = i / served
        first = sent + latency_s / 4
        tokens = [first + k * (latency_s - latency_s / 4) / 3 for k in range(4)]
        requests.append({"index": i, "scheduled_s": sent, "sent_s": sent, "first_token_s": first, "token_s": tokens,
                         "end_s": tokens[-1], "prompt": "p", "output_text": "abcd", "prompt_tokens": 3,
                         "output_tokens": 4, "status": 200, "error": None, "measured": True})
    return {"profile": profile, "rate": rate, "concurrency": 1 if profile == "synchronous" else None,
            "started_at": "2026-12-05T00:00:00+00:00", "duration_s": 1.0, "client_lagged": False,
            "max_client_lag_s": 0.0, "requests": requests}


class FakeCell:
    """A server of `gpus` req/s capacity: below it latency is 0.2 s, past it latency
    triples per step and the served rate stays at the capacity."""

    def __init__(self, fail_gpus=None):
        self.specs, self.fail_gpus = [], fail_gpus

    def __call__(self, spec, on_progress=None, stop=None):
        self.specs.append(spec)
        assert isinstance(stop, threading.Event)
        if spec.gpus == self.fail_gpus:
            return {"status": "failed", "error": "server did not answer /health in 120 s", "log_tail": "CUDA OOM",
                    "engine": spec.template, "url": "", "gpus": spec.gpus, "tp_size": spec.tp_size,
                    "replicas": spec.replicas, "endpoint": spec.endpoint, "loads": []}
        capacity, loads = float(spec.gpus), []
        for rate in (0.5 * capacity, 0.9 * capacity, 1.5 * capacity, 2.5 * capacity):
            if on_progress:
                on_progress({"phase": "load", "rate": rate, "done": 3, "total": 6})
            over = max(0.0, rate - capacity)
            loads.append(fake_load("constant", rate, min(rate, capacity), 0.2 * 3 ** (2 * over / capacity)))
        return {"status": "succeeded", "error": None, "log_tail": "", "engine": spec.template,
                "url": spec.url or "http://127.0.0.1:1", "gpus": spec.gpus, "tp_size": spec.tp_size,
                "replicas": spec.replicas, "endpoint": spec.endpoint, "loads": loads}


@pytest.fixture
def fake(monkeypatch):
    made = FakeCell()
    monkeypatch.setattr(cell_module, "run_server_cell", made)
    return made


def test_a_server_sweep_runs_a_cell_per_gpu_count_stores_a_run_per_load_and_names_knee_and_slo(cli, db_path, fake):
    done = cli("run", "--scenario", "server", "--profile", "sweep", "--gpus", "1,2", "--max-new-tokens", "32",
               "--slo", "ttft=100,tpot=200", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert [(s.gpus, s.replicas, s.max_new_tokens, s.profile) for s in fake.specs] == [(1, 1, 32, "sweep"),
                                                                                       (2, 2, 32, "sweep")]
    store = Store(db_path)
    sweep = store.list_sweeps()[0]
    runs = server_runs(store, sweep["id"])
    assert len(runs) == 8 and {r["num_gpus"] for r in runs} == {1, 2}
    assert len(store.outputs_for_runs([runs[0]["id"]])[runs[0]["id"]]) == 6
    assert "1 GPU: knee at 0.9 req/s; highest rate within the SLO 0.9 req/s" in done.stdout
    assert "2 GPUs as 2 replicas: knee at 1.8 req/s" in done.stdout
    assert "1 GPU sustains 0.9 req/s within TTFT p99 100 ms and TPOT p99 200 ms; 2 GPUs as 2 replicas give 1.8" \
        in done.stdout
    assert "1.5 req/s" in done.stderr  # progress shows the current rate


def test_a_url_runs_one_cell_against_that_server_and_launches_nothing(cli, db_path, fake):
    done = cli("run", "--url", "http://10.0.0.5:8000", "--profile", "constant", "--rates", "1,2", "--db",
               str(db_path))
    assert done.returncode == 0, done.stderr
    assert [(s.url, s.gpus, s.rates) for s in fake.specs] == [("http://10.0.0.5:8000", 1, (1.0, 2.0))]


def test_a_failed_cell_is_stored_failed_and_the_run_fails(cli, db_path, monkeypatch):
    monkeypatch.setattr(cell_module, "run_server_cell", FakeCell(fail_gpus=2))
    done = cli("run", "--scenario", "server", "--gpus", "1,2", "--db", str(db_path))
    assert done.returncode == 1
    assert "/health" in done.stderr
    store = Store(db_path)
    runs = server_runs(store, store.list_sweeps()[0]["id"])
    assert runs[-1]["status"] == "failed" and runs[-1]["server_log_tail"] == "CUDA OOM"


@pytest.mark.parametrize("args, message", [
    (("--url", "http://h:1", "--gpus", "1,2"), "url: drives a server someone else runs"),
    (("--url", "http://h:1", "--engine", "vllm serve {model} --port {port}"), "leave out --engine"),
    (("--url", "ftp://h:1"), "url: 'ftp://h:1' is not a server address"),
    (("--profile", "constant"), "profile: belongs to the server scenario; add --scenario server"),
    (("--scenario", "server", "--profile", "constant"), "rates: the constant profile needs at least one rate"),
    (("--scenario", "server", "--rates", "1,2"), "rates: are for --profile constant or poisson, not sweep"),
    (("--scenario", "server", "--profile", "constant", "--rates", "1,x"), "rates: 'x' is not a rate"),
    (("--scenario", "server", "--concurrency", "4"), "concurrency: is for --profile concurrency"),
    (("--scenario", "server", "--engine", "serve {model}"), "engine: has no {port}"),
    (("--scenario", "server", "--max-new-tokens", "8,16"), "max_new_tokens: the server scenario takes one value"),
    (("--scenario", "server", "--batch-size", "8"), "batch_size: belongs to the offline scenario"),
    (("--scenario", "server", "--repeats", "3"), "repeats: belongs to the offline scenario"),
    (("--scenario", "server", "--prompt-tokens", "64"), "prompt_tokens: belongs to the offline scenario"),
])
def test_settings_that_make_no_sense_together_are_refused_by_name(cli, db_path, fake, args, message):
    done = cli("run", *args, "--db", str(db_path))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert fake.specs == []


def test_the_report_of_a_server_sweep_is_refused_with_where_to_look(cli, db_path, fake, tmp_path):
    assert cli("run", "--scenario", "server", "--db", str(db_path)).returncode == 0
    done = cli("report", "1", "-o", str(tmp_path / "r.html"), "--db", str(db_path))
    assert done.returncode == 2 and "server scenario" in done.stderr and "Analysis tab" in done.stderr, done.stderr


def test_a_stop_reaches_the_cell_in_flight_and_no_further_cell_runs(store):
    from studio.exchange.serving_run import run_server_sweep
    from studio.sweeps.server_settings import server_plan
    from studio.sweeps.settings import SweepRequest

    plan = server_plan(SweepRequest(scenario="server", gpu_counts="1,2", preset="seed", from_cli=True))
    stop, seen = threading.Event(), []

    def cell(spec, on_progress=None, stop=None):
        seen.append(spec.gpus)
        stop.set()  # as Ctrl+C or the page's Stop would, while this load runs
        return {**FakeCell()(spec, stop=stop), "status": "cancelled", "error": "stopped"}

    outcome = run_server_sweep(plan, store, stop=stop, run_cell=cell)
    assert seen == [1] and outcome.status == "cancelled"
    assert store.get_sweep(outcome.sweep_id)["status"] == "cancelled"
    assert [r["status"] for r in server_runs(store, outcome.sweep_id)][-1] == "cancelled"
