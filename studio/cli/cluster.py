"""`studio cluster slurm`: an sbatch script that runs one benchmark over the nodes
SLURM allocates.

`sbatch_script(job)` is pure: the script text comes out of a `SlurmJob` and
nothing else. The script starts one task per node with `srun`; each task runs
`studio run --nodes $SLURM_NNODES --node-rank $SLURM_NODEID --main-address <first
host> ...`, whose `accelerate launch` starts that node's GPU processes. Node 0
gathers every rank and stores the one run: into a database path (`--db`), or by
default into a scratch database that it then exports as a JSON file for
`studio import`.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from runner.config import LIMITS, ConfigError

# `studio run` options the script sets itself, per node.
SET_BY_SCRIPT = ("--gpus", "--nodes", "--gpus-per-node", "--node-rank", "--main-address", "--main-port",
                 "--db", "--json", "--rdzv-backend")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.,+\-]+$")
# SLURM's --time formats: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME_RE = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


@dataclass(frozen=True)
class SlurmJob:
    nodes: int
    gpus_per_node: int
    run_args: tuple[str, ...] = ()  # `studio run` options, checked by `check_run_args`
    partition: str | None = None
    account: str | None = None
    time: str = "01:00:00"
    job_name: str = "scaling-studio"
    cpus_per_task: int | None = None
    main_port: int | None = None  # None: 20000 + job id % 10000, so jobs sharing a node differ
    result: str = "scaling-studio-%j.json"  # JSON export, relative to the submit folder; %j is the job id
    db: str | None = None  # store straight into this database instead of writing `result`
    setup: tuple[str, ...] = ()  # shell lines run first on every node: module load, source venv/bin/activate
    studio: str = "studio"  # the command, as the nodes find it on PATH after `setup`
    cpu: bool = False  # CPU processes instead of GPUs: no GPU request

    def __post_init__(self) -> None:
        if (isinstance(self.nodes, bool) or not isinstance(self.nodes, int)
                or not 1 <= self.nodes <= LIMITS["num_nodes"]):
            raise ConfigError("nodes", f"must be a whole number from 1 to {LIMITS['num_nodes']}, got {self.nodes!r}")
        if (isinstance(self.gpus_per_node, bool) or not isinstance(self.gpus_per_node, int)
                or not 1 <= self.gpus_per_node <= LIMITS["gpus_per_node"]):
            raise ConfigError("gpus_per_node",
                              f"must be a whole number from 1 to {LIMITS['gpus_per_node']}, got {self.gpus_per_node!r}")
        for name in ("partition", "account", "job_name"):
            value = getattr(self, name)
            if value is not None and not _NAME_RE.match(value):
                raise ConfigError(name, f"{value!r} has characters SLURM names do not; use letters, digits, . _ - ,")
        if not _TIME_RE.match(self.time or ""):
            raise ConfigError("time", f"{self.time!r} is not a SLURM time; write e.g. 90, 01:30:00 or 1-00:00:00")
        if self.cpus_per_task is not None and not (isinstance(self.cpus_per_task, int) and self.cpus_per_task >= 1):
            raise ConfigError("cpus_per_task", f"must be a whole number of at least 1, got {self.cpus_per_task!r}")
        if self.main_port is not None and not (isinstance(self.main_port, int) and 1024 <= self.main_port <= 65535):
            raise ConfigError("main_port", f"must be from 1024 to 65535, got {self.main_port!r}")
        for name in ("result", "db", "studio"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or "\n" in value or "\0" in value):
                raise ConfigError(name, f"{value!r} is not a usable path or command")
        for line in self.setup:
            if "\0" in line or "\n" in line:
                raise ConfigError("setup", "give each setup line separately (--setup once per line)")
        refuse_script_options(self.run_args)


def refuse_script_options(run_args) -> None:
    for arg in run_args:
        name = arg.split("=", 1)[0]
        if name in SET_BY_SCRIPT:
            raise ConfigError("run options", f"{name} is set by the script for each node; give --nodes, "
                              "--gpus-per-node and --main-port to `studio cluster slurm` instead")


def check_run_args(run_args: list[str], *, nodes: int, gpus_per_node: int) -> tuple[str, ...]:
    """Validate `studio run` options as node 0 will see them; return them with the
    prompts file made absolute (the nodes do not start in this folder)."""
    from studio.cli.args import add_run_options, config_from_args

    refuse_script_options(run_args)
    parser = _RaisingParser(prog="studio run", allow_abbrev=False, add_help=False)
    add_run_options(parser)
    args = parser.parse_args([*run_args, "--nodes", str(nodes), "--gpus-per-node", str(gpus_per_node),
                              "--main-port", "29500"])
    config_from_args(args)  # raises ConfigError on a bad setting or an unreadable prompts file
    out = list(run_args)
    for i, arg in enumerate(out):
        if arg == "--prompts" and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).expanduser().resolve())
        elif arg.startswith("--prompts="):
            out[i] = "--prompts=" + str(Path(arg.split("=", 1)[1]).expanduser().resolve())
    return tuple(out)


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit; the CLI reports it like any bad input
        raise ConfigError("run options", message)


def _result_expression(result: str) -> str:
    """The result path as a double-quoted shell word: %j becomes the job id, and a
    relative path is under the folder sbatch was called from."""
    quoted = result.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    quoted = quoted.replace("%j", "${SLURM_JOB_ID}")
    return f'"{quoted}"' if result.startswith("/") else f'"${{SLURM_SUBMIT_DIR}}/{quoted}"'


def node_step(job: SlurmJob) -> str:
    """The shell code each node's task runs (inside `bash -c`)."""
    run = " ".join([
        shlex.quote(job.studio), "run",
        '--nodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID"',
        f"--gpus-per-node {job.gpus_per_node}",
        '--main-address "$MAIN_ADDRESS" --main-port "$MAIN_PORT"',
        "--db " + (shlex.quote(job.db) if job.db else '"$db"'),
        *(shlex.quote(a) for a in job.run_args),
    ])
    lines = [
        "set -euo pipefail",
        "# a scratch home per node and job: run folders and the tiny model never collide",
        'export STUDIO_HOME="${TMPDIR:-/tmp}/scaling-studio-${SLURM_JOB_ID}-${SLURM_NODEID}"',
    ]
    if not job.db:
        lines.append('db="$STUDIO_HOME/studio.db"')
    lines += [
        'echo "node $SLURM_NODEID of $SLURM_NNODES on $(hostname): main $MAIN_ADDRESS:$MAIN_PORT"',
        "status=0",
        run + " || status=$?",
    ]
    if not job.db:
        lines += [
            "# node 0 holds the run (failed runs too, with their error): export it for `studio import`",
            'if [ "$SLURM_NODEID" = 0 ]; then',
            f'  {shlex.quote(job.studio)} export --db "$db" --out "$RESULT" || status=$?',
            "fi",
        ]
    lines.append('exit "$status"')
    return "\n".join(lines)


def command_line(job: SlurmJob) -> str:
    """The `studio cluster slurm` command that makes this script again."""
    words = ["studio", "cluster", "slurm", "--nodes", str(job.nodes), "--gpus-per-node", str(job.gpus_per_node)]
    for flag, value in (("--partition", job.partition), ("--account", job.account), ("--time", job.time),
                        ("--job-name", job.job_name), ("--cpus-per-task", job.cpus_per_task),
                        ("--main-port", job.main_port), ("--db", job.db),
                        ("--result", None if job.db else job.result), ("--studio-command", job.studio)):
        if value is not None:
            words += [flag, str(value)]
    for line in job.setup:
        words += ["--setup", line]
    if job.cpu:
        words.append("--cpu")
    if job.run_args:
        words += ["--", *job.run_args]
    return shlex.join(words)


def sbatch_script(job: SlurmJob) -> str:
    directives = [
        f"--job-name={job.job_name}",
        f"--nodes={job.nodes}",
        "--ntasks-per-node=1",
    ]
    if not job.cpu:
        directives.append(f"--gpus-per-node={job.gpus_per_node}")
    if job.cpus_per_task:
        directives.append(f"--cpus-per-task={job.cpus_per_task}")
    directives.append(f"--time={job.time}")
    if job.partition:
        directives.append(f"--partition={job.partition}")
    if job.account:
        directives.append(f"--account={job.account}")
    directives.append(f"--output={job.job_name}-%j.log")

    what = f"{job.nodes} node(s) x {job.gpus_per_node} {'CPU process' if job.cpu else 'GPU'}(s) per node"
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        f"# Scaling Studio: one benchmark over {what}.",
        "# Made by: " + command_line(job).replace("\n", " "),
        "# Submit with `sbatch THIS_FILE`; every node needs the studio installed (bash scripts/install.sh)",
        "# and the model in its Hugging Face cache (runs are offline).",
        "set -euo pipefail",
        "",
    ]
    if job.setup:
        lines += ["# setup: runs on the batch host; srun hands its environment (PATH, venv, modules) to each node",
                  *job.setup, ""]
    port = str(job.main_port) if job.main_port else "$((20000 + SLURM_JOB_ID % 10000))"
    lines += [
        "# node 0, the allocation's first host, hosts the rendezvous",
        'MAIN_ADDRESS="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        f'MAIN_PORT="{port}"',
    ]
    if job.db:
        lines.append(f"RESULT={shlex.quote(job.db)}")
    else:
        lines.append(f"RESULT={_result_expression(job.result)}")
    lines += [
        "export MAIN_ADDRESS MAIN_PORT RESULT",
        "",
        "# one task per node; its `studio run` starts that node's processes with accelerate launch",
        "# shellcheck disable=SC2016  # the node step expands its variables on each node",
        f'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c {shlex.quote(node_step(job))}',
        "",
    ]
    if job.db:
        lines.append('echo "stored in $RESULT: see it with  studio runs --db $RESULT"')
    else:
        lines.append('echo "result: $RESULT; add it to the studio with  studio import $RESULT"')
    return "\n".join(lines) + "\n"
