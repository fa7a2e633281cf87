"""A hostile client against a live `studio serve`, for the reliability note.

    python -m bench.hostile [--rounds 4] [--json bench/results/hostile-DATE.json]

Starts a server on a fresh database holding one earlier run, then sends bounded
rounds of bad requests (ids and booleans that bend, wrong types, missing
arguments, server paths as uploads, NaN over raw HTTP) and injects faults
(Stop mid-run, a rank SIGKILLed, a run deleted while its sweep runs, a Stop followed
at once by a server SIGKILL and a restart on the same database). It also calls the
page's private events by name, by a private fn_index on a public route, and by queue
joins with values no component of theirs could send (issue 27 item 7), sends a body
past the guard's limit, and reads the database the moment a Stop is acknowledged.
It prints requests sent, faults injected, answers that were a bare "Error" or leaked
a server folder, private events that ran (or wrote anything), Stops not yet stored when
acknowledged or resumed after the kill, runs lost, processes left, and how much the
server grew on the huge grids of issue 27 (its RSS before and after them); it exits
non-zero if any of those counts is not 0 or the server grew 50 MB or more. With
--json it also writes those figures there. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.store import Store  # noqa: E402
from runner.result import RunResult  # noqa: E402

BENT = [
    ("/delete_runs", dict(run_ids=[61.9])), ("/delete_runs", dict(run_ids=[1e300])), ("/get_run", dict(run_id=1.5)),
    ("/get_run", dict(run_id=2**64)), ("/get_run", dict()), ("/get_run", dict(run_id="1 OR 1=1")),
    ("/sweep_status", dict(sweep_id=True)), ("/sweep_status", dict(sweep_id=[1])), ("/stop_sweep", dict(sweep_id=-1)),
    ("/export_runs", dict(run_ids=["1;DROP TABLE runs"])), ("/export_runs", dict(run_ids=[1], format="xml")),
    ("/start_sweep", dict(prompts="hi", fixed_length="false")), ("/start_sweep", dict(prompts=["hi"])),
    ("/start_sweep", dict(prompts="hi", gpu_counts={"n": 1})), ("/start_sweep", dict(prompts="hi", gpu_counts="0")),
    ("/start_sweep", dict(prompts="hi", model="/proc/self/cwd")), ("/start_sweep", dict(prompts="hi", model="-x")),
    ("/start_sweep", dict(prompts="hi", batch_size=True)), ("/start_sweep", dict(prompts="hi", repeats=1e9)),
    ("/list_runs", dict(limit="all")), ("/list_runs", dict(since="yesterday")), ("/analyse_sweep", dict(sweep_id=0)),
    ("/compare", dict(sweep_ids=[None])), ("/delete_runs", dict()),
    # issue 27: numbers that are not whole or not ASCII, /predict past the limits, an empty tp
    ("/list_runs", dict(batch_size=1.5)), ("/get_run", dict(run_id="\uff11")),
    ("/start_sweep", dict(prompts="hi", gpu_counts="\uff11,\uff12")),
    ("/start_sweep", dict(prompts="hi", batch_size="\u0661\u0666")),
    ("/start_sweep", dict(prompts="hi", tp="\u0662")), ("/start_sweep", dict(prompts="hi", tp=[])),
    ("/start_sweep", dict(prompts="hi", slo="ttft=\uff15,tpot=5")),
    ("/predict", dict(sweep_id=1, batch_size=1024, num_prompts=10**6, max_new_tokens=10**6)),
    ("/predict", dict(sweep_id=1, gpus="1,1")),
]
# NaN, ±Infinity and 1e400 written into the JSON itself, where gradio_client cannot send them
RAW = [("/start_sweep", "batch_size"), ("/start_sweep", "max_new_tokens"), ("/list_runs", "batch_size")]


def upto(n: int) -> str:
    return ",".join(str(i) for i in range(1, n + 1))


# the grids of issue 27 item 1: 873 characters asked for 10^6 combinations, 1.3 MB for a list scanned quadratically
HUGE_GRIDS = [dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(100)),
              dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(200)),
              dict(batch_size=upto(30_000)), dict(batch_size=upto(200_000))]


def call(http: httpx.Client, endpoint: str, values: dict) -> str:
    """One gradio API call over plain HTTP; returns the final SSE data (or the error body)."""
    return post(http, endpoint, body_of(endpoint, values))


def body_of(endpoint: str, values: dict) -> str:
    """The JSON body of a call: every parameter, `values` over the defaults."""
    names = {"/get_run": ["run_id"], "/sweep_status": ["sweep_id"], "/stop_sweep": ["sweep_id"],
             "/delete_runs": ["run_ids", "sweep_ids"], "/export_runs": ["run_ids", "sweep_ids", "format"],
             "/list_runs": ["model", "mode", "batch_size", "status", "since", "until", "sweep_id", "limit"],
             "/analyse_sweep": ["sweep_id", "compare_with"], "/compare": ["sweep_ids", "run_ids"],
             "/predict": ["sweep_id", "gpus", "batch_size", "num_prompts", "max_new_tokens"],
             "/start_sweep": ["prompts", "preset", "model", "mode", "batch_size", "max_new_tokens", "fixed_length",
                              "dtype", "gpu_counts", "repeats", "name", "prompts_format", "prompt_tokens",
                              "num_prompts", "slo", "tp", "launch"]}[endpoint]
    defaults = {"/start_sweep": ["", "", "tiny", "batched", 16, 8, False, "auto", "1", 1, "", "txt", "", None, "",
                                 "1", "shared"],
                "/predict": [None, "", None, None, None],
                "/list_runs": ["", "", None, "", "", "", None, 100], "/export_runs": [None, None, "csv"]}
    data = list(defaults.get(endpoint, [None] * len(names)))
    for key, value in values.items():
        data[names.index(key)] = value
    return json.dumps({"data": data}, allow_nan=True)


# values each kind of input on the page could never send (issue 27 item 7); a State is the server's own
HOSTILE_BY_KIND = {
    "checkbox": ["false", 1, [True]],
    "slider": [float("nan"), float("inf"), "1", True, [1]],
    "number": [float("nan"), float("-inf"), "1", True, {"id": 1}],
    "textbox": [1, [1], {"text": "x"}],
    "radio": [True, [1], {"id": 1}],
    "dropdown": [True, [[1]], {"id": 1}],
    "checkboxgroup": ["x", [{"id": 1}], 1.5],
    "file": ["/etc/passwd", {"path": 1}, [1]],
    "dataframe": ["x", {"data": "x"}, {"headers": ["a"], "data": [[{"a": 1}]]}],
}


def private_attacks(http: httpx.Client) -> tuple[int, int]:
    """Every private event of the page reached as no page would: by a private fn_index on a
    public route (must be 404) and by queue joins with a hostile value in one input (must be
    422). Returns (requests sent, calls that were not refused)."""
    config = http.get("/config").json()
    kinds = {c["id"]: c.get("type", "") for c in config["components"]}
    private = [d for d in config["dependencies"] if d.get("api_visibility", "public") != "public" and d["inputs"]]
    sent = through = 0
    for dep in private:
        for route in ("/gradio_api/run/get_run", "/gradio_api/api/get_run"):
            sent += 1
            through += http.post(route, json={"data": [1], "fn_index": dep["id"]}).status_code != 404
        for slot, component in enumerate(dep["inputs"]):
            for value in HOSTILE_BY_KIND.get(kinds.get(component, ""), []):
                data = [None] * len(dep["inputs"])
                data[slot] = value
                trigger = dep["targets"][0][0] if dep["targets"] else None
                body = json.dumps({"data": data, "fn_index": dep["id"], "trigger_id": trigger,
                                   "session_hash": f"hostile-{dep['id']}-{slot}", "event_data": None}, allow_nan=True)
                answer = http.post("/gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
                sent += 1
                through += answer.status_code != 422
    return sent, through


def oversize(http: httpx.Client) -> bool:
    """A queue join past the guard's 64 MiB: True when it was answered 413."""
    body = b'{"data": ["' + b"x" * (65 * 2**20) + b'"], "fn_index": 0}'
    try:
        return http.post("/gradio_api/queue/join", content=body,
                         headers={"content-type": "application/json"}).status_code == 413
    except httpx.HTTPError:  # the server may close the connection once it has refused
        return True


def start_server(db: Path, port: int, env: dict) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port), "--db", str(db)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.5)


def written(db: Path) -> tuple[int, int]:
    store = Store(db)
    return len(store.list_sweeps(limit=10**6)), len(store.list_runs(limit=10**6))


def post(http: httpx.Client, endpoint: str, body: str) -> str:
    answer = http.post(f"/gradio_api/call{endpoint}", content=body, headers={"content-type": "application/json"})
    if answer.status_code != 200:
        return answer.text
    return http.get(f"/gradio_api/call{endpoint}/{answer.json()['event_id']}").text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the figures to this file as well")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    db = folder / "studio.db"
    store = Store(db)
    config = {"model": "tiny", "mode": "batched", "batch_size": 1, "max_new_tokens": 1, "gpus_per_node": 1,
              "prompts": ["kept"]}
    earlier = store.create_run(config)
    store.finish_run(earlier, RunResult(status="succeeded", config=config, world_size=1, tokens=1, raw_tokens=1,
                                        seconds=1.0, tokens_per_second=1.0))
    port = 20000 + os.getpid() % 20000
    env = {**os.environ, "STUDIO_HOME": str(folder / "home"), "STUDIO_HARDWARE_LOCK": str(folder / "hw.lock")}
    server = start_server(db, port, env)
    servers = [server.pid]
    requests = faults = bare = leaks = private_ran = forgotten = oversize_passed = 0
    grown = peak_rss = slowest = 0.0
    private = [str(ROOT), str(folder), os.path.expanduser("~"), sys.prefix]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            def check(text: str) -> None:
                nonlocal requests, bare, leaks
                requests += 1
                if "event: error" in text:  # a refusal must say what was wrong, not a bare "Error"
                    data = json.loads(text.split("data: ", 1)[1].strip() or "null")
                    bare += not (isinstance(data, dict) and data.get("error"))
                leaks += any(p in text for p in private)

            for round_ in range(args.rounds):
                for endpoint, values in BENT:
                    check(call(http, endpoint, values))
                for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
                    check(post(http, "/get_run", '{"data": [%s]}' % bad))
                    for endpoint, name in RAW:
                        check(post(http, endpoint, body_of(endpoint, {name: "BAD"}).replace('"BAD"', bad)))
                for endpoint in ("/get_run", "/start_sweep", "/list_sweeps", "/predict"):
                    check(post(http, endpoint, '{"data": []}'))
                # the memory attack: the server's RSS before and after the huge grids, within 50 MB
                before = psutil.Process(server.pid).memory_info().rss
                for grid in HUGE_GRIDS:
                    began = time.monotonic()
                    check(call(http, "/start_sweep", dict(prompts="hi", **grid)))
                    slowest = max(slowest, time.monotonic() - began)
                grown = max(grown, (psutil.Process(server.pid).memory_info().rss - before) / 2**20)
                peak_rss = max(peak_rss, psutil.Process(server.pid).memory_info().rss / 2**20)
                # the page's private events, by name: refused before gradio runs them (issue 27 item 7)
                for name, data in (("add_reference", [None, None]), ("open_run", [1.5])):
                    answer = http.post(f"/gradio_api/call/{name}", json={"data": data})
                    requests += 1
                    private_ran += answer.status_code != 404
                before_attacks = written(db)
                sent, through = private_attacks(http)
                requests += sent
                private_ran += through + (written(db) != before_attacks)
                requests += 1
                oversize_passed += not oversize(http)
                peak_rss = max(peak_rss, psutil.Process(server.pid).memory_info().rss / 2**20)
                # faults: a sweep stopped mid-run, a rank killed, a run deleted while its sweep runs
                answer = call(http, "/start_sweep", dict(
                    prompts="\n".join(["Call me Ishmael."] * 8), gpu_counts="1,2", max_new_tokens=8,
                    batch_size=1, repeats=2))
                started = json.loads(answer.split("data: ")[-1])
                if not isinstance(started, list):
                    raise SystemExit(f"the fault sweep was refused: {answer[:500]}")
                started = started[0]
                requests += 1
                sweep = started["sweep_id"]
                time.sleep(1.5)
                kind = round_ % 4
                if kind == 0:
                    check(call(http, "/stop_sweep", dict(sweep_id=sweep)))
                    # what a server killed right now would restart from (issue 27 item 2)
                    forgotten += Store(db).get_sweep(sweep)["status"] == "running"
                elif kind == 1:
                    deadline = time.monotonic() + 60
                    ranks = []
                    while not ranks and time.monotonic() < deadline:
                        ranks = [p for p in psutil.Process(server.pid).children(recursive=True)
                                 if "worker.py" in " ".join(p.cmdline())]
                        time.sleep(0.2)
                    for rank in ranks[:1]:
                        rank.send_signal(signal.SIGKILL)
                elif kind == 3:
                    # Stop, SIGKILL the server the moment it answers, restart on the same database
                    deadline = time.monotonic() + 60
                    under_way: list[int] = []
                    while not under_way and time.monotonic() < deadline:
                        status = json.loads(call(http, "/sweep_status", dict(sweep_id=sweep)).split("data: ")[-1])[0]
                        under_way = [r["run_id"] for r in status["runs"] if r["status"] == "running"]
                        time.sleep(0.2)
                    check(call(http, "/stop_sweep", dict(sweep_id=sweep)))
                    server.kill()
                    server.wait(30)
                    faults += 1
                    server = start_server(db, port, env)
                    servers.append(server.pid)
                    settle = time.monotonic() + 10
                    while time.monotonic() < settle:
                        runs = Store(db).list_runs(sweep_id=sweep)
                        resumed = Store(db).get_sweep(sweep)["status"] == "running" or any(
                            r["status"] == "succeeded" or (r["status"] == "running" and r["id"] not in under_way)
                            for r in runs)
                        if resumed:
                            break
                        time.sleep(0.5)
                    forgotten += resumed
                else:
                    done = []
                    deadline = time.monotonic() + 120
                    while not done and time.monotonic() < deadline:
                        status = json.loads(call(http, "/sweep_status", dict(sweep_id=sweep)).split("data: ")[-1])[0]
                        done = [r["run_id"] for r in status["runs"] if r["status"] == "succeeded"]
                        time.sleep(0.5)
                    if done:
                        check(call(http, "/delete_runs", dict(run_ids=done[:1])))
                faults += 1
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    text = call(http, "/sweep_status", dict(sweep_id=sweep))
                    check(text)
                    if '"finished": true' in text:
                        break
                    time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    owners = {str(pid) for pid in servers}
    time.sleep(3)  # the ranks' owner watch polls once a second
    left = [p.pid for p in psutil.process_iter(["environ"])
            if (p.info.get("environ") or {}).get("STUDIO_OWNER_PID") in owners]
    kept = Store(db).get_run(earlier)
    lost = 0 if kept and kept["status"] == "succeeded" and kept["tokens"] == 1 else 1
    integrity = Store(db).integrity()
    print(f"requests {requests}, faults injected {faults}, bare errors {bare}, answers naming a server folder {leaks}, "
          f"private events that ran {private_ran}, bodies past 64 MiB not refused {oversize_passed}, "
          f"Stops not stored when acknowledged or resumed after a kill {forgotten}, "
          f"runs lost {lost}, processes left {len(left)}, integrity {integrity}; huge grids: the server grew "
          f"{grown:.1f} MB at most (limit 50), slowest refusal {slowest:.2f} s, peak RSS {peak_rss:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({
            "command": f"python -m bench.hostile --rounds {args.rounds}", "requests": requests,
            "faults_injected": faults, "bare_errors": bare, "answers_naming_a_server_folder": leaks,
            "private_events_that_ran": private_ran, "oversize_bodies_not_refused": oversize_passed,
            "stops_forgotten": forgotten, "runs_lost": lost, "processes_left": len(left), "integrity": integrity,
            "huge_grids_rss_growth_mb": round(grown, 1), "slowest_refusal_s": round(slowest, 2),
            "server_peak_rss_mb": round(peak_rss), "servers_started": len(servers)}, indent=2) + "\n")
    bad_counts = bare or leaks or private_ran or forgotten or lost or left or oversize_passed
    return 0 if not bad_counts and integrity == "ok" and grown < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
