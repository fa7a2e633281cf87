"""A real `studio serve` in a subprocess, for the API and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from conftest import CPU_ONLY_ENV, ROOT


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"studio serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"studio serve did not answer on {url} within {timeout} s:\n{log.read_text()}")


@contextmanager
def live_server(db_path: Path, port: int, log: Path, *extra: str):
    """Yields (url, process); stops the server with SIGTERM and checks it exited cleanly."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "studio", "serve", "--port", str(port), "--db", str(db_path), *extra],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **CPU_ONLY_ENV},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, proc, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"studio serve exited with {proc.returncode}:\n{log.read_text()}"
