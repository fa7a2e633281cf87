"""The worker's side of the wire: one JSON object per stdout line, behind a marker
so that library chatter on stdout is never mistaken for an event."""

from __future__ import annotations

import json
import sys

MARKER = "@@studio "


def emit(event: str, **fields) -> None:
    sys.stdout.write(MARKER + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse(line: str) -> dict | None:
    """The event on a stdout line, or None for any other output."""
    start = line.find(MARKER)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(MARKER) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
