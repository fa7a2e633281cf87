"""Issue 27's hostile requests over raw HTTP against a live server: a grid of a
million combinations in two kilobytes, NaN and Infinity where gradio_client
cannot send them, `data: []`, and /list_sweeps' id under the name the rest use."""

from __future__ import annotations

import json
import time

import httpx
import psutil
import pytest
from conftest import find_free_port
from faultkit import assert_database_sound, store_earlier_run
from live_server import live_server

from db.store import Store

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
START = ["prompts", "preset", "model", "mode", "batch_size", "max_new_tokens", "fixed_length", "dtype", "gpu_counts",
         "repeats", "name", "prompts_format", "prompt_tokens", "num_prompts", "slo", "tp_size", "launch"]
DEFAULTS = ["hi", "", "tiny", "batched", 8, 8, False, "auto", "1", 1, "", "txt", "", None, "", "1", "shared"]


def call(http: httpx.Client, endpoint: str, body: str) -> tuple[str, object]:
    """('complete' or 'error', the data) of one call, the body sent as it is written."""
    answer = http.post(f"/gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    text = http.get(f"/gradio_api/call/{endpoint}/{answer.json()['event_id']}").text
    lines = text.splitlines()
    event = [line[len("event: "):] for line in lines if line.startswith("event: ")][-1]
    return event, json.loads([line[len("data: "):] for line in lines if line.startswith("data: ")][-1])


def start_body(**changes) -> str:
    data = list(DEFAULTS)
    for key, value in changes.items():
        data[START.index(key)] = value
    return json.dumps({"data": data}, allow_nan=True)


def upto(n: int) -> str:
    return ",".join(str(i) for i in range(1, n + 1))


def test_hostile_requests_get_clear_errors_and_the_server_stays_small(tmp_path):
    db_path = tmp_path / "studio.db"
    earlier = store_earlier_run(Store(db_path))
    with live_server(db_path, find_free_port(), tmp_path / "serve.log") as (url, proc), \
            httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        server = psutil.Process(proc.pid)
        call(http, "start_sweep", start_body(gpu_counts="0"))  # the handlers' imports, before the baseline
        before = server.memory_info().rss
        for grid in (dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(100)),
                     dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(200)),
                     dict(batch_size=upto(30_000)), dict(batch_size=upto(200_000))):
            began = time.monotonic()
            event, data = call(http, "start_sweep", start_body(**grid))
            assert event == "error" and ("grid: " in data["error"] or "batch_size: " in data["error"]), data
            assert time.monotonic() - began < 5
        grown = (server.memory_info().rss - before) / 2**20
        assert grown < 50, f"the server grew {grown:.0f} MB"

        for setting in ("batch_size", "max_new_tokens"):
            for bad in ("NaN", "Infinity", "-Infinity", "1e400"):
                body = start_body(**{setting: "BAD"}).replace('"BAD"', bad)
                event, data = call(http, "start_sweep", body)
                assert event == "error" and data["error"].startswith(f"{setting}: must be a whole number"), data
        for bad in ("Infinity", "-Infinity", "1.5"):
            event, data = call(http, "list_runs", '{"data": ["", "", %s, "", "", "", null, 100, "", ""]}' % bad)
            assert event == "error" and data["error"].startswith("batch_size: must be a whole number"), data
        for endpoint in ("get_run", "start_sweep", "list_sweeps", "predict", "sweep_status"):
            event, data = call(http, endpoint, '{"data": []}')
            assert event == "error" and data["error"].startswith(f"data: {endpoint} takes"), data
        event, data = call(http, "get_run", '{"data": ["\\uff11"]}')
        assert event == "error" and "digits 0-9" in data["error"], data

        event, sweeps = call(http, "list_sweeps", '{"data": [100]}')
        assert event == "complete" and sweeps == [[]]
        assert Store(db_path).list_sweeps() == [] and [r["id"] for r in Store(db_path).list_runs()] == [earlier["id"]]
    assert_database_sound(db_path, [earlier])


def test_list_sweeps_names_the_id_sweep_id(tmp_path):
    db_path = tmp_path / "studio.db"
    store = Store(db_path)
    sweep_id = store.create_sweep({"model": "tiny"}, [1], 1, status="succeeded")
    with live_server(db_path, find_free_port(), tmp_path / "serve.log") as (url, _), \
            httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        event, data = call(http, "list_sweeps", '{"data": [100]}')
    assert event == "complete"
    (listed,) = data[0]
    assert listed["sweep_id"] == listed["id"] == sweep_id  # `id` stays for clients written before
