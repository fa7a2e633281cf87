"""`studio cluster slurm`: the sbatch script is generated, parsed, linted by bash,
and run for real with stand-ins for `scontrol` and `srun` (a loopback two-node
job on this machine), its result file imported with `studio import`."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SHORT_PROMPTS, run_cli

from runner.config import ConfigError
from studio.cli.cluster import SlurmJob, sbatch_script


def directives(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line[len("#SBATCH "):].partition("=")
            out[key] = value
    return out


def test_cli_writes_a_script_with_one_task_per_node(tmp_path, cli):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(SHORT_PROMPTS) + "\n")
    out = tmp_path / "job.sbatch"
    result = cli("cluster", "slurm", "--nodes", "4", "--gpus-per-node", "8", "--partition", "gpu",
                     "--time", "02:00:00", "--account", "bench", "--out", str(out), "--",
                     "--model", "tiny", "--prompts", os.path.relpath(prompts, ROOT), "--max-new-tokens", "64",
                     "--repeats", "3")
    assert result.returncode == 0, result.stderr
    script = out.read_text()
    assert script.startswith("#!/bin/bash\n")
    assert directives(script) == {
        "--job-name": "scaling-studio", "--nodes": "4", "--ntasks-per-node": "1", "--gpus-per-node": "8",
        "--time": "02:00:00", "--partition": "gpu", "--account": "bench", "--output": "scaling-studio-%j.log",
    }
    subprocess.run(["bash", "-n", str(out)], check=True)
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in script
    [srun] = [line for line in script.splitlines() if line.startswith("srun ")]
    assert "--ntasks-per-node=1" in srun and " bash -c " in srun
    assert '--nodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID"' in script
    assert "--gpus-per-node 8" in script
    assert f"--prompts {prompts.resolve()}" in script  # made absolute: nodes start elsewhere
    assert "--repeats 3" in script
    assert 'export --db "$db" --out "$RESULT"' in script


def test_pure_function_variants():
    stored = sbatch_script(SlurmJob(nodes=2, gpus_per_node=2, db="/shared/studio.db", main_port=29555))
    assert "export --db" not in stored and "--db /shared/studio.db" in stored
    assert 'MAIN_PORT="29555"' in stored
    cpu = sbatch_script(SlurmJob(nodes=2, gpus_per_node=2, cpu=True, run_args=("--device", "cpu")))
    assert "--gpus-per-node" not in directives(cpu)
    default = sbatch_script(SlurmJob(nodes=2, gpus_per_node=1))
    assert 'MAIN_PORT="$((20000 + SLURM_JOB_ID % 10000))"' in default
    assert 'RESULT="${SLURM_SUBMIT_DIR}/scaling-studio-${SLURM_JOB_ID}.json"' in default


@pytest.mark.parametrize("changes, field", [
    ({"nodes": 0}, "nodes"),
    ({"gpus_per_node": 0}, "gpus_per_node"),
    ({"partition": "gpu; rm -rf /"}, "partition"),
    ({"time": "tomorrow"}, "time"),
    ({"main_port": 80}, "main_port"),
    ({"run_args": ("--node-rank", "1")}, "run options"),
    ({"run_args": ("--main-port=1234",)}, "run options"),
])
def test_bad_job_settings_are_refused(changes, field):
    with pytest.raises(ConfigError) as info:
        SlurmJob(**{"nodes": 2, "gpus_per_node": 1, **changes})
    assert info.value.field == field


def test_bad_run_options_fail_before_any_script_is_written(tmp_path, cli):
    out = tmp_path / "job.sbatch"
    result = cli("cluster", "slurm", "--nodes", "2", "--gpus-per-node", "1", "--out", str(out), "--",
                     "--max-new-tokens", "0")
    assert result.returncode == 2 and "max_new_tokens" in result.stderr
    result = cli("cluster", "slurm", "--nodes", "2", "--gpus-per-node", "1", "--out", str(out), "--",
                     "--prompts", str(tmp_path / "missing.txt"))
    assert result.returncode == 2 and "missing.txt" in result.stderr
    assert not out.exists()


SRUN = """#!{python}
# Stand-in for srun: one task per node, all at once, as SLURM would start them.
import os, subprocess, sys
args = sys.argv[1:]
command = args[next(i for i, a in enumerate(args) if not a.startswith("--")):]
nodes = int(os.environ["SLURM_NNODES"])
tasks = [subprocess.Popen(command, env={{**os.environ, "SLURM_NODEID": str(i), "SLURM_PROCID": str(i)}})
         for i in range(nodes)]
sys.exit(max(t.wait() for t in tasks))
"""


def shim(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
def test_the_script_runs_two_nodes_and_its_result_imports(tmp_path, free_port):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim(bin_dir, "scontrol", "#!/bin/sh\nprintf '127.0.0.1\\nlocalhost\\n'\n")
    shim(bin_dir, "srun", SRUN.format(python=sys.executable))
    shim(bin_dir, "studio", f'#!/bin/sh\nexec "{sys.executable}" -m studio "$@"\n')
    prompts = tmp_path / "my prompts's.txt"  # a space and a quote survive both levels of quoting
    prompts.write_text("\n".join(SHORT_PROMPTS[:4]) + "\n")
    job = SlurmJob(nodes=2, gpus_per_node=1, cpu=True, main_port=free_port,
                   run_args=("--device", "cpu", "--prompts", str(prompts), "--max-new-tokens", "8"))
    script = tmp_path / "job.sbatch"
    script.write_text(sbatch_script(job))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
           "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_SUBMIT_DIR": str(tmp_path),
           "TMPDIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir()
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "node 1 of 2: 1 of 1 run(s) finished on this node; nothing stored here" in done.stdout

    result = tmp_path / "scaling-studio-4242.json"
    export = json.loads(result.read_text())
    [run] = export["runs"]
    assert (run["status"], run["num_nodes"], run["num_gpus"], run["world_size"]) == ("succeeded", 2, 1, 2)
    assert sorted(r["node"] for r in run["ranks"]) == [0, 1]
    # each node worked in its own scratch home
    homes = sorted(p.name for p in (tmp_path / "scratch").glob("scaling-studio-*"))
    assert homes == ["scaling-studio-4242-0", "scaling-studio-4242-1"]

    db = tmp_path / "studio.db"
    imported = run_cli("import", str(result), "--db", str(db), timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 run(s)" in imported.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT num_nodes, world_size, status FROM runs").fetchall() == [(2, 2, "succeeded")]
    assert conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 4
