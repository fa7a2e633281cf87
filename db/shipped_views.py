"""The SQL text of the shipped migrations that (re)wrote the read-only summary views
(002, 006, 012), kept apart from db/migrations.py so that module stays a readable
list. Frozen: a database made by an older version replays them as they were
(tests/test_migrations.py pins their bytes). The views as they are now are defined
once, in db.views, and recreated from there after every migration, so a change to a
view is made there and needs no migration here."""

VIEWS_002 = """
    CREATE VIEW IF NOT EXISTS run_summary AS
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
    LEFT JOIN sweeps s ON s.id = r.sweep_id;
    CREATE VIEW IF NOT EXISTS sweep_summary AS
    WITH ranked AS (
        SELECT sweep_id, num_nodes, num_gpus, tokens_per_second,
               ROW_NUMBER() OVER (PARTITION BY sweep_id, num_nodes, num_gpus ORDER BY tokens_per_second) AS position,
               COUNT(*) OVER (PARTITION BY sweep_id, num_nodes, num_gpus) AS n
        FROM runs
        WHERE status = 'succeeded' AND tokens_per_second IS NOT NULL AND sweep_id IS NOT NULL
    ),
    medians AS (
        SELECT sweep_id, num_nodes, num_gpus, AVG(tokens_per_second) AS median_tokens_per_second
        FROM ranked
        WHERE position IN ((n + 1) / 2, (n + 2) / 2)
        GROUP BY sweep_id, num_nodes, num_gpus
    ),
    baseline AS (
        SELECT sweep_id, median_tokens_per_second AS base, num_nodes * num_gpus AS base_gpus
        FROM (SELECT m.*, ROW_NUMBER() OVER (PARTITION BY sweep_id ORDER BY num_nodes * num_gpus, num_nodes) AS first
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
        r.num_nodes,
        r.num_gpus AS gpus_per_node,
        r.num_nodes * r.num_gpus AS total_gpus,
        COUNT(*) AS runs,
        SUM(r.status = 'succeeded') AS succeeded,
        SUM(r.status IN ('failed', 'cancelled', 'interrupted')) AS not_succeeded,
        m.median_tokens_per_second,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS mean_tokens_per_second,
        MIN(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS min_tokens_per_second,
        MAX(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS max_tokens_per_second,
        m.median_tokens_per_second / b.base AS speedup,
        -- speedup per unit of hardware: 1.0 is perfect scaling from the smallest layout
        m.median_tokens_per_second / b.base
            / ((r.num_nodes * r.num_gpus * 1.0) / b.base_gpus) AS efficiency,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.seconds END) AS mean_seconds,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.imbalance END) AS mean_imbalance
    FROM sweeps s
    JOIN runs r ON r.sweep_id = s.id
    LEFT JOIN medians m ON m.sweep_id = s.id AND m.num_nodes = r.num_nodes AND m.num_gpus = r.num_gpus
    LEFT JOIN baseline b ON b.sweep_id = s.id
    GROUP BY s.id, r.num_nodes, r.num_gpus;
    """


SWEEP_SUMMARY_BY_WORLD_SIZE_006 = """
    DROP VIEW IF EXISTS sweep_summary;
    CREATE VIEW sweep_summary AS
    WITH measured AS (
        SELECT sweep_id, num_nodes * num_gpus AS total_gpus, tokens_per_second, seconds
        FROM runs
        WHERE status = 'succeeded' AND tokens_per_second > 0 AND sweep_id IS NOT NULL
    ),
    ranked AS (
        SELECT sweep_id, total_gpus, tokens_per_second, seconds,
               ROW_NUMBER() OVER (PARTITION BY sweep_id, total_gpus ORDER BY tokens_per_second) AS tps_position,
               ROW_NUMBER() OVER (PARTITION BY sweep_id, total_gpus ORDER BY seconds) AS seconds_position,
               COUNT(*) OVER (PARTITION BY sweep_id, total_gpus) AS n
        FROM measured
    ),
    medians AS (
        SELECT sweep_id, total_gpus,
               AVG(CASE WHEN tps_position IN ((n + 1) / 2, (n + 2) / 2) THEN tokens_per_second END)
                   AS median_tokens_per_second,
               AVG(CASE WHEN seconds_position IN ((n + 1) / 2, (n + 2) / 2) THEN seconds END) AS median_seconds
        FROM ranked
        GROUP BY sweep_id, total_gpus
    ),
    baseline AS (
        SELECT sweep_id, median_tokens_per_second AS base, total_gpus AS base_gpus
        FROM (SELECT m.*, ROW_NUMBER() OVER (PARTITION BY sweep_id ORDER BY total_gpus) AS first FROM medians m)
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
        GROUP_CONCAT(DISTINCT r.num_nodes || 'x' || r.num_gpus) AS layouts,
        COUNT(*) AS runs,
        SUM(r.status = 'succeeded') AS succeeded,
        SUM(r.status IN ('failed', 'cancelled', 'interrupted')) AS not_succeeded,
        m.median_tokens_per_second,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS mean_tokens_per_second,
        MIN(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS min_tokens_per_second,
        MAX(CASE WHEN r.status = 'succeeded' THEN r.tokens_per_second END) AS max_tokens_per_second,
        m.median_tokens_per_second / b.base AS speedup,
        -- speedup per unit of hardware: 1.0 is perfect scaling from the smallest world size
        m.median_tokens_per_second / b.base / ((r.num_nodes * r.num_gpus * 1.0) / b.base_gpus) AS efficiency,
        m.median_seconds,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.seconds END) AS mean_seconds,
        AVG(CASE WHEN r.status = 'succeeded' THEN r.imbalance END) AS mean_imbalance
    FROM sweeps s
    JOIN runs r ON r.sweep_id = s.id
    LEFT JOIN medians m ON m.sweep_id = s.id AND m.total_gpus = r.num_nodes * r.num_gpus
    LEFT JOIN baseline b ON b.sweep_id = s.id
    GROUP BY s.id, r.num_nodes * r.num_gpus;
    """


SWEEP_SUMMARY_BY_LAYOUT_012 = """
    DROP VIEW IF EXISTS sweep_summary;
    CREATE VIEW sweep_summary AS
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
    GROUP BY s.id, r.num_nodes * r.num_gpus, r.tp_size;
    """
