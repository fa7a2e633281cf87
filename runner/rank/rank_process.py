"""A worker rank's process hygiene and identity: its stderr tagged with its rank,
its death with its launcher and owner, its end when its tensor group cannot go on,
its GPU's UUID. Used by `runner/rank/worker.py`."""

from __future__ import annotations

import os
import sys


class RankPrefixed:
    """stderr with every line tagged `[rank N] `, so the launcher can show the tail
    of the one rank that died out of the interleaved stream of all ranks."""

    def __init__(self, stream, rank: str):
        self._stream, self._prefix, self._at_line_start = stream, f"[rank {rank}] ", True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self._prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def guard_rank() -> None:
    """Nothing of a run may outlive it: die with the launcher (torchrun put this rank
    in a session of its own, so killing the launcher's group misses it) and with
    the server or CLI that owns the run, however they end."""
    from runner.processes import die_with_parent, watch_owner

    die_with_parent()
    watch_owner()
    sys.stderr = RankPrefixed(sys.stderr, os.environ.get("RANK", "0"))


def leave_failed_tensor_group(tp: int, rank: int, error: str) -> None:
    """A rank of a tensor group (tp > 1) whose generation raised ends at once, its
    error reported. Its peers are inside a step's all-reduce on the group's
    communicator and wait there for it, while it would wait for them in the run's
    gather: each blocked in a collective the other never joins, until a timeout (10
    minutes on NCCL, the run's limit otherwise). The launcher fails the run on the
    error event and stops the peers; gloo peers fail at once on the closed socket."""
    if tp <= 1:
        return
    from runner.events import emit

    emit("error", rank=rank, message=error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def rank_uuid(device: str, expected: list[dict], local_index: int) -> str | None:
    """The rank's GPU UUID for NVML: the inventory's (nvidia-smi spells it as NVML
    does, and check_device has matched it to this device), else torch's."""
    if not device.startswith("cuda"):
        return None
    if local_index < len(expected) and expected[local_index].get("uuid"):
        return expected[local_index]["uuid"]
    import torch

    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    return str(uuid) if uuid else None
