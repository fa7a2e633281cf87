"""One server cell from start to end: launch the servers (unless the cell names a
URL), wait for them, run the load profile, and end their process trees whatever
happens (issue 26). The record it returns is the contract with the studio side.

A cell fails, with the servers' log tail, when a server does not start or answer
in time, dies during a load, or answers any request with an error; the loads
measured before the failure stay in the record. Stop ends it as cancelled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from runner.config import ConfigError
from runner.host.hardware import detect
from runner.host.serving.client import Target, fixed_length_fields
from runner.host.serving.launcher import (
    ServerFailed,
    any_dead,
    log_folder,
    log_tails,
    plan_servers,
    served_model_name,
    start,
    stop_all,
    wait_healthy,
)
from runner.host.serving.loads import achieved_rate, run_load, sweep_rates
from runner.host.serving.spec import ServerCellSpec, check_spec, default_engine, engine_kind
from runner.models import resolve_model

TINY_BUILD_TIMEOUT_S = 600


def served_model(model: str) -> str:
    """What a server is given as {model}: the folder of tiny or of a local model, or a
    cached hub id. tiny is built here first, in a child process: the studio's own
    process never imports torch."""
    spec = resolve_model(model)
    if spec.kind == "arch":
        raise ConfigError("model", f"{model} has random weights made inside a run and no folder a server can "
                          "load; serve tiny, a model folder or a cached hub id")
    if spec.kind == "tiny":
        build = ("from runner.tiny import ensure_tiny; from runner.models import tiny_path; ensure_tiny(tiny_path())")
        # the folder that holds `runner`, for a studio run from a checkout rather than installed
        root = str(Path(__file__).resolve().parents[3])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", build], capture_output=True, text=True, env=env,
                              timeout=TINY_BUILD_TIMEOUT_S)
        if done.returncode != 0:
            raise ServerFailed(f"could not build the tiny model: {done.stderr[-1000:]}")
    return spec.path if spec.kind in ("tiny", "local") else spec.name


def _loads_of(spec: ServerCellSpec):
    """(kind, rate) of each load, the sweep's rates chosen as its first two loads end."""
    if spec.profile == "sweep":
        sync = yield ("synchronous", None)
        most = yield ("throughput", None)
        for rate in sweep_rates(achieved_rate(sync), achieved_rate(most), spec.sweep_points):
            yield ("constant", rate)
    elif spec.profile in ("constant", "poisson"):
        for rate in spec.rates:
            yield (spec.profile, float(rate))
    else:
        yield (spec.profile, None)


def _failure(load: dict, kind: str, rate: float | None) -> str | None:
    failed = [r for r in load["requests"] if r["error"] is not None]
    if not failed:
        return None
    at = f" at {rate:.3g} req/s" if rate is not None else ""
    return (f"{len(failed)} of {len(load['requests'])} requests of the {kind} load{at} failed; "
            f"the first: {failed[0]['error']}")


def run_load_profile(spec: ServerCellSpec, target: Target, result: dict, progress: Callable[[dict], None],
                     stop: threading.Event | None, check: Callable[[], str | None] | None) -> None:
    """Runs the profile's loads into result['loads'], setting status and error."""
    plan = _loads_of(spec)
    step = next(plan)
    while True:
        kind, rate = step

        def on_done(done: int, total: int, kind=kind, rate=rate) -> None:
            progress({"phase": "load", "profile": kind, "rate": rate, "done": done, "total": total})

        load, interrupted = run_load(target, kind, rate=rate, concurrency=spec.concurrency, prompts=spec.prompts,
                                     measured=spec.requests_per_load, warmup=spec.warmup_requests,
                                     cooldown=spec.cooldown_requests, seed=spec.seed + len(result["loads"]),
                                     stop=stop, check=check, on_done=on_done)
        result["loads"].append(load)
        if interrupted is None and check is not None:
            interrupted = check()  # a server that died is the cause of the refused connections that followed
        if interrupted == "cancelled":
            result["status"] = "cancelled"
            return
        if interrupted:
            result["error"] = f"{interrupted} during the {kind} load"
            return
        result["error"] = _failure(load, kind, rate)
        if result["error"]:
            return
        try:
            step = plan.send(load)
        except StopIteration:
            result["status"] = "succeeded"
            return


def run_server_cell(spec: ServerCellSpec, on_progress: Callable[[dict], None] | None = None,
                    stop: threading.Event | None = None) -> dict:
    """Runs one cell; never raises for a bad setting or a failing server (the record says
    status 'failed' and why) and never leaves a server process behind."""
    progress = on_progress or (lambda _event: None)
    result = {"status": "failed", "error": None, "log_tail": "",
              "engine": spec.template if spec.url is None else (spec.engine or "external"),
              "url": spec.url or "", "gpus": spec.gpus, "tp_size": spec.tp_size, "replicas": spec.replicas,
              "endpoint": spec.endpoint, "loads": []}
    servers, log_dir = [], None
    try:
        check_spec(spec)
        progress({"phase": "starting", "rate": None, "done": 0, "total": 0})
        if spec.url is not None:
            urls = [spec.url.rstrip("/")]
            result["url"] = urls[0]
            model_name = served_model_name(urls[0], spec.model)
            check = None
        else:
            if spec.engine is None:
                spec = replace(spec, engine=default_engine(detect().gpu_count))
                result["engine"] = spec.engine
            model = served_model(spec.model)
            log_dir = log_folder()
            servers = plan_servers(spec, model, detect().gpu_count, log_dir)
            for server in servers:
                start(server)
            progress({"phase": "health", "rate": None, "done": 0, "total": len(servers)})
            if not wait_healthy(servers, spec.health_timeout_s, stop):
                result["status"] = "cancelled"
                return result
            urls = [server.url for server in servers]
            result["url"] = ", ".join(urls)
            model_name = served_model_name(urls[0], model)

            def check() -> str | None:
                dead = any_dead(servers)
                return f"the server at {dead.url} exited with code {dead.exit_code()}" if dead else None

        target = Target(urls, spec.endpoint, model_name, spec.max_new_tokens,
                        fixed_length_fields(engine_kind(spec), spec.endpoint, spec.max_new_tokens),
                        spec.request_timeout_s)
        run_load_profile(spec, target, result, progress, stop, check)
    except (ConfigError, ServerFailed) as exc:
        result["status"], result["error"] = "failed", str(exc)
    except Exception as exc:  # a cell's failure is a record, never a crash of the studio's queue
        result["status"], result["error"] = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        if servers:
            progress({"phase": "stopping", "rate": None, "done": 0, "total": len(servers)})
            stop_all(servers)
            result["log_tail"] = log_tails(servers)
        if log_dir is not None:
            shutil.rmtree(log_dir, ignore_errors=True)
    return result
