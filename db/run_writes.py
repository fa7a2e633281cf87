"""Runs and their launches written to the store: made, marked running, finished
(the run, its outputs and its ranks in one transaction), ended when the server
that ran them is gone, deleted. A RunResult carries its derived figures; they are
stored as they come."""

from __future__ import annotations

import json
from typing import Iterable

from db.connection import StoreBase, _json, now
from runner.metrics import RUN_FIELDS as LATENCY_RUN_FIELDS

ENERGY_FIELDS = ("energy_joules", "joules_per_token", "joules_per_position", "average_power_watts", "energy_note")

# peak memory, one thing per column (ranks.peak_memory_bytes keeps its older mixed meaning)
RANK_MEMORY_FIELDS = ("device_allocated_peak_bytes", "device_reserved_peak_bytes", "host_rss_peak_bytes")



class RunWrites(StoreBase):
    def create_run(self, config: dict, *, sweep_id: int | None = None, repeat_index: int = 0,
                   status: str = "queued", dp_size: int | None = None) -> int:
        """`dp_size`: the copies of the model the run holds (RunConfig.dp_size), given by the caller."""
        with self.transaction():
            return self.db["runs"].insert({
                "sweep_id": sweep_id, "repeat_index": repeat_index, "created_at": now(), "status": status,
                "model": config["model"], "mode": config["mode"], "batch_size": config["batch_size"],
                "max_new_tokens": config["max_new_tokens"],
                # the column keeps its first name: GPUs (processes) per node, as RunConfig.gpus_per_node
                "num_gpus": config["gpus_per_node"] if "gpus_per_node" in config else config["num_gpus"],
                "num_nodes": config.get("num_nodes", 1), "num_prompts": len(config["prompts"]), "config": config,
                "prompt_tokens": config.get("prompt_tokens"),
                "tp_size": config.get("tp_size", 1), "dp_size": dp_size,
                "label": config.get("label", ""),
            }).last_pk

    def mark_running(self, run_id: int, pids: list[int] | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), pids = ? WHERE id = ?",
                (now(), _json(pids), run_id),
            )

    def set_pids(self, run_id: int, pids: list[int]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET pids = ? WHERE id = ?", (_json(pids), run_id))

    def set_pids_of_unfinished(self, run_ids: Iterable[int], pids: list[int]) -> None:
        """The processes of a shared launch, on each of its runs not ended yet (so a
        restart, or Stop, reaches them whichever run is under way)."""
        ids = [int(i) for i in run_ids]
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET pids = ? WHERE id IN ({','.join('?' * len(ids)) or 'NULL'}) "
                         "AND status IN ('queued', 'running')", (_json(pids), *ids))

    def create_launch(self, sweep_id: int | None, run_ids: Iterable[int], world_size: int,
                      relaunch_of: int | None = None) -> int:
        """A launch shared by `run_ids`, which now name it."""
        ids = [int(i) for i in run_ids]
        with self.transaction() as conn:
            launch_id = self.db["launches"].insert({
                "sweep_id": sweep_id, "created_at": now(), "status": "running", "world_size": world_size,
                "num_runs": len(ids), "relaunch_of": relaunch_of,
            }).last_pk
            conn.execute(f"UPDATE runs SET launch_id = ? WHERE id IN ({','.join('?' * len(ids)) or 'NULL'})",
                         (launch_id, *ids))
            return launch_id

    def finish_launch(self, launch_id: int, status: str, phases: dict | None, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE launches SET status = ?, finished_at = ?, phases = ?, error = ? WHERE id = ?",
                         (status, now(), _json(phases), error, launch_id))

    def finish_run(self, run_id: int, result) -> None:
        """Store a RunResult: the run row, its outputs and its ranks, all at once."""
        succeeded = result.status == "succeeded"

        def measured(value):  # a run that did not succeed reports no figures, whatever ran
            return value if succeeded else None

        roofline = measured(result.roofline) or {}
        latency = measured(result.latency) or {}
        energy = measured(result.energy) or {}
        with self.transaction() as conn:
            conn.execute("DELETE FROM outputs WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM ranks WHERE run_id = ?", (run_id,))
            self.db["runs"].update(run_id, {
                "status": result.status, "finished_at": now(), "world_size": result.world_size,
                "device": result.device, "dtype": result.dtype, "tokens": measured(result.tokens),
                "raw_tokens": measured(result.raw_tokens), "padding_tokens": measured(result.padding_tokens),
                "seconds": measured(result.seconds), "tokens_per_second": measured(result.tokens_per_second),
                "imbalance": measured(result.imbalance), "environment": _json(result.environment or None),
                "phases": _json(result.phases or None), "plan": _json(result.plan), "error": result.error,
                "stderr_tail": result.stderr_tail, "exit_code": result.exit_code, "partial": int(result.partial),
                "bandwidth_gbps": roofline.get("achieved_gbps"), "bandwidth_utilisation": roofline.get("utilisation"),
                "roofline": _json(roofline or None), "comm_fraction": measured(result.comm_fraction),
                "roofline_weight_bytes": roofline.get("weight_bytes_moved"),
                "roofline_kv_bytes": roofline.get("kv_bytes_moved"), "roofline_cache": roofline.get("cache"),
                **{name: latency.get(name) for name in LATENCY_RUN_FIELDS},
                **{name: energy.get(name) for name in ENERGY_FIELDS},
            })
            self.db["outputs"].insert_all(
                {"run_id": run_id, "prompt_index": o["prompt_index"], "rank": o["rank"], "prompt": o["prompt"],
                 "output": o["output"], "tokens": o["tokens"], "raw_tokens": o.get("raw_tokens"),
                 "token_ids": _json(o.get("token_ids")),
                 **{name: o.get(name) for name in ("queue_ms", "ttft_ms", "tpot_ms", "latency_ms")}}
                for o in result.outputs)
            self.db["ranks"].insert_all(
                {"run_id": run_id, "rank": r["rank"], "node": r.get("node", 0), "hostname": r.get("hostname"),
                 "num_prompts": r["num_prompts"], "tokens": r["tokens"], "raw_tokens": r.get("raw_tokens"),
                 "seconds": r["seconds"], "peak_memory_bytes": r.get("peak_memory_bytes"),
                 **{name: r.get(name) for name in RANK_MEMORY_FIELDS},
                 "energy_joules": (r.get("energy") or {}).get("joules"), "timeline": _json(r.get("timeline"))}
                for r in result.ranks)

    def set_agreement(self, run_id: int, agreement: float | None, reference: int | None,
                      detail: dict | None) -> None:
        """The correctness gate's verdict on a run (computed by studio.sweeps.agreement)."""
        with self.transaction():
            self.db["runs"].update(run_id, {"agreement": agreement, "agreement_reference": reference,
                                            "agreement_detail": _json(detail)})

    def set_phase(self, run_id: int, name: str, seconds: float) -> None:
        with self.transaction() as conn:
            row = conn.execute("SELECT phases FROM runs WHERE id = ?", (run_id,)).fetchone()
            phases = json.loads(row[0]) if row and row[0] else {}
            phases[name] = seconds
            conn.execute("UPDATE runs SET phases = ? WHERE id = ?", (json.dumps(phases), run_id))

    def mark_stale_interrupted(self, keep_sweeps: Iterable[int] = (), resume_sweeps: Iterable[int] = ()) -> list[int]:
        """Runs a previous server left queued or running can never finish now.
        `keep_sweeps`: sweeps another live process (a CLI, another server) is still running.
        `resume_sweeps`: sweeps whose queued runs will be resumed; only their running runs end here."""
        keep = [int(i) for i in keep_sweeps]
        resume = [int(i) for i in resume_sweeps]
        spared = f" AND COALESCE(sweep_id, -1) NOT IN ({','.join('?' * len(keep))})" if keep else ""
        if resume:
            spared += f" AND NOT (status = 'queued' AND COALESCE(sweep_id, -1) IN ({','.join('?' * len(resume))}))"
        spared_sweeps = f" AND id NOT IN ({','.join('?' * len(keep + resume))})" if keep + resume else ""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE status IN ('queued', 'running')" + spared, (*keep, *resume))]
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = COALESCE(error, 'the studio server stopped before this run finished') "
                "WHERE status IN ('queued', 'running')" + spared, (now(), *keep, *resume)
            )
            conn.execute("UPDATE sweeps SET status = 'interrupted', finished_at = ? WHERE status = 'running'"
                         + spared_sweeps, (now(), *keep, *resume))
            # the shared launches those runs were in ended with them
            marks = ",".join("?" * len(ids)) or "NULL"
            conn.execute("UPDATE launches SET status = 'interrupted', finished_at = ? WHERE status = 'running' AND "
                         f"id IN (SELECT launch_id FROM runs WHERE id IN ({marks}))", (now(), *ids))
            return ids

    def delete_runs(self, run_ids: Iterable[int]) -> int:
        ids = [int(i) for i in run_ids]
        if not ids:
            return 0
        with self.transaction() as conn:
            marks = ",".join("?" * len(ids))
            active = conn.execute(f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN ('queued','running')",
                                  ids).fetchall()
            if active:
                raise ValueError(f"run {active[0][0]} is still {'queued or running'}; stop it before deleting it")
            external = conn.execute(
                f"SELECT r.id FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE r.id IN ({marks}) "
                "AND s.external = 1", ids).fetchall()
            if external:
                raise ValueError(f"run {external[0][0]} is a published reference figure (read-only); "
                                 "leave it out of the selection")
            return conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount

    def delete_sweep(self, sweep_id: int) -> int:
        if self._rows("SELECT id FROM sweeps WHERE id = ? AND external = 1", (sweep_id,)):
            raise ValueError(f"sweep {sweep_id} holds published reference figures and is read-only; "
                             "it cannot be deleted")
        runs = [r["id"] for r in self._rows("SELECT id FROM runs WHERE sweep_id = ?", (sweep_id,))]
        count = self.delete_runs(runs)
        with self.transaction() as conn:
            conn.execute("DELETE FROM launches WHERE sweep_id = ?", (sweep_id,))
            conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
        return count
