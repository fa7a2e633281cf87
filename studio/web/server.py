"""Where the page may listen and what it must never serve: the checks
`studio serve` (`studio.cli.serve`) makes before it starts the page."""

from __future__ import annotations

import ipaddress
import os

# Before gradio is imported anywhere in this process: it reads this at import.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MAX_UPLOAD = "20mb"  # prompt files; runner.host.prompts refuses more than 20 MiB as well


def bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def url_host(host: str) -> str:
    """The host as a URL spells it: an IPv6 address in brackets (http://[::1]:7860)."""
    host = bare_host(host)
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    host = bare_host(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password.strip():
        raise ValueError("--auth must be user:password, and the user and the password must not be blank "
                         "(spaces alone count as blank)")
    return user, password


def never_served(db_path) -> list[str]:
    """Paths /gradio_api/file= must refuse (403) even if they end up under a folder gradio
    serves: the database and its WAL files, the studio's home (runs, models), the model caches."""
    from pathlib import Path

    from runner.paths import models_dir, runs_dir, studio_home

    db = Path(db_path).resolve()
    paths = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), studio_home(), runs_dir(), models_dir()]
    try:
        from huggingface_hub import constants

        paths += [Path(constants.HF_HOME), Path(constants.HF_HUB_CACHE)]
    except ImportError:
        pass
    for name in ("HF_HOME", "TRANSFORMERS_CACHE", "TORCH_HOME", "STUDIO_MODEL_DIRS"):
        paths += [Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p]
    return sorted({str(p.expanduser().resolve()) for p in paths})
