"""The runner side of the server scenario (issue 26): the launcher, the load client and
the cell, against a fake OpenAI-compatible server (tests/fixtures/fake_server.py) that
the launcher starts through its command template like any engine."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from runner.config import ConfigError
from runner.host.serving import loads as loads_module
from runner.host.serving.cell import run_server_cell
from runner.host.serving.client import Target, fixed_length_fields, request_body
from runner.host.serving.launcher import device_groups, log_folder, plan_servers, server_argv, start, stop_all, wait_healthy
from runner.host.serving.loads import LAG_LIMIT_S, arrival_times, run_load, summarise, sweep_rates
from runner.host.serving.spec import CPU_CACHE, DEFAULT_ENGINE, ServerCellSpec, check_spec, default_engine, engine_kind

FAKE = Path(__file__).parent / "fixtures" / "fake_server.py"
FAKE_MODEL = Path(__file__).parent / "fixtures" / "fake_model"  # a folder with a config.json, as --model needs
PROMPTS = ("The King is dead.", "Call me Ishmael.")


def fake_engine(mode: str = "ok", *extra: str) -> str:
    return " ".join([sys.executable, str(FAKE), "--port {port} --model {model} --mode", mode, *extra])


def fake_spec(mode: str = "ok", *extra: str, **fields) -> ServerCellSpec:
    settings = dict(model=str(FAKE_MODEL), engine=fake_engine(mode, *extra), profile="synchronous", prompts=PROMPTS,
                    max_new_tokens=4, requests_per_load=3, warmup_requests=1, cooldown_requests=1,
                    health_timeout_s=30.0, request_timeout_s=10.0)
    settings.update(fields)
    return ServerCellSpec(**settings)


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def assert_gone(pids: list[int]) -> None:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {alive}"


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field, words", [
    ({"engine": "serve {model} --port {port} --gpu {gpu}"}, "engine", "{gpu}"),
    ({"engine": "serve {model}"}, "engine", "{port}"),
    ({"gpus": 2, "replicas": 1}, "gpus", "tp_size × replicas"),
    ({"profile": "burst"}, "profile", "synchronous"),
    ({"endpoint": "responses"}, "endpoint", "completions"),
    ({"prompts": ()}, "prompts", "at least one"),
    ({"profile": "constant", "rates": ()}, "rates", "at least one rate"),
    ({"profile": "poisson", "rates": (0.0,)}, "rates", "above 0"),
    ({"url": "localhost:8000"}, "url", "http://"),
    ({"requests_per_load": 0}, "requests_per_load", "at least 1"),
    ({"tp_size": 2, "gpus": 2}, "tp_size", "{tp}"),
])
def test_a_bad_setting_is_refused_naming_the_field(fields, field, words):
    with pytest.raises(ConfigError) as refused:
        check_spec(fake_spec(**fields))
    assert refused.value.field == field and words in refused.value.message


def test_a_bad_setting_ends_the_cell_as_failed_before_anything_starts():
    result = run_server_cell(fake_spec(engine="serve {model}"))
    assert result["status"] == "failed" and result["error"].startswith("engine:") and result["loads"] == []


def test_the_template_is_filled_word_by_word():
    argv = server_argv("python -m vllm.entrypoints.openai.api_server --model {model} --port {port} "
                       "--tensor-parallel-size {tp} --data-parallel-size {dp} --gpus={gpus}",
                       model="/models/my model", port=8123, tp=2, dp=3, gpus=6)
    assert argv[1:] == ["-m", "vllm.entrypoints.openai.api_server", "--model", "/models/my model", "--port", "8123",
                        "--tensor-parallel-size", "2", "--data-parallel-size", "3", "--gpus=6"]


def test_each_server_sees_its_own_block_of_the_visible_gpus():
    assert device_groups(4, 2, 8, "4,5,6,7") == ["4,5", "6,7"]
    assert device_groups(2, 2, 0, None) == [None, None]  # CPU: no CUDA_VISIBLE_DEVICES at all
    with pytest.raises(ConfigError, match="at most 2"):
        device_groups(4, 4, 2, None)


def test_replicas_are_servers_unless_the_template_takes_dp(tmp_path):
    spec = fake_spec(gpus=2, replicas=2)
    servers = plan_servers(spec, "m", 0, tmp_path)
    assert len(servers) == 2 and len({s.url for s in servers}) == 2
    one = plan_servers(replace(spec, engine=spec.engine + " --dp {dp}"), "m", 0, tmp_path)
    assert len(one) == 1 and one[0].argv[-2:] == ["--dp", "2"]


def test_engine_fields_fix_the_output_length_only_where_the_engine_takes_them():
    assert engine_kind(ServerCellSpec()) == "transformers"
    assert engine_kind(ServerCellSpec(engine="python3 -m vllm.entrypoints.openai.api_server --port {port}")) == "vllm"
    assert engine_kind(ServerCellSpec(engine="/opt/bin/sglang serve --port {port}")) == "sglang"
    assert engine_kind(fake_spec()) == "" and fixed_length_fields("", "chat", 8) == {}
    assert json.loads(fixed_length_fields("transformers", "completions", 8)["generation_config"]) == {"min_new_tokens": 8}
    chat = request_body(Target(["u"], "chat", "m", 8), "hi")
    assert "stream_options" not in chat and chat["messages"] == [{"role": "user", "content": "hi"}]


# --- profiles -------------------------------------------------------------------------------

def test_arrivals_follow_the_profile():
    assert arrival_times("constant", 4.0, 4, 0) == [0.0, 0.25, 0.5, 0.75]
    assert arrival_times("throughput", None, 3, 0) == [0.0, 0.0, 0.0]
    poisson = arrival_times("poisson", 2.0, 2001, seed=7)
    assert poisson == arrival_times("poisson", 2.0, 2001, seed=7) != arrival_times("poisson", 2.0, 2001, seed=8)
    assert 0.45 < poisson[-1] / 2000 < 0.55  # mean gap 1/R
    assert sweep_rates(1.0, 6.0, 4) == [2.0, 3.0, 4.0, 5.0]


def test_a_load_sent_late_is_flagged():
    records = [{"measured": True, "scheduled_s": 0.0, "sent_s": LAG_LIMIT_S * 2, "end_s": 1.0},
               {"measured": True, "scheduled_s": 0.5, "sent_s": 0.5, "end_s": 1.5}]
    load = summarise("constant", 2.0, 1, "t", records)
    assert load["client_lagged"] and load["max_client_lag_s"] == LAG_LIMIT_S * 2
    assert load["duration_s"] == pytest.approx(1.5 - LAG_LIMIT_S * 2)  # first measured send to last end


# --- against the fake server ------------------------------------------------------------------

def test_a_sweep_streams_and_times_every_request(tmp_path):
    events = []
    spec = fake_spec("ok", "--record", str(tmp_path / "bodies-{port}.jsonl"), profile="sweep", sweep_points=2)
    result = run_server_cell(spec, on_progress=events.append)
    assert result["status"] == "succeeded", result["error"]
    assert [load["profile"] for load in result["loads"]] == ["synchronous", "throughput", "constant", "constant"]
    sync_rate, most = (loads_module.achieved_rate(load) for load in result["loads"][:2])
    rates = [load["rate"] for load in result["loads"][2:]]
    assert rates == pytest.approx(sweep_rates(sync_rate, most, 2)) and sync_rate < rates[0] < rates[1]
    for load in result["loads"]:
        assert [r["measured"] for r in load["requests"]] == [False, True, True, True, False]
        assert load["duration_s"] > 0 and load["started_at"].endswith("+00:00")
        for r in load["requests"]:
            assert r["error"] is None and r["status"] == 200 and r["output_tokens"] == 4
            assert len(r["token_s"]) == 4 and r["output_text"] == "t0 t1 t2 t3 "
            assert r["scheduled_s"] <= r["sent_s"] < r["first_token_s"] == r["token_s"][0] <= r["token_s"][-1] <= r["end_s"]
            assert r["token_s"][-1] - r["token_s"][0] > 0.02  # one chunk at a time, not all at the end
    phases = [e["phase"] for e in events]
    assert phases[:2] == ["starting", "health"] and phases[-1] == "stopping"
    assert {"phase": "load", "profile": "synchronous", "rate": None, "done": 5, "total": 5} in events
    bodies = [json.loads(line) for f in tmp_path.glob("bodies-*.jsonl") for line in f.read_text().splitlines()]
    assert {b["body"]["model"] for b in bodies} == {str(FAKE_MODEL)}  # the name /v1/models lists
    assert all(b["body"]["stream_options"] == {"include_usage": True} for b in bodies)


def test_replicas_are_served_round_robin(tmp_path):
    spec = fake_spec("ok", "--record", str(tmp_path / "bodies-{port}.jsonl"), gpus=2, replicas=2,
                     profile="concurrency", concurrency=2, requests_per_load=4, warmup_requests=0, cooldown_requests=0)
    result = run_server_cell(spec)
    assert result["status"] == "succeeded", result["error"]
    assert len(result["url"].split(", ")) == 2
    assert sorted(len(f.read_text().splitlines()) for f in tmp_path.glob("bodies-*.jsonl")) == [2, 2]


def test_chat_streams_deltas_and_counts_chunks(tmp_path):
    spec = fake_spec("ok", "--record", str(tmp_path / "bodies.jsonl"), endpoint="chat")
    result = run_server_cell(spec)
    assert result["status"] == "succeeded", result["error"]
    request = result["loads"][0]["requests"][0]
    assert request["output_text"] == "t0 t1 t2 t3 " and request["output_tokens"] == 4 and request["prompt_tokens"] is None
    body = json.loads((tmp_path / "bodies.jsonl").read_text().splitlines()[0])
    assert body["path"] == "/v1/chat/completions" and "stream_options" not in body["body"]


def test_an_external_url_is_loaded_without_launching(tmp_path):
    servers = plan_servers(fake_spec(), "external-model", 0, tmp_path)
    start(servers[0])
    try:
        assert wait_healthy(servers, 30.0)
        result = run_server_cell(fake_spec(engine=None, url=servers[0].url + "/"))
    finally:
        stop_all(servers)
    assert result["status"] == "succeeded" and result["engine"] == "external" and result["url"] == servers[0].url
    assert len(result["loads"][0]["requests"]) == 5


def test_a_client_that_falls_behind_is_flagged(tmp_path, monkeypatch):
    servers = plan_servers(fake_spec(), "m", 0, tmp_path)
    start(servers[0])
    real_send = loads_module.send

    async def late_send(client, target, record, t0):
        time.sleep(LAG_LIMIT_S)  # blocks the event loop, as an overloaded client machine does
        return await real_send(client, target, record, t0)

    monkeypatch.setattr(loads_module, "send", late_send)
    try:
        wait_healthy(servers, 30.0)
        load, interrupted = run_load(Target([servers[0].url], "completions", "m", 2), "constant", rate=50.0,
                                     prompts=PROMPTS, measured=4)
    finally:
        stop_all(servers)
    assert interrupted is None and load["client_lagged"] and load["max_client_lag_s"] > 2 * LAG_LIMIT_S


# --- failures: each ends as failed with the log tail, and leaves no process --------------------

def test_a_server_that_fails_to_start(tmp_path):
    result = run_server_cell(fake_spec("fail"))
    assert result["status"] == "failed" and "exited with code 3 before it answered" in result["error"]
    assert "cannot load the model" in result["log_tail"]


def test_a_server_that_never_answers_health(tmp_path):
    pid_file = tmp_path / "pids"
    result = run_server_cell(fake_spec("unhealthy", "--child-pid", str(pid_file), health_timeout_s=1.0))
    assert result["status"] == "failed" and "did not answer /health within 1 s" in result["error"]
    assert "listening on" in result["log_tail"]
    assert_gone(pids_in(pid_file))


def test_a_server_that_dies_mid_load(tmp_path):
    pid_file = tmp_path / "pids"
    result = run_server_cell(fake_spec("die-after:2", "--child-pid", str(pid_file), requests_per_load=6))
    assert result["status"] == "failed" and "exited with code 1 during the synchronous load" in result["error"]
    assert "dying in the middle of a stream" in result["log_tail"]
    requests = result["loads"][0]["requests"]
    assert [r["error"] is None for r in requests[:2]] == [True, True] and requests[2]["error"] is not None
    assert_gone(pids_in(pid_file))


def test_a_server_that_answers_errors(tmp_path):
    pid_file = tmp_path / "pids"
    result = run_server_cell(fake_spec("error500", "--child-pid", str(pid_file)))
    assert result["status"] == "failed" and "5 of 5 requests of the synchronous load failed" in result["error"]
    assert "HTTP 500" in result["error"] and "a made-up 500" in result["log_tail"]
    assert result["loads"][0]["requests"][0]["status"] == 500
    assert_gone(pids_in(pid_file))


def test_stop_ends_the_load_and_the_server_promptly(tmp_path):
    pid_file = tmp_path / "pids"
    stop = threading.Event()
    events = []

    def on_progress(event):
        events.append(event)
        if event["phase"] == "health":  # the fake server answers well within this
            threading.Timer(2.0, stop.set).start()

    began = time.monotonic()
    result = run_server_cell(fake_spec("slow", "--child-pid", str(pid_file), max_new_tokens=50), on_progress, stop)
    assert result["status"] == "cancelled" and time.monotonic() - began < 15
    assert result["loads"][0]["requests"][0]["error"] == "cancelled by Stop"
    assert_gone(pids_in(pid_file))


def test_log_folder_is_removed(tmp_path, monkeypatch):
    made = []

    def folder():
        made.append(log_folder())
        return made[-1]

    monkeypatch.setattr("runner.host.serving.cell.log_folder", folder)
    run_server_cell(fake_spec())
    assert made and not made[0].exists()


def test_each_server_gets_its_gpus_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    servers = plan_servers(fake_spec(gpus=4, replicas=2, tp_size=2, engine=fake_engine() + " --tp {tp}"), "m", 4, tmp_path)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in servers] == ["0,1", "2,3"]
    assert all(s.env["HF_HUB_OFFLINE"] == "1" for s in servers)
    on_cpu = plan_servers(fake_spec(), "m", 0, tmp_path)[0]
    assert "CUDA_VISIBLE_DEVICES" not in on_cpu.env


def test_a_missing_engine_program_is_named(tmp_path):
    result = run_server_cell(fake_spec(engine="no-such-server-program --port {port}"))
    assert result["status"] == "failed" and "'no-such-server-program'" in result["error"]
    assert result["error"].startswith("engine:")


def test_a_bare_program_is_taken_from_the_studios_environment_first():
    argv = server_argv("python --port {port}", model="m", port=1, tp=1, dp=1, gpus=1)
    assert argv[0] == str(Path(sys.executable).parent / "python")


def test_an_arch_model_cannot_be_served():
    result = run_server_cell(fake_spec(model="arch:llama-2-7b"))
    assert result["status"] == "failed" and result["error"].startswith("model:") and "folder" in result["error"]


def test_poisson_loads_follow_their_seeded_arrivals():
    spec = fake_spec(profile="poisson", rates=(20.0, 40.0), seed=5, requests_per_load=4)
    result = run_server_cell(spec)
    assert result["status"] == "succeeded", result["error"]
    assert [(load["profile"], load["rate"], load["concurrency"]) for load in result["loads"]] == [
        ("poisson", 20.0, None), ("poisson", 40.0, None)]
    for index, load in enumerate(result["loads"]):
        expected = arrival_times("poisson", load["rate"], 6, seed=5 + index)
        assert [r["scheduled_s"] for r in load["requests"]] == pytest.approx(expected)
        assert all(r["sent_s"] >= r["scheduled_s"] for r in load["requests"])


def test_the_embedded_default_caps_its_cache_only_without_a_gpu():
    assert default_engine(0) == f"{DEFAULT_ENGINE} {CPU_CACHE}" and default_engine(2) == DEFAULT_ENGINE
