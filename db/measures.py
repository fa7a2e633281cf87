"""The columns migration 006 added, written for a finished run: energy of the
generation window per run and per rank, and the three peak-memory figures per rank.
Kept apart from db/store.py so the store only calls it."""

from __future__ import annotations

import sqlite3

from runner.energy import run_energy

RANK_COLUMNS = ("device_allocated_peak_bytes", "device_reserved_peak_bytes", "host_rss_peak_bytes")


def store_measures(conn: sqlite3.Connection, run_id: int, result) -> None:
    succeeded = result.status == "succeeded"
    energy = run_energy(result.ranks, result.tokens, result.raw_tokens) if succeeded else {}
    conn.execute(
        "UPDATE runs SET energy_joules = ?, joules_per_token = ?, joules_per_position = ?, "
        "average_power_watts = ?, energy_note = ? WHERE id = ?",
        (energy.get("energy_joules"), energy.get("joules_per_token"), energy.get("joules_per_position"),
         energy.get("average_power_watts"), energy.get("energy_note") if succeeded else None, run_id),
    )
    conn.executemany(
        "UPDATE ranks SET device_allocated_peak_bytes = ?, device_reserved_peak_bytes = ?, "
        "host_rss_peak_bytes = ?, energy_joules = ? WHERE run_id = ? AND rank = ?",
        [(*(r.get(c) for c in RANK_COLUMNS), (r.get("energy") or {}).get("joules"), run_id, r["rank"])
         for r in result.ranks],
    )
