"""The lock files and the checker that holds an environment to them."""

from __future__ import annotations

import importlib.util
import re
import subprocess

import pytest
from conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

spec = importlib.util.spec_from_file_location("lockcheck", ROOT / "scripts" / "lockcheck.py")
lockcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lockcheck)


def locked(name: str) -> dict[str, str]:
    return lockcheck.pins((ROOT / "lock" / f"{name}.txt").read_text().splitlines())


def requirement_names(requirements) -> set[str]:
    return {lockcheck.canonical(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def test_every_dependency_and_extra_is_locked_and_the_two_locks_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    studio, test = locked("studio"), locked("test")
    extras = project["optional-dependencies"]
    assert requirement_names(project["dependencies"] + extras["gpu"]) <= set(studio)
    assert requirement_names(project["dependencies"] + extras["gpu"] + extras["test"]) <= set(test)
    assert set(studio) <= set(test)
    assert {n: v for n, v in test.items() if n in studio} == studio
    # torch is the CPU build constraints.txt names, never a CUDA one (GBs of wheels)
    pinned = (ROOT / "constraints.txt").read_text().split("==", 1)[1].strip()
    assert studio["torch"].split("+")[0] == pinned and not any(n.startswith("nvidia-cu") for n in test)


def test_pins_read_pip_compile_and_pip_freeze_lines():
    lines = ["# header", "Jinja2==3.1.6", "    # via torch", "torch==2.13.0+cpu ; sys_platform == 'linux'",
             "-e file:///work/main", "scaling-studio @ file:///work/main", "typing_extensions==4.15.0"]
    assert lockcheck.pins(lines) == {"jinja2": "3.1.6", "torch": "2.13.0+cpu", "typing-extensions": "4.15.0"}


def test_differences_name_missing_wrong_and_extra_packages():
    lock = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "scipy": "1.17.1"}
    installed = {"numpy": "2.4.5", "torch": "2.13.0+cu130", "six": "1.17.0", "pip": "26.3", "scaling-studio": "0.1.0"}
    found = lockcheck.differences(lock, installed, strict=True)
    assert found == ["numpy is 2.4.5, the lock says 2.4.6", "scipy==1.17.1 is locked but not installed",
                     "torch is 2.13.0+cu130, the lock says 2.13.0+cpu", "six==1.17.0 is installed but not in the lock"]
    # a kept torch and a lock about to be installed: only the stray package and the wrong numpy count
    assert lockcheck.differences(lock, installed, strict=True, keep=["torch"], missing_ok=True) == [
        "numpy is 2.4.5, the lock says 2.4.6", "six==1.17.0 is installed but not in the lock"]
    assert lockcheck.differences(lock, {**installed, "numpy": "2.4.6", "scipy": "1.17.1"}, strict=False,
                                 keep=["torch"]) == []


def test_the_installer_refuses_an_unknown_argument_and_setting_before_touching_anything():
    done = subprocess.run(["bash", "scripts/install.sh", "tset"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument 'tset'" in done.stderr and "'test'" in done.stderr
    done = subprocess.run(["bash", "scripts/install.sh"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "STUDIO_PACKAGES": "latest"})
    assert done.returncode == 2 and "use locked or newest" in done.stderr
