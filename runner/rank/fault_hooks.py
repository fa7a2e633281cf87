"""TEST HOOKS, unset in real use: environment variables that let fault tests hold
or fail a worker rank at a chosen point. Each is read where it acts, so a real run
(none set) pays one dictionary look-up."""

from __future__ import annotations

import os
import time


def pause(where: str) -> None:
    """STUDIO_TEST_PAUSE_LOAD / STUDIO_TEST_PAUSE_BATCH (seconds) hold a rank at that
    point, so fault tests can kill or stop a run there."""
    seconds = os.environ.get(f"STUDIO_TEST_PAUSE_{where.upper()}")
    if seconds:
        time.sleep(float(seconds))


def fail_cell(cell: int, rank: int, ranks: int) -> None:
    """STUDIO_TEST_FAIL_CELL=k raises on the last rank of the launch's run k, at its
    first timed batch, as an out-of-memory would."""
    if os.environ.get("STUDIO_TEST_FAIL_CELL") == str(cell) and rank == ranks - 1:
        raise RuntimeError(f"injected failure in run {cell} of the launch (STUDIO_TEST_FAIL_CELL)")


def fail_in_forward(model, rank: int, ranks: int) -> None:
    """STUDIO_TEST_FAIL_FORWARD=k: the launch's last rank raises at its k-th model
    forward, inside `generate`, once. Inside, because that is where an out-of-memory
    strikes a tensor group: its peers are then already in the step's all-reduce."""
    at = os.environ.get("STUDIO_TEST_FAIL_FORWARD")
    if not at or rank != ranks - 1:
        return
    calls = [0]

    def hook(module, args):
        calls[0] += 1
        if calls[0] == int(at):
            raise RuntimeError(f"injected failure at forward {at} of rank {rank} (STUDIO_TEST_FAIL_FORWARD)")

    model.register_forward_pre_hook(hook)
