"""Starting the servers of a cell from a command template, waiting for them to
answer, and ending their whole process trees (issue 26).

Each server runs in a session of its own (its own process group), writes its
output to a log file the studio keeps the tail of, and is ended with
`runner.processes.kill_tree`: the group, then every descendant still alive.
One server per replica unless the template passes the replicas as {dp}; each
server sees only its own GPUs through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from runner.config import ConfigError
from runner.host.serving.spec import ServerCellSpec, template_fields
from runner.processes import descendants, is_alive, kill_tree, owner_env

LOG_TAIL_CHARS = 4000
HEALTH_PATHS = ("/health", "/v1/models")  # vLLM, SGLang, TGI and transformers serve answer the first
POLL_S = 0.25
CHILDREN_EVERY_S = 1.0


class ServerFailed(RuntimeError):
    """A server did not start, or stopped answering; the message says which and why."""


@dataclass
class Server:
    argv: list[str]
    url: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    known: dict[int, psutil.Process] = field(default_factory=dict)  # descendants seen while it ran
    started: float = 0.0  # time.time() at start
    looked_at: float = 0.0  # time.monotonic() of the last look for descendants

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - chars))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def program_path(program: str) -> str:
    """A bare program name is looked up beside this Python first, so the studio's own
    environment's `transformers` is used even when that environment is not activated."""
    if "/" in program:
        return program
    beside = Path(sys.executable).parent / program
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(program)
    if found is None:
        raise ConfigError("engine", f"cannot find the program {program!r} of the engine command (not beside "
                          f"{sys.executable} nor on PATH); install it or give its full path")
    return found


def server_argv(template: str, *, model: str, port: int, tp: int, dp: int, gpus: int) -> list[str]:
    """The template's words with the placeholders filled in, one word at a time, so that a
    model path with spaces stays one argument."""
    template_fields(template)
    values = {"model": model, "port": port, "tp": tp, "dp": dp, "gpus": gpus}
    argv = [word.format(**values) for word in shlex.split(template)]
    if not argv:
        raise ConfigError("engine", "is empty; give a command that starts a server")
    return [program_path(argv[0]), *argv[1:]]


def device_groups(gpus: int, servers: int, visible_gpus: int, visible: str | None) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each server: consecutive blocks of this process's own
    visible devices; None each on a machine with no GPU (the server runs on CPU)."""
    if visible_gpus == 0:
        return [None] * servers
    if gpus > visible_gpus:
        raise ConfigError("gpus", f"{gpus} GPUs asked for, but this machine shows {visible_gpus}; "
                          f"use at most {visible_gpus}")
    names = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(visible_gpus)]
    per = gpus // servers
    return [",".join(names[i * per:(i + 1) * per]) for i in range(servers)]


def plan_servers(spec: ServerCellSpec, model: str, visible_gpus: int, log_dir: Path) -> list[Server]:
    """The servers of a cell, not started: one with {dp} = replicas when the template
    takes {dp}, else one per replica, served round-robin by the client."""
    one_server = "dp" in template_fields(spec.template)
    count = 1 if one_server else spec.replicas
    dp = spec.replicas if one_server else 1
    per_server_gpus = spec.gpus // count
    groups = device_groups(spec.gpus, count, visible_gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    servers = []
    for index, devices in enumerate(groups):
        port = free_port()
        # HF_HUB_OFFLINE: a server, like a run, never downloads (a hub id must be cached)
        env = {**os.environ, **owner_env(), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        argv = server_argv(spec.template, model=model, port=port, tp=spec.tp_size, dp=dp, gpus=per_server_gpus)
        servers.append(Server(argv, f"http://127.0.0.1:{port}", log_dir / f"server-{index}.log", env))
    return servers


def start(server: Server) -> None:
    server.started = time.time()
    with open(server.log_path, "ab") as log:
        try:
            server.process = subprocess.Popen(server.argv, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=server.env, start_new_session=True)
        except OSError as exc:
            raise ServerFailed(f"could not start {shlex.join(server.argv)}: {exc}") from None


def wait_healthy(servers: list[Server], timeout_s: float, stop: threading.Event | None = None) -> bool:
    """Until every server answers 200 on a health path; False if `stop` was set first.
    Raises ServerFailed naming the server that exited or never answered."""
    deadline = time.monotonic() + timeout_s
    waiting = list(servers)
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for server in list(waiting):
                if server.process is not None and server.exit_code() is not None:
                    raise ServerFailed(f"the server {shlex.join(server.argv)} exited with code {server.exit_code()} "
                                       "before it answered; see its log")
                remember_children(server)
                if _answers(client, server):
                    waiting.remove(server)
            if not waiting:
                break
            if stop is not None and stop.is_set():
                return False
            if time.monotonic() > deadline:
                raise ServerFailed(f"the server at {waiting[0].url} did not answer {HEALTH_PATHS[0]} within "
                                   f"{timeout_s:g} s; see its log, or raise health_timeout_s if it loads slowly")
            time.sleep(POLL_S)
    return True


def _answers(client: httpx.Client, server: Server) -> bool:
    """200 on /health; on /v1/models only for a server that has no /health (404)."""
    for path in HEALTH_PATHS:
        try:
            status = client.get(server.url + path).status_code
        except httpx.HTTPError:
            return False  # not listening yet
        if status != 404:
            return status == 200
    return False


def served_model_name(url: str, fallback: str | None) -> str | None:
    """The first model id the server lists: the name requests must use (vLLM serves a
    folder under its path, `--served-model-name` under another)."""
    try:
        answer = httpx.get(url + "/v1/models", timeout=10.0)
        data = answer.json().get("data") if answer.status_code == 200 else None
        if data and isinstance(data[0], dict) and isinstance(data[0].get("id"), str):
            return data[0]["id"]
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return fallback


def remember_children(server: Server) -> None:
    """Notes the server's descendants while it lives: once it dies they are orphans
    that no longer hang below it, and its process tree could not find them."""
    if server.process is None:
        return
    for child in descendants(server.process.pid):
        server.known.setdefault(child.pid, child)


def _group_members(server: Server) -> list[psutil.Process]:
    """Processes still in the server's session (it leads one of its own), started after it:
    orphans its death left that were never seen as its children."""
    members = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if os.getsid(proc.pid) == server.process.pid and proc.info["create_time"] >= server.started - 1:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def stop_all(servers: list[Server], grace: float = 5.0) -> None:
    """Ends every server's whole process tree; safe on servers never started or gone."""
    for server in servers:
        if server.process is None:
            continue
        remember_children(server)
        kill_tree(server.process.pid, extra_pids=[*server.known.values(), *_group_members(server)], grace=grace)
        try:
            server.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass


def any_dead(servers: list[Server]) -> Server | None:
    for server in servers:
        if server.process is None:
            continue
        if time.monotonic() - server.looked_at > CHILDREN_EVERY_S:
            remember_children(server)
            server.looked_at = time.monotonic()
        if server.exit_code() is not None or not is_alive(server.process.pid):
            return server
    return None


def log_tails(servers: list[Server], chars: int = LOG_TAIL_CHARS) -> str:
    if len(servers) == 1:
        return servers[0].log_tail(chars)
    share = max(500, chars // max(1, len(servers)))
    return "\n".join(f"--- server {i} ({s.url}) ---\n{s.log_tail(share)}" for i, s in enumerate(servers))


def log_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="studio-serve-"))
