"""The web server against hostile clients, over real HTTP: files it must never
serve, hostile inputs through gradio_client, oversize uploads, where it listens,
and what it takes to get in when auth is on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pytest
from conftest import ROOT, beyond_the_cap, find_free_port
from faultkit import assert_database_sound, store_earlier_run
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from db.store import Store
from runner.config import LIMITS
from runner.paths import models_dir, runs_dir
from studio.web.plotly_script import PLOTLY_PATH

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # live servers
AUTH = ("ada", "correct-horse-battery")


class Server:
    def __init__(self, db_path: Path, *args: str):
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio", "serve", "--port", str(self.port), "--db", str(db_path), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.stdout = ""

    def wait_ready(self, timeout: float = 90) -> "Server":
        deadline = time.monotonic() + timeout
        while "serving on" not in self.stdout:
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, f"the server exited: {self.proc.stderr.read()}"
            self.stdout += line
            assert time.monotonic() < deadline, "the server did not start in time"
        return self

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the server did not stop on SIGTERM within 30 s") from None
        return self.proc.returncode


@pytest.fixture(scope="module")
def served(tmp_path_factory, studio_home):
    """A default server (127.0.0.1, no auth) on a database holding one earlier run,
    next to files it must never serve."""
    folder = tmp_path_factory.mktemp("served")
    db_path = folder / "studio.db"
    earlier = store_earlier_run(Store(db_path))
    secrets = {
        "database": db_path,
        "run folder": runs_dir() / "run-999" / "job.json",
        "model cache": models_dir() / "secret-model" / "config.json",
        "passwd": Path("/etc/passwd"),
    }
    for name, path in secrets.items():
        if name in ("run folder", "model cache"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('{"secret": "do not serve"}')
    server = Server(db_path).wait_ready()
    yield server, db_path, earlier, secrets
    server.stop()


def _forbidden(response: httpx.Response) -> bool:
    return response.status_code in (403, 404) and "do not serve" not in response.text and "root:" not in response.text


def test_the_database_run_folders_model_caches_and_system_files_are_never_served(served):
    server, db_path, _, secrets = served
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/").status_code == 200  # the server answers at all
        for name, path in secrets.items():
            for url in (f"/gradio_api/file={path}", f"/file={path}", f"/gradio_api/file={quote(str(path), safe='')}",
                        f"/gradio_api/file={path.parent}/./{path.name}"):
                response = http.get(url)
                assert _forbidden(response), f"{name} served at {url}: {response.status_code}"
        for wal in (f"{db_path}-wal", f"{db_path}-shm"):
            assert _forbidden(http.get(f"/gradio_api/file={wal}"))
        for sneaky in ("/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                       "/gradio_api/file=//etc/passwd", "/gradio_api/file=/etc/../etc/passwd",
                       f"/gradio_api/file={ROOT / 'pyproject.toml'}"):
            assert _forbidden(http.get(sneaky)), sneaky


HOSTILE_API = [
    (dict(max_new_tokens=10**9), "max new tokens"),
    (dict(prompts="x" * (LIMITS["prompt_chars"] + 1)), "prompts"),
    (dict(prompts="\n".join(["Call me Ishmael."] * (LIMITS["num_prompts"] + 1))), "prompts"),
    (dict(model="--trust_remote_code"), "starts with '-'"),
    (dict(model="; rm -rf ~"), "characters a model id cannot have"),
    (dict(model="../../etc"), "no config.json"),
    (dict(batch_size=10**6), "batch size"),
    (dict(gpu_counts=f"1,{beyond_the_cap()}"), "allows at most"),
    (dict(repeats=10**4), "repeats"),
]


def test_hostile_inputs_through_gradio_client_are_refused_and_nothing_runs(served):
    server, db_path, earlier, _ = served
    client = Client(server.url, verbose=False)
    for inputs, words in HOSTILE_API:
        values = {"prompts": "Call me Ishmael.", **inputs}
        with pytest.raises(AppError) as refused:
            client.predict(**values, api_name="/start_sweep")
        message = str(refused.value)
        assert words in message.replace("_", " "), f"{list(inputs)}: {message[:300]}"
        assert "Traceback" not in message
    # no server folder in what a remote user reads
    with pytest.raises(Exception) as refused:
        client.predict(prompts="Call me Ishmael.", model="org/not-cached", api_name="/start_sweep")
    for private in (os.path.expanduser("~"), str(ROOT), os.environ["STUDIO_HOME"]):
        assert private not in str(refused.value)
    runs = client.predict(api_name="/list_runs")
    assert [r["id"] for r in runs] == [earlier["id"]]  # nothing stored, nothing lost
    assert psutil.Process(server.proc.pid).children(recursive=True) == []  # nothing launched
    assert_database_sound(db_path, [earlier])


BENT_ARGUMENTS = [
    ("/delete_runs", dict(run_ids=[61.9]), "run_ids: must be a whole number, got 61.9"),
    ("/get_run", dict(run_id=1.5), "run_id: must be a whole number, got 1.5"),
    ("/get_run", dict(run_id=2**64), "run_id: must be at most"),
    ("/get_run", dict(), "run_id: is missing"),
    ("/sweep_status", dict(sweep_id=True), "sweep_id: must be a whole number, got True"),
    ("/export_runs", dict(run_ids=["1; DROP TABLE runs"]), "run_ids: must be a whole number"),
    ("/start_sweep", dict(prompts="Call me Ishmael.", fixed_length="false"), "fixed_length: must be true or false"),
    ("/start_sweep", dict(prompts=["Call me Ishmael."]), "prompts: must be text"),
    ("/start_sweep", dict(prompts="Call me Ishmael.", gpu_counts={"n": 1}), "gpus: write GPU counts"),
    ("/list_runs", dict(limit="all"), "limit: must be a whole number"),
    ("/analyse_sweep", dict(sweep_id=-3), "sweep_id: must be at least 1"),
]


def test_ids_and_booleans_that_bend_are_refused_with_the_argument_named(served):
    server, db_path, earlier, _ = served
    client = Client(server.url, verbose=False)
    for endpoint, values, words in BENT_ARGUMENTS:
        with pytest.raises(AppError) as refused:
            client.predict(**values, api_name=endpoint)
        assert words in str(refused.value), f"{endpoint} {values}: {str(refused.value)[:300]}"
    # NaN and infinity are not JSON, so they go over raw HTTP as a client could send them
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for bad in ("NaN", "Infinity"):
            response = http.post("/gradio_api/call/get_run", content='{"data": [%s]}' % bad,
                                 headers={"content-type": "application/json"})
            event = response.json().get("event_id")
            answer = http.get(f"/gradio_api/call/get_run/{event}").text if event else response.text
            assert "run_id: must be a whole number" in answer, answer[:300]
    assert [r["id"] for r in client.predict(api_name="/list_runs")] == [earlier["id"]]
    assert_database_sound(db_path, [earlier])


def test_a_server_file_sent_as_an_upload_is_refused_without_naming_folders(served):
    server, db_path, earlier, secrets = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        config = http.get("/config").json()
        components = {c["id"]: c for c in config["components"]}
        run_button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "run-button")
        index, event = next((i, d) for i, d in enumerate(config["dependencies"])
                            if any(t[0] == run_button for t in d["targets"]))
        for path in (db_path, secrets["model cache"], Path("/etc/passwd")):
            data = [{"path": str(path), "meta": {"_type": "gradio.FileData"}, "orig_name": "prompts.txt"}
                    if components[c]["type"] == "file" else components[c].get("props", {}).get("value")
                    for c in event["inputs"]]
            response = http.post("/gradio_api/queue/join", json={
                "data": data, "fn_index": event.get("id", index), "session_hash": "hostile", "trigger_id": run_button})
            # refused at the join, before any handler runs (issue 24 removed the validator that used to
            # make gradio refuse it there itself): studio.web.http_guard checks the file is an upload
            assert response.status_code == 422, response.text
            assert "prompt_file: this file is not allowed" in response.text
            for private in (str(db_path.parent), os.environ["STUDIO_HOME"], os.path.expanduser("~"), "blocked"):
                assert private not in response.text, response.text
        # control: the same join with a file the page uploaded is taken (its handler then refuses the
        # max new tokens of 0, so the module's server starts no sweep)
        uploaded = http.post("/gradio_api/upload", files={"files": ("p.txt", b"Call me Ishmael.\n", "text/plain")})
        data = [{"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "p.txt"}
                if components[c]["type"] == "file" else
                "0" if components[c].get("props", {}).get("elem_id") == "max-new-tokens" else
                components[c].get("props", {}).get("value") for c in event["inputs"]]
        response = http.post("/gradio_api/queue/join", json={
            "data": data, "fn_index": event.get("id", index), "session_hash": "uploader", "trigger_id": run_button})
        assert response.status_code == 200, response.text
    assert_database_sound(db_path, [earlier])


def test_uploads_over_max_file_size_are_refused(served):
    server, *_ = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        small = http.post("/gradio_api/upload", files={"files": ("p.txt", b"Call me Ishmael.\n", "text/plain")})
        assert small.status_code == 200
        # control: the file route does serve what gradio itself received, so the 403s elsewhere are real refusals
        uploaded = small.json()[0]
        assert http.get(f"/gradio_api/file={uploaded}").text == "Call me Ishmael.\n"
        big = http.post("/gradio_api/upload",
                        files={"files": ("p.txt", b"x" * (21 * 2**20), "text/plain")})
        assert big.status_code == 413, big.status_code


def test_listens_on_loopback_only_by_default(served):
    server, *_ = served
    addresses = {c.laddr.ip for c in psutil.Process(server.proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
    assert addresses == {"127.0.0.1"}


def test_another_address_without_auth_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "studio", "serve", "--host", "0.0.0.0", "--port",
                           str(find_free_port()), "--db", str(tmp_path / "x.db")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--auth" in proc.stderr and "--insecure" in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_insecure_serves_off_loopback_with_a_warning_and_stops_cleanly(tmp_path):
    server = Server(tmp_path / "x.db", "--host", "0.0.0.0", "--insecure")
    try:
        server.wait_ready()
        assert "without a password" in _stderr_so_far(server)
        assert httpx.get(server.url + "/", timeout=10).status_code == 200
    finally:
        assert server.stop() == 0


def _stderr_so_far(server: Server) -> str:
    os.set_blocking(server.proc.stderr.fileno(), False)
    return server.proc.stderr.read() or ""


def test_with_auth_on_nobody_gets_in_without_the_password(tmp_path):
    db_path = tmp_path / "auth.db"
    earlier = store_earlier_run(Store(db_path))
    server = Server(db_path, "--host", "0.0.0.0", "--auth", ":".join(AUTH)).wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for url in ("/gradio_api/info", "/config", f"/gradio_api/file={db_path}", "/gradio_api/file=/etc/passwd",
                        PLOTLY_PATH):
                response = http.get(url)
                assert response.status_code in (401, 403), f"{url}: {response.status_code}"
                assert "root:" not in response.text and "do not serve" not in response.text
            assert http.post("/login", data={"username": AUTH[0], "password": "wrong"}).status_code in (400, 401)
        with pytest.raises(AuthenticationError):
            Client(server.url, verbose=False).predict(api_name="/list_runs")
        authed = Client(server.url, auth=AUTH, verbose=False)
        assert [r["id"] for r in authed.predict(api_name="/list_runs")] == [earlier["id"]]
        with httpx.Client(base_url=server.url, timeout=10) as http:  # logged in, files are still refused
            assert http.post("/login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200
            assert _forbidden(http.get(f"/gradio_api/file={db_path}"))
            assert http.get(PLOTLY_PATH).text.startswith("/**\n* plotly.js v")  # the page's one copy, logged in
    finally:
        server.stop()
    assert_database_sound(db_path, [earlier])
