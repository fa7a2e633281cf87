"""The read-only views for browsing the database as it is (`datasette studio.db`, or
any SQLite client), each defined once, here, as it is now.

`db.migrate` calls `refresh_views` after applying what a database lacks: each view
whose stored definition is not the one below is dropped and made again, in one
transaction. So a change to a view is made here and reaches every database the next
time it is opened, with no migration; the shipped migrations that once wrote the
views (db.shipped_views) stay as they were, for databases that replay them.

run_summary: one row per run with its rank and output counts. sweep_summary: one row
per sweep, world size (GPUs over all nodes) and tensor-parallel size, with the median
throughput, speedup and efficiency over the smallest world size of that tp, computed
as `studio.analysis.stats.scaling_series` computes them (tests/test_stats.py checks
that). A view dropped from VIEWS is left in databases that have it: drop it in a
migration. A migration that drops a column a view reads drops that view first.
"""

from __future__ import annotations

import sqlite3

RUN_SUMMARY = """
SELECT
    r.id AS run_id,
    r.sweep_id,
    s.name AS sweep_name,
    r.repeat_index,
    r.status,
    r.created_at,
    r.model,
    r.mode,
    r.batch_size,
    r.max_new_tokens,
    r.num_prompts,
    r.num_nodes,
    r.num_gpus AS gpus_per_node,
    r.num_nodes * r.num_gpus AS total_gpus,
    r.world_size,
    r.device,
    r.dtype,
    r.tokens,
    r.padding_tokens,
    r.seconds,
    r.tokens_per_second,
    r.imbalance,
    (SELECT COUNT(*) FROM ranks k WHERE k.run_id = r.id) AS rank_count,
    (SELECT COUNT(DISTINCT k.hostname) FROM ranks k WHERE k.run_id = r.id) AS host_count,
    (SELECT MAX(k.peak_memory_bytes) FROM ranks k WHERE k.run_id = r.id) AS peak_memory_bytes,
    (SELECT COUNT(*) FROM outputs o WHERE o.run_id = r.id) AS output_count,
    r.error
FROM runs r
LEFT JOIN sweeps s ON s.id = r.sweep_id
"""

SWEEP_SUMMARY = """
WITH measured AS (
    SELECT sweep_id, num_nodes * num_gpus AS total_gpus, tp_size, tokens_per_second, seconds
    FROM runs
    WHERE status = 'succeeded' AND tokens_per_second > 0 AND sweep_id IS NOT NULL
),
ranked AS (
    SELECT sweep_id, total_gpus, tp_size, tokens_per_second, seconds,
           ROW_NUMBER() OVER (PARTITION BY sweep_id, total_gpus, tp_size ORDER BY tokens_per_second)
               AS tps_position,
           ROW_NUMBER() OVER (PARTITION BY sweep_id, total_gpus, tp_size ORDER BY seconds) AS seconds_position,
           COUNT(*) OVER (PARTITION BY sweep_id, total_gpus, tp_size) AS n
    FROM measured
),
medians AS (
    SELECT sweep_id, total_gpus, tp_size,
           AVG(CASE WHEN tps_position IN ((n + 1) / 2, (n + 2) / 2) THEN tokens_per_second END)
               AS median_tokens_per_second,
           AVG(CASE WHEN seconds_position IN ((n + 1) / 2, (n + 2) / 2) THEN seconds END) AS median_seconds
    FROM ranked
    GROUP BY sweep_id, total_gpus, tp_size
),
baseline AS (
    SELECT sweep_id, tp_size, median_tokens_per_second AS base, total_gpus AS base_gpus
    FROM (SELECT m.*, ROW_NUMBER() OVER (PARTITION BY sweep_id, tp_size ORDER BY total_gpus) AS first
          FROM medians m)
    WHERE first = 1
)
SELECT
    s.id AS sweep_id,
    s.name AS sweep_name,
    s.status AS sweep_status,
    s.created_at,
    s.model,
    s.mode,
    s.batch_size,
    s.max_new_tokens,
    s.num_prompts,
    r.num_nodes * r.num_gpus AS total_gpus,
    r.tp_size,
    (r.num_nodes * r.num_gpus) / r.tp_size AS dp_size,
    GROUP_CONCAT(DISTINCT r.num_nodes || 'x' || r.num_gpus) AS layouts,
    COUNT(*) AS runs,
    SUM(r.status = 'succeeded') AS succeeded,
    SUM(r.status IN ('failed', 'cancelled', 'interrupted')) AS not_succeeded,
    m.median_tokens_per_second,
    AVG(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS mean_tokens_per_second,
    MIN(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS min_tokens_per_second,
    MAX(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS max_tokens_per_second,
    m.median_tokens_per_second / b.base AS speedup,
    -- speedup per unit of hardware: 1.0 is perfect scaling from the layout's smallest world size
    m.median_tokens_per_second / b.base / ((r.num_nodes * r.num_gpus * 1.0) / b.base_gpus) AS efficiency,
    m.median_seconds,
    AVG(CASE WHEN r.status = 'succeeded' THEN r.seconds END) AS mean_seconds,
    AVG(CASE WHEN r.status = 'succeeded' THEN r.imbalance END) AS mean_imbalance
FROM sweeps s
JOIN runs r ON r.sweep_id = s.id
LEFT JOIN medians m ON m.sweep_id = s.id AND m.total_gpus = r.num_nodes * r.num_gpus AND m.tp_size = r.tp_size
LEFT JOIN baseline b ON b.sweep_id = s.id AND b.tp_size = r.tp_size
GROUP BY s.id, r.num_nodes * r.num_gpus, r.tp_size
"""

# name -> the SELECT it shows
VIEWS: dict[str, str] = {"run_summary": RUN_SUMMARY, "sweep_summary": SWEEP_SUMMARY}


def create_statement(name: str) -> str:
    """The view's CREATE statement, written as SQLite keeps it in sqlite_master (no
    surrounding space, no semicolon), so a stored definition compares as text."""
    return f"CREATE VIEW {name} AS\n{VIEWS[name].strip()}"


def stale_views(conn: sqlite3.Connection) -> list[str]:
    """The views missing or stored with a definition other than the current one."""
    stored = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
    return [name for name in VIEWS if stored.get(name) != create_statement(name)]


def refresh_views(conn: sqlite3.Connection) -> list[str]:
    """Drop and make again each stale view, in one transaction; return their names. When
    nothing changed this is one read of sqlite_master."""
    if not stale_views(conn):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        stale = stale_views(conn)  # again, holding the write lock: another process may have just done it
        for name in stale:
            conn.execute(f'DROP VIEW IF EXISTS "{name}"')
            conn.execute(create_statement(name))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stale
