"""Compares an environment's `pip freeze` with a lock file; exits 1 on any difference.

    python scripts/lockcheck.py lock/test.txt [--strict] [--keep torch] [--missing-ok]

Every package the lock names must be installed at the lock's version. With --strict,
nothing else may be installed either (pip, setuptools, wheel and the studio itself
aside): a package left behind in the environment must not make the tests pass.
--keep NAME skips a package the user chose to keep (a CUDA torch); --missing-ok
checks an environment that is about to be filled from the lock. Standard library
only: it runs before the environment has anything else.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

TOOLING = {"pip", "setuptools", "wheel", "scaling-studio"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    """name -> version of every `name==version` line (comments, options, editables skipped)."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            out[canonical(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return out


def differences(locked: dict[str, str], installed: dict[str, str], strict: bool, keep=(),
                missing_ok: bool = False) -> list[str]:
    keep = {canonical(k) for k in keep}
    found = []
    for name, version in sorted(locked.items()):
        if name in keep:
            continue
        if name not in installed:
            if missing_ok:
                continue
            found.append(f"{name}=={version} is locked but not installed")
        elif installed[name] != version:
            found.append(f"{name} is {installed[name]}, the lock says {version}")
    if strict:
        for name, version in sorted(installed.items()):
            if name not in locked and name not in TOOLING and name not in keep:
                found.append(f"{name}=={version} is installed but not in the lock")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("lock")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--keep", action="append", default=[])
    parser.add_argument("--missing-ok", action="store_true", help="only wrong versions and extra packages count")
    args = parser.parse_args(argv)
    with open(args.lock, encoding="utf-8") as f:
        locked = pins(f)
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    found = differences(locked, pins(freeze), args.strict, args.keep, args.missing_ok)
    for line in found:
        print(f"lockcheck: {line}")
    if not found:
        print(f"lockcheck: {sys.prefix} matches {args.lock} ({len(locked)} packages)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
