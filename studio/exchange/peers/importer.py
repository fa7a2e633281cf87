"""`studio import` for other tools' results: read and check every path first, recount
each benchmark with the studio's definitions, then store each file in one
transaction (db.imports). A path that cannot be read refuses the whole command
before anything is stored; a file already imported (same content) adds nothing.

A `studio export` file keeps its own import (studio.exchange.runs_file), unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from db.imports import add_import
from db.store import Store
from runner.config import ConfigError, whole
from studio.exchange.peers.dispatch import STUDIO_EXPORT, is_studio_export, sniff
from studio.exchange.peers.record import ImportedFile, ImportedRun, PeerFileError, display_name
from studio.exchange.peers.recount import STUDIO_DEFINITIONS, compare, recount
from studio.exchange.runs_file import import_file as import_studio_export

LABEL_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
MAX_LABEL = 200
LATENCY_COLUMNS = tuple(f"{m}_p{p}" for m in ("ttft_ms", "tpot_ms", "latency_ms") for p in (50, 90, 99))


class LabelError(ValueError):
    """A --label that cannot be used; the message names it and says what to write."""


@dataclass
class ImportReport:
    """What one file or folder added."""

    file_name: str
    tool: str
    version: str | None = None
    format: str = ""
    sweep_id: int | None = None
    run_ids: list[int] = field(default_factory=list)
    added: bool = True
    aggregates_only: bool = False
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        ids = self.run_ids
        runs = f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}-{ids[-1]}" if ids else "no runs"
        tool = f"{self.tool} {self.version}" if self.version else self.tool
        if self.tool == "scaling-studio":
            return f"{self.file_name}: imported {len(ids)} run(s) of a studio export ({runs})" if self.added else \
                f"{self.file_name}: every run of this studio export is in the database already; nothing added"
        if not self.added:
            return f"{self.file_name}: already imported ({tool}, sweep {self.sweep_id}, {runs}); nothing added"
        marks = " (aggregates only: the tool's own figures, not recounted)" if self.aggregates_only else ""
        return f"{self.file_name}: imported {len(ids)} run(s) from {tool} as sweep {self.sweep_id}, {runs}{marks}"


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """`--label gpus=8,gpu=H100 --label engine=vllm` as {key: value}."""
    labels: dict[str, str] = {}
    for item in items or []:
        for part in str(item).split(","):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not LABEL_KEY.match(key):
                raise LabelError(f"--label {part!r} is not key=value (a key of letters, digits, _ . -, e.g. gpus=8)")
            if len(value) > MAX_LABEL or any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise LabelError(f"--label {key}: the value is over {MAX_LABEL} characters or holds control "
                                 "characters; write plain text")
            labels[key] = value
    if labels.get("gpus") is not None:
        try:
            whole("gpus", labels["gpus"], 1, 1_000_000, example="8")
        except ConfigError:
            raise LabelError(f"--label gpus={labels['gpus']}: the GPU count is a whole number from 1, e.g. gpus=8") from None
    return labels


def _per_request_rows(per_request: list[dict]) -> list[dict]:
    return [{"prompt_index": i, "rank": 0, "prompt": "", "output": "", "tokens": r["tokens"],
             "ttft_ms": r["ttft_ms"], "tpot_ms": r["tpot_ms"], "latency_ms": r["latency_ms"]}
            for i, r in enumerate(per_request)]


def _aggregate_columns(imported: ImportedFile, run: ImportedRun) -> dict:
    """An aggregates-only run's latency columns: the tool's figures where the tool measures what the
    studio's column means (its definition says so, or it states none of its own), else left empty
    rather than filled with another definition's number."""
    columns: dict[str, float] = {}
    for family, tool_family in imported.same_quantity:
        definition = imported.definitions.get(tool_family)
        if family not in ("ttft", "tpot", "latency") or (definition and "studio's" not in definition):
            continue
        for p in (50, 90, 99):
            value = run.tool_metrics.get(f"{tool_family}_ms_p{p}")
            if value is not None:
                columns.setdefault(f"{family}_ms_p{p}", value)
    return columns


def _gpus(run: ImportedRun, labels: dict) -> tuple[int, str]:
    if labels.get("gpus"):
        return int(labels["gpus"]), "--label gpus"
    if run.gpus:
        return run.gpus, "the file"
    return 1, "not in the file: stored as 1 (import with --label gpus=N)"


def run_row(imported: ImportedFile, run: ImportedRun, labels: dict, slo: dict | None) -> dict:
    """One benchmark as a runs row with its per-request outputs."""
    labels = {**run.labels, **labels}
    gpus, gpus_from = _gpus(run, labels)
    aggregates_only = not run.requests
    if aggregates_only:
        studio, per_request = {}, []
        tokens, seconds = run.output_tokens, run.duration_s
        rate = run.tool_metrics.get("tokens_per_second")
        latency = _aggregate_columns(imported, run)
        differences = []
    else:
        studio, per_request = recount(run, slo)
        tokens, seconds, rate = studio["tokens"], studio["seconds"], studio["tokens_per_second"]
        latency = {k: studio.get(k) for k in LATENCY_COLUMNS}
        differences = [d.as_dict() for d in compare(imported, studio, per_request, run.tool_metrics)]
    completed = studio.get("completed", run.completed)
    failed = studio.get("failed", run.failed)
    succeeded = bool(completed) or (aggregates_only and bool(run.tool_metrics))
    inputs = {r.input_tokens for r in run.requests or [] if r.ok}
    model = labels.get("model") or run.model or "unknown"
    origin = {
        "tool": imported.tool, "version": imported.version, "format": imported.format, "file": imported.file_name,
        "content_hash": imported.content_hash, "benchmark": run.name, "scenario": run.scenario.label(),
        "engine": labels.get("engine") or run.engine, "gpus_from": gpus_from,
        "gpu_type": labels.get("gpu") or run.gpu_type, "aggregates_only": aggregates_only, "recounted": studio,
        "tool_metrics": run.tool_metrics, "comparison": differences, "definitions": imported.definitions,
        "studio_definitions": STUDIO_DEFINITIONS, "percentile_rule": imported.percentile_rule,
        "settings": run.settings, "labels": labels, "completed": completed, "failed": failed,
        "tool_duration_seconds": run.duration_s, "slo": slo,
    }
    return {
        "repeat_index": 0, "created_at": run.started_at, "started_at": run.started_at, "status":
        "succeeded" if succeeded else "failed", "error": None if succeeded else
        f"every request failed ({failed or 0} failed, none completed) in {imported.file_name}",
        "model": model, "mode": run.scenario.kind, "batch_size": run.scenario.concurrency,
        "max_new_tokens": run.requested_output_tokens or max((r.output_tokens or 0 for r in run.requests or []),
                                                             default=0),
        "num_gpus": gpus, "num_nodes": 1, "world_size": gpus, "device": labels.get("gpu") or run.gpu_type,
        "num_prompts": (completed or 0) + (failed or 0), "prompt_tokens": inputs.pop() if len(inputs) == 1 else None,
        "tokens": tokens if succeeded else None, "seconds": seconds if succeeded else None,
        "tokens_per_second": rate if succeeded else None,
        **({k: v for k, v in latency.items()} if succeeded else {}),
        "config": {"model": model, "mode": run.scenario.kind, "imported": origin},
        "label": ", ".join(f"{k}={v}" for k, v in labels.items()), "tool": imported.tool,
        "scenario": run.scenario.label(), "outputs": _per_request_rows(per_request) if succeeded else [],
    }


def sweep_row(imported: ImportedFile, rows: list[dict]) -> dict:
    kinds = sorted({r["mode"] for r in rows})
    tool = f"{imported.tool} {imported.version}" if imported.version else imported.tool
    first = min((r["created_at"] for r in rows if r["created_at"]), default=None)
    return {"created_at": first, "finished_at": first, "name": f"{tool}: {imported.file_name}",
            "status": "succeeded", "model": rows[0]["model"], "mode": kinds[0] if len(kinds) == 1 else "mixed",
            "batch_size": rows[0]["batch_size"], "max_new_tokens": rows[0]["max_new_tokens"],
            "num_prompts": rows[0]["num_prompts"], "gpu_counts": sorted({r["num_gpus"] for r in rows}),
            "repeats": 1, "source": f"import:{imported.tool}:{imported.content_hash[:16]}",
            "settings": {"model": rows[0]["model"], "mode": rows[0]["mode"], "imported": True, "tool": imported.tool,
                         "version": imported.version, "format": imported.format, "file": imported.file_name}}


def store_file(store: Store, imported: ImportedFile, labels: dict, slo: dict | None) -> ImportReport:
    rows = [run_row(imported, run, labels, slo) for run in imported.runs]
    record = {"content_hash": imported.content_hash, "file_name": imported.file_name, "tool": imported.tool,
              "tool_version": imported.version, "format": imported.format, "labels": labels}
    result = add_import(store, record, sweep_row(imported, rows), rows)
    report = ImportReport(imported.file_name, imported.tool, imported.version, imported.format, result["sweep_id"],
                          result["run_ids"], result["added"], all(not r.requests for r in imported.runs))
    for row in rows if result["added"] else []:
        for diff in row["config"]["imported"]["comparison"]:
            if diff["cause"]:
                report.notes.append(f"{row['config']['imported']['benchmark']}: {diff['metric']} differs by "
                                    f"{diff['percent']:+.1f}% from {imported.tool}'s {diff['tool_metric']}")
    return report


def import_paths(store: Store, paths: list[str | Path], labels: dict | None = None,
                 slo: dict | None = None) -> list[ImportReport]:
    """Import every path, or none: all are read and checked before the first is stored."""
    loaded: list[tuple[Path, ImportedFile | str]] = []
    for path in paths:
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            raise PeerFileError(display_name(path), "does not exist; check the name")
        loaded += [(path, STUDIO_EXPORT)] if is_studio_export(path) else [(path, found) for found in sniff(path)]
    reports = []
    for path, found in loaded:
        if found == STUDIO_EXPORT:
            done = import_studio_export(path, store)
            reports.append(ImportReport(display_name(path), "scaling-studio", run_ids=done["run_ids"],
                                        added=bool(done["runs_added"])))
        else:
            reports.append(store_file(store, found, labels or {}, slo))
    return reports
