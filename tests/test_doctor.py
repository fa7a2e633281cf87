"""`studio doctor` on this machine (no GPU): every check runs and says what it
found; a database it cannot write, a port in use or a default accelerate config
are reported, each with what to change."""

from __future__ import annotations

import json
import socket

from conftest import run_cli

NAMES = ["GPUs and driver", "torch", "accelerate", "packages", "NCCL / gloo", "free ports", "database", "caches",
         "shared memory"]


def test_doctor_on_this_machine(tmp_path, free_port, cli):
    db = tmp_path / "studio.db"
    result = cli("doctor", "--db", str(db), "--port", str(free_port), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert list(checks) == NAMES
    assert all(c["status"] != "FAIL" for c in checks.values())
    import torch

    assert torch.__version__ in checks["torch"]["detail"]
    if not torch.cuda.is_available():
        assert "CPU" in checks["torch"]["detail"]
    assert "gloo (all-reduce works)" in checks["NCCL / gloo"]["detail"]
    assert checks["database"]["status"] == "ok" and str(db) in checks["database"]["detail"]
    assert db.exists()

    text = cli("doctor", "--db", str(db), "--port", str(free_port))
    assert text.returncode == 0
    for name in NAMES:
        assert name in text.stdout
    assert text.stdout.rstrip().splitlines()[-1] in ("all checks passed", "0 failed, 1 warning(s)",
                                                      "0 failed, 2 warning(s)", "0 failed, 3 warning(s)")


def test_doctor_reports_what_is_wrong_and_how_to_fix_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    accelerate_home = tmp_path / "hf"
    (accelerate_home / "accelerate").mkdir(parents=True)
    (accelerate_home / "accelerate" / "default_config.yaml").write_text("num_processes: 8\n")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("doctor", "--db", str(blocker / "studio.db"), "--port", str(port), "--json", timeout=120,
                         env={"HF_HOME": str(accelerate_home), "ACCELERATE_MIXED_PRECISION": "fp16"})
    assert result.returncode == 1  # the database check failed
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["database"]["status"] == "FAIL" and "--db" in checks["database"]["hint"]
    assert checks["free ports"]["status"] == "warn" and f"studio {port}" in checks["free ports"]["detail"]
    accelerate = checks["accelerate"]
    assert accelerate["status"] == "warn"
    assert "default_config.yaml" in accelerate["detail"] and "ACCELERATE_MIXED_PRECISION" in accelerate["detail"]
    assert "its own config" in accelerate["hint"]


def test_web_packages_are_optional_on_a_benchmark_only_machine(monkeypatch):
    """A GPU node driven by the CLI has no gradio or plotly: with --web-optional that
    is a warning, while a missing package that runs need still fails."""
    import importlib.metadata

    from studio.cli.commands import build_parser
    from studio.cli.doctor import FAIL, WARN, check_packages

    real = importlib.metadata.version
    absent = {"gradio", "plotly"}

    def version(name):
        if name in absent:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert check_packages().status == FAIL
    relaxed = check_packages(web_optional=True)
    assert relaxed.status == WARN and "gradio" in relaxed.detail and "plotly" in relaxed.detail
    absent.add("sqlite-utils")
    assert check_packages(web_optional=True).status == FAIL
    assert build_parser().parse_args(["doctor", "--web-optional"]).web_optional is True
