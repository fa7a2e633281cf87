"""API arguments as the types they claim to be. JSON lets a client send 61.9
for an id, "false" for a boolean or nothing at all; each of these either is
what the parameter means or is refused with the parameter named, before
anything is read, started or deleted."""

from __future__ import annotations

from runner.config import LARGEST, ConfigError, whole

LARGEST_ID = LARGEST  # SQLite's INTEGER


def record_id(name: str, value) -> int:
    """A run or sweep id: a whole number from 1 (runner.config.whole: an int, a float with
    no fraction, or ASCII digits; nothing else)."""
    return whole(name, value, 1, LARGEST_ID)


def optional_id(name: str, value) -> int | None:
    return None if value is None or value == "" else record_id(name, value)


def id_list(name: str, values) -> list[int]:
    """Ids given as one id or a list of them; none is an empty list."""
    if values is None or values == "":
        return []
    if not isinstance(values, (list, tuple)):
        values = [values]
    return [record_id(name, v) for v in values]


def boolean(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(name, f"must be true or false (a JSON boolean), got {value!r}")


def text(name: str, value, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, str):
        return value
    raise ConfigError(name, f"must be text, got {type(value).__name__} {value!r}")
