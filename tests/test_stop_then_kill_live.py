"""Issue 27 item 2 end to end: a real server acknowledges a Stop, is SIGKILLed at
once, and a server restarted on the same database must not resume the stopped
sweep, nor leave any process of it behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from conftest import CPU_ONLY_ENV, ROOT, SHORT_PROMPTS, find_free_port
from faultkit import assert_no_leftovers
from live_server import live_server, wait_until_up

from db.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

START = ["", "", "tiny", "batched", 1, 8, False, "auto", "1", 3, "", "txt", "", None, "", "1", "shared"]


def call(http: httpx.Client, endpoint: str, data: list):
    answer = http.post(f"/gradio_api/call{endpoint}", json={"data": data})
    assert answer.status_code == 200, answer.text
    text = http.get(f"/gradio_api/call{endpoint}/{answer.json()['event_id']}").text
    assert "event: complete" in text, f"{endpoint}: {text[:500]}"
    return json.loads(text.split("data: ")[-1])[0]


def test_a_stop_acknowledged_just_before_a_server_sigkill_is_not_resumed(tmp_path, monkeypatch):
    db_path = tmp_path / "studio.db"
    # each batch held 2 s: the run is still generating when Stop comes, and more runs wait behind it
    env = {**os.environ, **CPU_ONLY_ENV, "STUDIO_TEST_PAUSE_BATCH": "2"}
    port = find_free_port()
    with open(tmp_path / "first.log", "w") as out:
        first = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port), "--db", str(db_path)],
                                 cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", first, tmp_path / "first.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            started = call(http, "/start_sweep", ["\n".join(SHORT_PROMPTS[:4]), *START[1:]])
            sweep = started["sweep_id"]
            deadline = time.monotonic() + 120
            under_way = []
            while not under_way:
                assert time.monotonic() < deadline, "no run of the sweep started within 120 s"
                time.sleep(0.3)
                runs = call(http, "/sweep_status", [sweep])["runs"]
                under_way = [r["run_id"] for r in runs if r["status"] == "running"]
            assert call(http, "/stop_sweep", [sweep])["stopped"] is True
        first.kill()  # SIGKILL the moment the acknowledgement arrived: no clean-up runs
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    monkeypatch.setenv("STUDIO_TEST_PAUSE_BATCH", "0.2")
    with live_server(db_path, find_free_port(), tmp_path / "second.log") as (_url, second):
        # a restart adopts orphans at start-up; give it time to (wrongly) resume and start a run
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            runs = Store(db_path).list_runs(sweep_id=sweep)
            assert Store(db_path).get_sweep(sweep)["status"] != "running", \
                f"the restarted server resumed the stopped sweep: {[(r['id'], r['status']) for r in runs]}"
            # the run under way at the kill stays `running` until the restart marks it interrupted
            ran = [r for r in runs if r["status"] == "succeeded" or (r["status"] == "running" and r["id"] not in under_way)]
            assert not ran, \
                f"a run of the stopped sweep ran after the restart: {[(r['id'], r['status']) for r in runs]}"
            time.sleep(0.5)
        assert_no_leftovers(owner_pids=[first.pid, second.pid], timeout=15)
    sweep_row = Store(db_path).get_sweep(sweep)
    assert sweep_row["status"] == "cancelled", sweep_row["status"]
    runs = Store(db_path).list_runs(sweep_id=sweep)
    assert len(runs) == 3 and {r["status"] for r in runs} <= {"cancelled", "interrupted"}, \
        [(r["id"], r["status"]) for r in runs]
