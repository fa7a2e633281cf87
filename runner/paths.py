"""Where the studio keeps its files: one home folder, overridable per process."""

from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    return Path(os.environ.get("STUDIO_HOME") or Path.home() / ".scaling-studio").expanduser()


def models_dir() -> Path:
    return studio_home() / "models"


def runs_dir() -> Path:
    return studio_home() / "runs"


def default_db_path() -> Path:
    return Path(os.environ.get("STUDIO_DB") or studio_home() / "studio.db").expanduser()
