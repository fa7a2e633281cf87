"""Turns a prepared run into an `accelerate launch` process, and runs it.

`build_launch_command` is pure: argv, environment and the per-run accelerate
config come out of the run's settings and nothing else (the user's default
accelerate config is never read). `launch` is the thin part that writes the job
file, starts the process in its own session, streams events and returns a
RunResult, whatever happened: succeeded, or failed/cancelled/interrupted with
the error, the stderr tail and the outputs finished before it stopped.
"""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from runner import events
from runner.energy import run_energy
from runner.environment import PROJECT_ROOT, git_commit, host_fingerprint
from runner.failures import explain_failure
from runner.processes import handle, is_alive, kill_tree, owner_env
from runner.result import RunResult
from runner.roofline import run_roofline
from runner.tensor_parallel import run_comm_fraction
from runner.validate import Prepared

WORKER = Path(__file__).resolve().parent / "worker.py"
STDERR_TAIL_LINES = 60
RANK_TAIL_LINES = 30
RANK_LINE = re.compile(r"^\[rank (\d+)\] ")  # the worker tags its stderr lines with its rank
# A rank seen gone this long without a `done` event died (its last events had time to arrive).
RANK_DEATH_CONFIRM_S = 1.0

EventCallback = Callable[[dict], None]


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]
    accelerate_config: str  # YAML text for --config_file


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def accelerate_config_yaml(prepared: Prepared, port: int) -> str:
    config = prepared.config
    distributed = "MULTI_GPU" if config.world_size > 1 else "NO"
    lines = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": distributed,
        "num_processes": config.world_size,
        "num_machines": config.num_nodes,
        "machine_rank": config.node_rank,
        "main_process_ip": config.main_address,
        "main_process_port": port,
        "rdzv_backend": config.rdzv_backend,
        "same_network": True,
        "mixed_precision": "no",
        "use_cpu": False,
        "gpu_ids": "all",
        "downcast_bf16": "no",
        "debug": False,
    }
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items())


def build_launch_command(
    prepared: Prepared,
    *,
    job_path: Path,
    config_path: Path,
    port: int,
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
) -> LaunchCommand:
    config = prepared.config
    argv = [
        python, "-m", "accelerate.commands.launch",
        "--config_file", str(config_path),
        "--num_processes", str(config.world_size),
        "--num_machines", str(config.num_nodes),
        "--machine_rank", str(config.node_rank),
        "--main_process_ip", config.main_address,
        "--main_process_port", str(port),
        "--rdzv_backend", config.rdzv_backend,
        "--mixed_precision", "no",
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(config.cpu_threads),
    ]
    if config.world_size > 1:
        # On CPU too: with the worker's PartialState(cpu=True) this gives N real
        # processes over gloo, where --cpu would start only one.
        argv.append("--multi_gpu")
    argv += [str(WORKER), "--job", str(job_path)]

    env = {k: v for k, v in (os.environ if base_env is None else base_env).items() if not k.startswith("ACCELERATE_")}
    python_path = [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(config.cpu_threads),
        }
    )
    if prepared.device == "cuda":
        # the un-prefixed name is deprecated (torch warns on every rank that reads it);
        # a user's value of it carries over to the current name
        env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", env.pop("NCCL_ASYNC_ERROR_HANDLING", "1"))
        # nvidia-smi lists GPUs by PCI bus; so must CUDA, or the inventory's GPU i is not cuda:i
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return LaunchCommand(argv=argv, env=env, accelerate_config=accelerate_config_yaml(prepared, port))


def build_job(prepared: Prepared, result_path: Path, plan: dict | None = None) -> dict:
    job = {
        "config": prepared.config.to_dict(),
        "model": prepared.model.to_dict(),
        "device": prepared.device,
        "dtype": prepared.dtype,
        "result_path": str(result_path),
        "expected_devices": list(prepared.expected_devices),
    }
    if plan:
        job["plan"] = plan
        job["warmup_batches"] = plan.get("warmup_batches")
    return job


class _Streams:
    """Reads the launcher's stdout (events) and stderr (tail) on two threads."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, on_event: EventCallback | None):
        self.events: list[dict] = []
        self.rank_pids: dict[int, int] = {}
        self.rank_procs: dict = {}  # rank -> psutil.Process, taken while it runs (safe against PID reuse)
        self.finished_ranks: set[int] = set()
        self.stderr = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.rank_stderr: dict[int, collections.deque] = {}
        self._on_event = on_event
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(proc.stdout, run_dir / "stdout.log"), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc.stderr, run_dir / "stderr.log"), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _deliver(self, event: dict) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken progress display must not break the run
                pass

    def _read_stdout(self, stream, log_path: Path) -> None:
        with open(log_path, "w") as log:
            for line in stream:
                log.write(line)
                event = events.parse(line)
                if event is None:
                    continue
                with self._lock:
                    self.events.append(event)
                    if event["event"] == "started":
                        self.rank_pids[int(event["rank"])] = int(event["pid"])
                        self.rank_procs[int(event["rank"])] = handle(int(event["pid"]))
                    elif event["event"] in ("done", "error"):
                        self.finished_ranks.add(int(event.get("rank", -1)))
                self._deliver(event)

    def _read_stderr(self, stream, log_path: Path) -> None:
        with open(log_path, "w") as log:
            for line in stream:
                log.write(line)
                self.stderr.append(line.rstrip("\n"))
                tagged = RANK_LINE.match(line)
                if tagged:
                    rank = int(tagged.group(1))
                    self.rank_stderr.setdefault(rank, collections.deque(maxlen=RANK_TAIL_LINES)).append(
                        line.rstrip("\n"))
                self._deliver({"event": "log", "stream": "stderr", "line": line.rstrip("\n")})

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def worker_errors(self) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == "error"]

    def dead_ranks(self) -> list[int]:
        """Ranks that started and are gone without saying done or reporting an error."""
        with self._lock:
            procs = {r: p for r, p in self.rank_procs.items() if r not in self.finished_ranks}
        return sorted(r for r, p in procs.items() if p is None or not is_alive(p))

    def rank_tail(self, rank: int) -> str:
        with self._lock:
            return "\n".join(self.rank_stderr.get(rank, ()))

    def started_times(self) -> list[float]:
        with self._lock:
            return [e["time"] for e in self.events if e["event"] == "started" and "time" in e]


def _phases(popen_time: float, end_time: float, result: dict, streams: _Streams) -> dict:
    """Seconds per phase, each the slowest rank's, from launch to result file."""
    phases: dict[str, float] = {}
    starts = streams.started_times()
    if starts:
        phases["launch"] = max(0.0, min(starts) - popen_time)
    for rank in result.get("ranks", []):
        for span in rank.get("timeline", []):
            name = span["phase"]
            length = span["end"] - span["start"]
            if name == "generate":
                continue
            phases[name] = max(phases.get(name, 0.0), length)
    if result.get("seconds") is not None:
        phases["generate"] = result["seconds"]
    phases["total"] = end_time - popen_time
    return phases


def worker_node_receipt(prepared: Prepared, popen_time: float, end_time: float) -> RunResult:
    """What a node other than node 0 gets back: its processes finished, nothing more.

    No tokens, time or outputs (node 0 has them all); `environment["role"]` says
    so, and callers must not store it as a run.
    """
    config = prepared.config
    return RunResult(
        status="succeeded",
        config=config.to_dict(),
        model=prepared.model.to_dict(),
        device=prepared.device,
        dtype=prepared.dtype,
        world_size=config.world_size,
        environment={"role": "worker-node", "node_rank": config.node_rank, "launcher": host_fingerprint()},
        phases={"total": end_time - popen_time},
        exit_code=0,
    )


def launch(
    prepared: Prepared,
    run_dir: Path,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    plan: dict | None = None,
    on_pids: Callable[[list[int]], None] | None = None,
) -> RunResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = prepared.config
    port = config.main_port or free_port()
    job_path, config_path, result_path = run_dir / "job.json", run_dir / "accelerate.yaml", run_dir / "result.json"
    command = build_launch_command(prepared, job_path=job_path, config_path=config_path, port=port)
    job_path.write_text(json.dumps(build_job(prepared, result_path, plan)))
    config_path.write_text(command.accelerate_config)
    result_path.unlink(missing_ok=True)

    timeout = config.timeout_s if timeout is None else timeout
    popen_time = time.time()
    # the ranks watch this process (the server or CLI) and end with it, however it dies
    env = {**command.env, **owner_env()}
    try:
        proc = subprocess.Popen(
            command.argv, env=env, cwd=run_dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        return _failed(prepared, plan, "failed", f"could not start accelerate launch: {exc}")
    streams = _Streams(proc, run_dir, on_event)
    if on_pids is not None:
        on_pids([proc.pid])  # recorded at once: a server that dies now can still reap it on restart
    reported: set[int] = set()
    stopped_because = None
    died: list[int] = []  # the ranks first seen gone, before the others were stopped
    gone_since: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if on_pids is not None and set(streams.rank_pids.values()) - reported:
                reported = set(streams.rank_pids.values())
                on_pids([proc.pid, *sorted(reported)])
            if cancel is not None and cancel.is_set():
                stopped_because = "cancelled"
            elif time.monotonic() > deadline:
                stopped_because = "timeout"
            elif streams.worker_errors():
                # a rank reported its own failure: do not wait for torchrun's monitor
                stopped_because = "rank-error"
            elif streams.dead_ranks():
                # a rank vanished without a word (killed, OOM): the others would wait for it
                # at the next collective until a timeout, so end the run now
                if gone_since is None:
                    gone_since, died = time.monotonic(), streams.dead_ranks()
                elif time.monotonic() - gone_since >= RANK_DEATH_CONFIRM_S:
                    stopped_because = "rank-died"
            else:
                gone_since, died = None, []
            if stopped_because:
                grace = {"rank-error": 5.0, "rank-died": 2.0}.get(stopped_because, 3.0)
                kill_tree(proc.pid, streams.rank_procs.values(), grace=grace)
                break
            time.sleep(0.05)
    except BaseException:
        # Ctrl+C in the CLI, or any error here: nothing of the run may outlive it
        kill_tree(proc.pid, streams.rank_procs.values(), grace=2.0)
        raise
    exit_code = proc.wait()
    kill_tree(proc.pid, streams.rank_procs.values(), grace=0.5)  # nothing may outlive the run
    streams.join()
    end_time = time.time()
    tail = "\n".join(streams.stderr)

    if config.node_rank > 0 and exit_code == 0 and stopped_because is None:
        # A non-main node only lends its processes: global rank 0 (on node 0)
        # gathers every rank's figures and outputs and writes the one result.
        # What comes back here is a receipt, with no figures, never to be stored.
        return worker_node_receipt(prepared, popen_time, end_time)

    if result_path.exists() and exit_code == 0 and stopped_because is None:
        data = json.loads(result_path.read_text())
        environment = data.get("environment", {})
        environment.setdefault("nodes", [])
        environment["launcher"] = host_fingerprint()
        environment["git_commit"] = git_commit()
        return RunResult(
            status="succeeded",
            config=config.to_dict(),
            model=prepared.model.to_dict(),
            device=data["device"],
            dtype=data["dtype"],
            world_size=data["world_size"],
            tokens=data["tokens"],
            raw_tokens=data["raw_tokens"],
            seconds=data["seconds"],
            tokens_per_second=data["tokens_per_second"],
            ranks=data["ranks"],
            outputs=data["outputs"],
            environment=environment,
            phases=_phases(popen_time, end_time, data, streams),
            plan=plan,
            roofline=run_roofline(data["ranks"]),
            energy=run_energy(data["ranks"], data["tokens"], data["raw_tokens"]),
            latency=data.get("latency"),
            comm_fraction=run_comm_fraction(data["ranks"]),
            exit_code=0,
        )

    status, message, tail = explain_failure(
        stopped_because=stopped_because, cancel_reason=getattr(cancel, "reason", ""), exit_code=exit_code,
        timeout=timeout, streams=streams, died=died, tail=tail,
    )
    # every batch a rank finished was sent as it finished: keep them, marked partial
    partial = sorted((o for e in streams.events if e["event"] == "outputs" for o in e.get("outputs", [])),
                     key=lambda o: o["prompt_index"])
    if status != "cancelled" and not streams.started_times():
        message += rendezvous_hint(config)
    return _failed(prepared, plan, status, message, stderr_tail=tail, exit_code=exit_code, outputs=partial,
                   partial=bool(partial), phases={"total": end_time - popen_time})


def _failed(prepared: Prepared, plan: dict | None, status: str, message: str, **extra) -> RunResult:
    return RunResult.failure(prepared.config.to_dict(), status, message, plan=plan, model=prepared.model.to_dict(),
                             device=prepared.device, dtype=prepared.dtype, **extra)


def rendezvous_hint(config) -> str:
    """What to check when a multi-node launch failed before any rank started: the
    nodes never met (torchrun starts the ranks only once every node has joined)."""
    if config.num_nodes < 2:
        return ""
    other = "the other nodes" if config.node_rank == 0 else "node 0"
    return (f"; no rank started, so the {config.num_nodes} nodes never met at {config.main_address}:"
            f"{config.main_port}: start {other} with the same --nodes, --main-address and --main-port, "
            "and check that this machine can reach that address and port")
