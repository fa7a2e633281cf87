"""Serving options and the page's private events, against live servers (issue 27
items 7 and 8): private events are not callable by name, `--host ::1` serves,
a blank --auth is refused, and with --auth the heartbeat needs a login."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from conftest import ROOT, find_free_port, run_cli
from faultkit import assert_database_sound, store_earlier_run

from db.store import Store

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # live servers
AUTH = "ada:correct-horse-battery"


def _serve(db_path, *args):
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port), "--db", str(db_path), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, deadline = "", time.monotonic() + 90
    while "serving on" not in seen:
        line = proc.stdout.readline()
        seen += line
        assert line or proc.poll() is None, f"the server exited:\n{seen}"
        assert time.monotonic() < deadline, f"the server did not start in time:\n{seen}"
    return proc, port, seen


def _stop(proc) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=45)
    assert proc.returncode == 0, out
    return out


def test_private_events_cannot_be_called_by_name(tmp_path):
    db_path = tmp_path / "studio.db"
    earlier = store_earlier_run(Store(db_path))
    proc, port, _ = _serve(db_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            named = {e.lstrip("/") for e in http.get("/gradio_api/info").json()["named_endpoints"]}
            assert "list_runs" in named and "add_reference" not in named
            for name, data in (("add_reference", [None, None]), ("add_reference_1", [None]), ("open_run", [1.5])):
                for prefix in ("/gradio_api/call/", "/gradio_api/call/v2/", "/gradio_api/run/", "/gradio_api/api/"):
                    response = http.post(prefix + name, json={"data": data} if "v2" not in prefix else {})
                    assert response.status_code == 404, f"{prefix}{name}: {response.status_code} {response.text[:200]}"
                    assert "not part of the studio's API" in response.text
            # the public API still answers
            args = ["", "", None, "", "", "", None, 100, "", ""]
            event = http.post("/gradio_api/call/list_runs", json={"data": args}).json()["event_id"]
            assert f'"id": {earlier["id"]}' in http.get(f"/gradio_api/call/list_runs/{event}").text
    finally:
        _stop(proc)
    store = Store(db_path)
    assert [s for s in store.list_sweeps()] == [], "a private event wrote sweeps"
    assert_database_sound(db_path, [earlier])


@pytest.mark.parametrize("auth", [" : ", "ada: ", " :pw", "ada:"])
def test_a_blank_user_or_password_is_refused(tmp_path, auth):
    done = run_cli("serve", "--auth", auth, "--port", str(find_free_port()), "--db", str(tmp_path / "s.db"), timeout=60)
    assert done.returncode == 2 and "must not be blank" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_ipv6_loopback_with_auth_serves_and_the_heartbeat_needs_a_login(tmp_path):
    db_path = tmp_path / "studio.db"
    proc, port, seen = _serve(db_path, "--host", "::1", "--auth", AUTH)
    try:
        assert f"http://[::1]:{port}" in seen
        with httpx.Client(base_url=f"http://[::1]:{port}", timeout=10) as http:
            response = http.get("/gradio_api/heartbeat/x")  # answered at once, not held open
            assert response.status_code in (401, 403), response.status_code
            assert http.post("/login", data=dict(zip(("username", "password"), AUTH.split(":")))).status_code == 200
            with http.stream("GET", "/gradio_api/heartbeat/x") as logged_in:
                assert logged_in.status_code == 200
    finally:
        out = _stop(proc)
    assert "Traceback" not in out and "InvalidURL" not in out, out
