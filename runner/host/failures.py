"""Why a run did not finish, in words a user can act on.

Reads what the launcher saw — how it stopped the run, the exit code, the
workers' error events, which ranks vanished and torchrun's root-cause report on
stderr — and returns the stored status, the message and the stderr tail, with
the failing rank's own lines first.
"""

from __future__ import annotations

import re
import signal


def _with_rank_first(streams, rank, tail: str) -> str:
    rank_tail = streams.rank_tail(int(rank))
    if not rank_tail:
        return tail
    return f"--- rank {rank}, last lines of its stderr ---\n{rank_tail}\n--- all processes ---\n{tail}"


def explain_failure(*, stopped_because: str | None, cancel_reason: str, exit_code: int | None, timeout: float,
                    streams, died: list[int], tail: str) -> tuple[str, str, str]:
    """(status, message, stderr tail) of a run that did not succeed."""
    errors = streams.worker_errors()
    if stopped_because == "cancelled" and cancel_reason == "shutdown":
        # the server is stopping, nobody chose to stop this run: it was interrupted
        return "interrupted", "the studio server stopped during this run", tail
    if stopped_because == "cancelled":
        return "cancelled", "cancelled by the user", tail
    if stopped_because == "timeout":
        return "failed", f"timed out after {timeout:.0f} s; raise the timeout or run less work", tail
    if errors:
        message = "; ".join(f"rank {e.get('rank')}: {e.get('message')}" for e in errors[:4])
        return "failed", message, _with_rank_first(streams, errors[0].get("rank", 0), tail)
    if stopped_because is None and exit_code is not None and exit_code < 0:
        return "failed", f"accelerate launch was killed by {signal_name(-exit_code)}; its ranks were stopped", tail
    rank = first_failed_rank(streams.stderr)
    if died or rank is not None:
        rank = died[0] if rank is None else rank
        pid = streams.rank_pids.get(rank)
        how = torchrun_exit(streams.stderr)
        message = (f"rank {rank}" + (f" (pid {pid})" if pid else "") + " died before finishing"
                   + (f" ({how})" if how else "") + "; the other ranks were stopped")
        return "failed", message, _with_rank_first(streams, rank, tail)
    last = next((line for line in reversed(streams.stderr) if line.strip()), "")
    return "failed", f"accelerate launch exited with code {exit_code}" + (f": {last.strip()}" if last else ""), tail


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _root_cause(stderr_lines) -> list[str]:
    """The lines of torchrun's 'Root Cause (first observed failure)' block, if any."""
    lines = list(stderr_lines)
    for i, line in enumerate(lines):
        if "Root Cause" in line:
            return lines[i + 1 : i + 9]
    return []


def first_failed_rank(stderr_lines) -> int | None:
    """The rank torchrun names as the first failure, if it printed its report."""
    for line in _root_cause(stderr_lines):
        match = re.search(r"^\s*rank\s*:\s*(\d+)", line)
        if match:
            return int(match.group(1))
    return None


def torchrun_exit(stderr_lines) -> str:
    """'killed by SIGKILL' or 'exit code 1' for torchrun's first failure, if reported."""
    for line in _root_cause(stderr_lines):
        match = re.search(r"exitcode\s*:\s*(-?\d+)", line)
        if match:
            code = int(match.group(1))
            return f"killed by {signal_name(-code)}" if code < 0 else f"exit code {code}"
    return ""


def rendezvous_hint(config) -> str:
    """What to check when a multi-node launch failed before any rank started: the
    nodes never met (torchrun starts the ranks only once every node has joined)."""
    if config.num_nodes < 2:
        return ""
    other = "the other nodes" if config.node_rank == 0 else "node 0"
    return (f"; no rank started, so the {config.num_nodes} nodes never met at {config.main_address}:"
            f"{config.main_port}: start {other} with the same --nodes, --main-address and --main-port, "
            "and check that this machine can reach that address and port")
