"""Storing runs imported from other tools' result files (studio.exchange.peers):
one sweep per file or sweep folder, one run per benchmark, the per-request figures
as outputs, and an `imports` row keyed by the file's content hash, all in one
transaction, so a refused or failing import leaves nothing behind.

The rows arrive worked out (studio.exchange.peers.importer); like db.store, this
module computes nothing.
"""

from __future__ import annotations

from db.connection import _stored, now
from db.store import Store

ORIGIN = "import"


def find_import(store: Store, content_hash: str) -> dict | None:
    """The import of this content, while any of its runs is still stored."""
    rows = store._rows(
        "SELECT i.*, (SELECT COUNT(*) FROM runs r WHERE r.import_id = i.id) AS run_count FROM imports i "
        "WHERE i.content_hash = ?", (content_hash,))
    return rows[0] if rows and rows[0]["run_count"] else None


def add_import(store: Store, record: dict, sweep: dict, runs: list[dict]) -> dict:
    """Insert the import, its sweep, runs and per-request outputs at once.

    `record`: content_hash, file_name, tool, tool_version, format, labels; `sweep`: sweep
    columns; `runs`: run columns, each with "outputs" (per-request rows). Returns
    {import_id, sweep_id, run_ids, added}: added False (and nothing written) when the
    same content is stored already."""
    with store.transaction() as conn:
        row = conn.execute("SELECT i.id, i.sweep_id, (SELECT COUNT(*) FROM runs r WHERE r.import_id = i.id) "
                           "FROM imports i WHERE i.content_hash = ?", (record["content_hash"],)).fetchone()
        if row and row[2]:
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE import_id = ? ORDER BY id", (row[0],))]
            return {"import_id": row[0], "sweep_id": row[1], "run_ids": ids, "added": False}
        if row:  # every run of an earlier import was deleted: this import starts afresh
            conn.execute("DELETE FROM imports WHERE id = ?", (row[0],))
        stamp = now()
        sweep_id = store.db["sweeps"].insert({
            **{k: _stored(v) for k, v in sweep.items()}, "created_at": sweep.get("created_at") or stamp,
            "finished_at": sweep.get("finished_at") or stamp, "origin": ORIGIN, "external": 0,
        }).last_pk
        import_id = store.db["imports"].insert({
            "content_hash": record["content_hash"], "file_name": record["file_name"], "tool": record["tool"],
            "tool_version": record.get("tool_version"), "format": record["format"], "imported_at": stamp,
            "sweep_id": sweep_id, "labels": _stored(record.get("labels") or {}),
        }).last_pk
        run_ids = []
        for run in runs:
            outputs = run.get("outputs") or []
            columns = {k: _stored(v) for k, v in run.items() if k != "outputs"}
            run_id = store.db["runs"].insert({**columns, "sweep_id": sweep_id, "import_id": import_id,
                                              "created_at": columns.get("created_at") or stamp,
                                              "finished_at": columns.get("finished_at") or stamp}).last_pk
            store.db["outputs"].insert_all({"run_id": run_id, **o} for o in outputs)
            run_ids.append(run_id)
    return {"import_id": import_id, "sweep_id": sweep_id, "run_ids": run_ids, "added": True}


def list_imports(store: Store) -> list[dict]:
    return store._rows(
        "SELECT i.*, (SELECT COUNT(*) FROM runs r WHERE r.import_id = i.id) AS run_count FROM imports i "
        "ORDER BY i.id DESC")


def imported_runs(store: Store, *, tool: str | None = None, scenario: str | None = None,
                  limit: int = 1000) -> list[dict]:
    """Imported runs, newest first, filtered by tool and scenario (kind, e.g. 'concurrency')."""
    where, params = ["r.import_id IS NOT NULL"], []
    if tool:
        where.append("r.tool = ?")
        params.append(tool)
    if scenario:
        where.append("(r.scenario = ? OR r.mode = ?)")
        params += [scenario, scenario]
    return store._rows(
        f"SELECT r.*, i.file_name, i.tool_version, i.format FROM runs r JOIN imports i ON i.id = r.import_id "
        f"WHERE {' AND '.join(where)} ORDER BY r.id DESC LIMIT ?", (*params, int(limit)))


def distinct_imported(store: Store, column: str) -> list[str]:
    if column not in ("tool", "mode"):
        raise ValueError(f"cannot list values of {column}")
    return [r["v"] for r in store._rows(f"SELECT DISTINCT {column} AS v FROM runs WHERE import_id IS NOT NULL "
                                        f"AND {column} IS NOT NULL ORDER BY {column}")]
