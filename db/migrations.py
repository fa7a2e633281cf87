"""Named schema migrations, applied in the order of their names, each once,
each in a transaction.

Add a migration with the next number; never edit one that has shipped.
`db.migrate` applies them. The read-only views are not changed here: `db.views`
defines them as they are now and `db.migrate` makes them again after migrating.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Callable

from db.shipped_views import SWEEP_SUMMARY_BY_LAYOUT_012, SWEEP_SUMMARY_BY_WORLD_SIZE_006, VIEWS_002

# (name, SQL text or a function of the connection); applied sorted by name
MIGRATIONS: list[tuple[str, str | Callable[[sqlite3.Connection], None]]] = []
# migrations that rebuild a table run with foreign keys off (SQLite's documented way:
# otherwise dropping the old table cascades into its children), checked before commit
REBUILDS: set[str] = set()


def migration(name: str, sql: str | Callable[[sqlite3.Connection], None], *, rebuilds: bool = False) -> None:
    MIGRATIONS.append((name, sql))
    if rebuilds:
        REBUILDS.add(name)


migration(
    "001_initial",
    """
    CREATE TABLE IF NOT EXISTS sweeps (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        name TEXT,
        status TEXT NOT NULL,
        model TEXT,
        mode TEXT,
        batch_size INTEGER,
        max_new_tokens INTEGER,
        num_prompts INTEGER,
        gpu_counts TEXT,
        repeats INTEGER,
        settings TEXT,
        external INTEGER NOT NULL DEFAULT 0,
        source TEXT
    );
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
        repeat_index INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        status TEXT NOT NULL,
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        max_new_tokens INTEGER NOT NULL,
        num_gpus INTEGER NOT NULL,
        num_nodes INTEGER NOT NULL DEFAULT 1,
        world_size INTEGER,
        device TEXT,
        dtype TEXT,
        num_prompts INTEGER NOT NULL,
        tokens INTEGER,
        raw_tokens INTEGER,
        padding_tokens INTEGER,
        seconds REAL,
        tokens_per_second REAL,
        imbalance REAL,
        config TEXT NOT NULL,
        environment TEXT,
        phases TEXT,
        plan TEXT,
        error TEXT,
        stderr_tail TEXT,
        exit_code INTEGER,
        partial INTEGER NOT NULL DEFAULT 0,
        pids TEXT,
        label TEXT
    );
    CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id);
    CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
    CREATE TABLE IF NOT EXISTS outputs (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        prompt_index INTEGER NOT NULL,
        rank INTEGER NOT NULL,
        prompt TEXT NOT NULL,
        output TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        raw_tokens INTEGER
    );
    CREATE INDEX IF NOT EXISTS outputs_run ON outputs(run_id, prompt_index);
    CREATE TABLE IF NOT EXISTS ranks (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        node INTEGER NOT NULL DEFAULT 0,
        hostname TEXT,
        num_prompts INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        raw_tokens INTEGER,
        seconds REAL NOT NULL,
        peak_memory_bytes INTEGER,
        timeline TEXT
    );
    CREATE INDEX IF NOT EXISTS ranks_run ON ranks(run_id, rank);
    """,
)


# Published reference figures (sweeps.external = 1) are read-only at the database
# level too, so no code path (or stray SQL) can edit or delete them by accident.
migration(
    "004_analysis_reference_readonly",
    """
    CREATE TRIGGER IF NOT EXISTS external_sweep_no_delete BEFORE DELETE ON sweeps WHEN OLD.external = 1
    BEGIN SELECT RAISE(ABORT, 'reference sweeps are read-only'); END;
    CREATE TRIGGER IF NOT EXISTS external_sweep_no_update BEFORE UPDATE ON sweeps WHEN OLD.external = 1
    BEGIN SELECT RAISE(ABORT, 'reference sweeps are read-only'); END;
    CREATE TRIGGER IF NOT EXISTS external_run_no_delete BEFORE DELETE ON runs
    WHEN EXISTS (SELECT 1 FROM sweeps WHERE id = OLD.sweep_id AND external = 1)
    BEGIN SELECT RAISE(ABORT, 'reference runs are read-only'); END;
    CREATE TRIGGER IF NOT EXISTS external_run_no_update BEFORE UPDATE ON runs
    WHEN EXISTS (SELECT 1 FROM sweeps WHERE id = OLD.sweep_id AND external = 1)
    BEGIN SELECT RAISE(ABORT, 'reference runs are read-only'); END;
    """,
)


# Read-only views for browsing the database as it is (`datasette studio.db`, or any
# SQLite client): one row per run with its rank/output counts, and one row per sweep
# and GPU layout with the median throughput (the figure the charts use), speedup and
# efficiency over the sweep's smallest layout. Multi-node runs count nodes x GPUs.
migration(
    "002_views",
    VIEWS_002,
)


# Memory-bandwidth roofline of a run (runner/roofline.py): achieved GB/s, its
# share of the devices' peak, and the detail (bytes, peak and its source, per rank).
migration(
    "003_roofline",
    """
    ALTER TABLE runs ADD COLUMN bandwidth_gbps REAL;
    ALTER TABLE runs ADD COLUMN bandwidth_utilisation REAL;
    ALTER TABLE runs ADD COLUMN roofline TEXT;
    """,
)


# Which program made a sweep, 'server' (the web studio's supervisor) or 'cli', and
# the process that runs it (JSON: PID and start time). At start-up a server leaves
# alone the sweeps of a live owner, and resumes only its own kind's queued runs.
migration(
    "005_sweep_origin_and_owner",
    """
    ALTER TABLE sweeps ADD COLUMN origin TEXT;
    ALTER TABLE sweeps ADD COLUMN owner TEXT;
    """,
)


# sweep_summary grouped by world size (GPUs over all nodes), as `studio.analysis.stats`
# groups runs for every chart and table: 2 nodes x 1 GPU and 1 node x 2 GPUs are
# one row, its layouts listed. Median, speedup and efficiency are computed as
# `studio.analysis.stats.scaling_series` computes them (tests/test_stats.py checks that).
migration(
    "006_sweep_summary_by_world_size",
    SWEEP_SUMMARY_BY_WORLD_SIZE_006,
)


def _autoincrement_ids(conn: sqlite3.Connection) -> None:
    """Rebuild sweeps and runs with AUTOINCREMENT, every row kept: without it SQLite
    hands the id of the newest row, once deleted, to the next one, and a client
    holding the old id would read (or delete) a different sweep."""
    saved = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') "
                         "AND sql IS NOT NULL ORDER BY type = 'view', rowid").fetchall()
    for kind, name, _ in saved:  # views and triggers name these tables: out of the way while they change
        conn.execute(f'DROP {kind.upper()} "{name}"')
    for table in ("sweeps", "runs"):
        sql, = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if "AUTOINCREMENT" in sql.upper():
            continue
        indexes = [row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
        rebuilt = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1)
        rebuilt = re.sub(r"^CREATE TABLE (IF NOT EXISTS )?\"?\w+\"?", f"CREATE TABLE {table}_rebuilt", rebuilt)
        conn.execute(rebuilt)
        columns = ", ".join(f'"{row[1]}"' for row in conn.execute(f"PRAGMA table_info({table})"))
        conn.execute(f"INSERT INTO {table}_rebuilt ({columns}) SELECT {columns} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
        for index in indexes:
            conn.execute(index)
    for _, _, sql in saved:
        conn.execute(sql)


migration("007_ids_never_reused", _autoincrement_ids, rebuilds=True)


# Per-request latency (runner.metrics) on each output, the run's percentiles of it,
# and the exact prompt length of synthetic prompts (a grid axis).
migration(
    "008_latency_and_prompt_tokens",
    """
    ALTER TABLE outputs ADD COLUMN queue_ms REAL;
    ALTER TABLE outputs ADD COLUMN ttft_ms REAL;
    ALTER TABLE outputs ADD COLUMN tpot_ms REAL;
    ALTER TABLE outputs ADD COLUMN latency_ms REAL;
    ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER;
    ALTER TABLE runs ADD COLUMN ttft_ms_p50 REAL;
    ALTER TABLE runs ADD COLUMN ttft_ms_p90 REAL;
    ALTER TABLE runs ADD COLUMN ttft_ms_p99 REAL;
    ALTER TABLE runs ADD COLUMN tpot_ms_p50 REAL;
    ALTER TABLE runs ADD COLUMN tpot_ms_p90 REAL;
    ALTER TABLE runs ADD COLUMN tpot_ms_p99 REAL;
    ALTER TABLE runs ADD COLUMN latency_ms_p50 REAL;
    ALTER TABLE runs ADD COLUMN latency_ms_p90 REAL;
    ALTER TABLE runs ADD COLUMN latency_ms_p99 REAL;
    """,
)


# Peak memory, one thing per column (device-allocated, device-reserved, host RSS;
# `ranks.peak_memory_bytes` keeps its old mixed meaning for older rows), and the
# energy of the generation window where the GPU reports it (runner/rank/energy.py).
migration(
    "009_memory_and_energy",
    """
    ALTER TABLE ranks ADD COLUMN device_allocated_peak_bytes INTEGER;
    ALTER TABLE ranks ADD COLUMN device_reserved_peak_bytes INTEGER;
    ALTER TABLE ranks ADD COLUMN host_rss_peak_bytes INTEGER;
    ALTER TABLE ranks ADD COLUMN energy_joules REAL;
    ALTER TABLE runs ADD COLUMN energy_joules REAL;
    ALTER TABLE runs ADD COLUMN joules_per_token REAL;
    ALTER TABLE runs ADD COLUMN joules_per_position REAL;
    ALTER TABLE runs ADD COLUMN average_power_watts REAL;
    ALTER TABLE runs ADD COLUMN energy_note TEXT;
    """,
)


# Layouts (issue 13): how a run's GPUs were laid out (tensor-parallel groups of
# tp_size ranks, dp_size copies of the model), the share of a sample decode spent
# in tensor-parallel collectives, and the correctness gate: the greedy token ids of
# every output, and each run's agreement with the first run of its sweep that had
# the same generation settings.
migration(
    "010_layouts_and_agreement",
    """
    ALTER TABLE runs ADD COLUMN tp_size INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN dp_size INTEGER;
    ALTER TABLE runs ADD COLUMN comm_fraction REAL;
    ALTER TABLE runs ADD COLUMN agreement REAL;
    ALTER TABLE runs ADD COLUMN agreement_reference INTEGER;
    ALTER TABLE runs ADD COLUMN agreement_detail TEXT;
    ALTER TABLE outputs ADD COLUMN token_ids TEXT;
    """,
)


# Shared launches (runner.host.launch_groups): one `accelerate launch` serves several runs
# of a sweep. Its own phases (launch, imports, load) are stored once, on it; each
# run keeps its own (warm-up, barrier, generate, ...) and names its launch.
migration(
    "011_shared_launches",
    """
    CREATE TABLE IF NOT EXISTS launches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        world_size INTEGER NOT NULL,
        num_runs INTEGER NOT NULL,
        phases TEXT,
        error TEXT,
        relaunch_of INTEGER REFERENCES launches(id) ON DELETE SET NULL
    );
    ALTER TABLE runs ADD COLUMN launch_id INTEGER REFERENCES launches(id) ON DELETE SET NULL;
    CREATE INDEX IF NOT EXISTS runs_launch_id ON runs(launch_id);
    """,
)



# Layouts: runs of one world size may hold the model in several layouts (tp sizes), kept
# apart as series by studio.analysis.stats; the view too, each from its own smallest world size.
migration(
    "012_sweep_summary_by_layout",
    SWEEP_SUMMARY_BY_LAYOUT_012,
)


# The roofline's bytes split into the weights the run read and the KV cache traffic it
# counted, and the cache kind that traffic was counted for (runner/roofline.py): the
# what-if predictions scale the two parts apart, which the total alone cannot tell.
migration(
    "013_roofline_bytes",
    """
    ALTER TABLE runs ADD COLUMN roofline_weight_bytes INTEGER;
    ALTER TABLE runs ADD COLUMN roofline_kv_bytes INTEGER;
    ALTER TABLE runs ADD COLUMN roofline_cache TEXT;
    """,
)


# Runs imported from other tools' result files (studio.exchange.peers): which tool
# measured each (`tool`, NULL for the studio's own), the scenario it offered (History
# filters by both), and the import it came from. One row per imported file, keyed by
# its content hash, so importing the same file again adds nothing. Imported runs and
# sweeps are read-only: the triggers refuse any change (deleting them is allowed).
migration(
    "014_imported_runs",
    """
    CREATE TABLE IF NOT EXISTS imports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        content_hash TEXT NOT NULL UNIQUE,
        file_name TEXT NOT NULL,
        tool TEXT NOT NULL,
        tool_version TEXT,
        format TEXT NOT NULL,
        imported_at TEXT NOT NULL,
        sweep_id INTEGER REFERENCES sweeps(id) ON DELETE CASCADE,
        labels TEXT
    );
    ALTER TABLE runs ADD COLUMN tool TEXT;
    ALTER TABLE runs ADD COLUMN scenario TEXT;
    ALTER TABLE runs ADD COLUMN import_id INTEGER;
    CREATE INDEX IF NOT EXISTS runs_import ON runs(import_id);
    CREATE TRIGGER IF NOT EXISTS imported_run_no_update BEFORE UPDATE ON runs WHEN OLD.import_id IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'imported runs are read-only'); END;
    CREATE TRIGGER IF NOT EXISTS imported_sweep_no_update BEFORE UPDATE ON sweeps WHEN OLD.origin = 'import'
    BEGIN SELECT RAISE(ABORT, 'imported sweeps are read-only'); END;
    """,
)


# Prices per GPU-hour kept with a sweep (studio.analysis.cost): the price the user gave
# and the table of prices per GPU model they edited, as JSON; NULL until one is saved.
migration(
    "015_sweep_prices",
    """
    ALTER TABLE sweeps ADD COLUMN prices TEXT;
    """,
)


# The server scenario (issue 26): one run per load offered to a launched (or given)
# server. `runs.mode` is 'server' and `runs.scenario` names the load as imports do;
# these hold what an offline run has no use for: the offered rate, the throughput in
# requests, goodput, errors, whether the client fell behind its schedule, the profile,
# the engine's command template (or URL) and the server's log tail; per request, its
# inter-token gaps (JSON), its client lag and its error.
migration(
    "016_server_runs",
    """
    ALTER TABLE runs ADD COLUMN offered_rate REAL;
    ALTER TABLE runs ADD COLUMN requests_per_second REAL;
    ALTER TABLE runs ADD COLUMN goodput REAL;
    ALTER TABLE runs ADD COLUMN errors INTEGER;
    ALTER TABLE runs ADD COLUMN client_lagged INTEGER;
    ALTER TABLE runs ADD COLUMN max_client_lag_s REAL;
    ALTER TABLE runs ADD COLUMN profile TEXT;
    ALTER TABLE runs ADD COLUMN engine TEXT;
    ALTER TABLE runs ADD COLUMN server_url TEXT;
    ALTER TABLE runs ADD COLUMN server_log_tail TEXT;
    ALTER TABLE runs ADD COLUMN itl_ms_p50 REAL;
    ALTER TABLE runs ADD COLUMN itl_ms_p90 REAL;
    ALTER TABLE runs ADD COLUMN itl_ms_p99 REAL;
    ALTER TABLE outputs ADD COLUMN itl_ms TEXT;
    ALTER TABLE outputs ADD COLUMN client_lag_ms REAL;
    ALTER TABLE outputs ADD COLUMN error TEXT;
    """,
)
