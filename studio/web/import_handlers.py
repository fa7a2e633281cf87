"""The handlers behind the History tab's Import control and the API's `/import_results`:
files in (GuideLLM, AIPerf, vLLM bench, inference-benchmarker, or a studio export), a
line per file out, and the imported runs as a table filtered by tool and scenario.
Plain functions of the store, without gradio; every message names files by their own
names, never a server path."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from db.imports import imported_runs
from db.store import Store
from runner.config import ConfigError
from studio.exchange.peers.detail import tool_label
from studio.exchange.peers.files import MAX_BYTES
from studio.exchange.peers.importer import LabelError, import_paths, parse_labels
from studio.exchange.peers.record import PeerFileError
from studio.exchange.runs_file import ExportFileError
from studio.sweeps.slo import parse_slo

ANY = "any"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._=+-]")
MAX_FILES = 50
COLUMNS = ["run", "sweep", "tool", "scenario", "file", "benchmark", "model", "GPUs", "tokens/s", "TTFT p50 (ms)",
           "TPOT p50 (ms)", "recount", "differs > 1 %"]


def _safe_name(name: str, index: int) -> str:
    """An uploaded or sent file's name as it may be written: its last part, plain characters."""
    base = SAFE_NAME.sub("_", Path(str(name).replace("\\", "/")).name).lstrip(".")
    return base[:120] or f"file-{index}.json"


def _import(store: Store, files: list[tuple[str, Path | str]], labels: str, slo: str) -> list[str]:
    """Copy the files (name, source path or text) into one private folder and import it: several
    files together are read as one folder, so an AIPerf .jsonl finds its _aiperf.json."""
    if not files:
        raise ConfigError("files", "choose at least one result file")
    if len(files) > MAX_FILES:
        raise ConfigError("files", f"{len(files)} files; import at most {MAX_FILES} at once")
    try:
        chosen = parse_labels([labels] if labels and labels.strip() else [])
    except LabelError as exc:
        raise ConfigError("labels", str(exc)) from None
    limits = parse_slo(slo)
    with tempfile.TemporaryDirectory(prefix="studio-import-") as tmp:
        folder = Path(tmp) / "upload"
        folder.mkdir()
        names = []
        for index, (name, source) in enumerate(files):
            target = folder / _safe_name(name, index)
            if target.exists():
                raise ConfigError("files", f"two files are named {target.name}; import them one at a time")
            if isinstance(source, Path):
                shutil.copyfile(source, target)
            else:
                if len(source) > MAX_BYTES:
                    raise ConfigError("files", f"{target.name} is over {MAX_BYTES // 2**20} MiB; use `studio import`")
                target.write_text(source, encoding="utf-8")
            names.append(target)
        try:
            reports = import_paths(store, [folder] if len(names) > 1 else names, chosen, limits)
        except (PeerFileError, ExportFileError) as exc:
            raise ConfigError("files", str(exc)) from None
    return [r.line() for r in reports]


def import_uploaded(store: Store, paths: list[str] | None, labels: str = "", slo: str = "") -> str:
    """The page's Import button: uploaded temporary files, under their own names."""
    files = [(Path(p).name, Path(p)) for p in paths or []]
    return "\n".join(f"* {line}" for line in _import(store, files, labels, slo))


def import_texts(store: Store, files: dict | None, labels: str = "", slo: str = "") -> dict:
    """The API: {file name: file text}. Returns what each file added."""
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ConfigError("files", "send {\"file name\": \"the file's text\", ...}")
    lines = _import(store, [(str(k), v) for k, v in files.items()], labels or "", slo or "")
    return {"imported": lines}


def _row(run: dict) -> list:
    imported = (run.get("config") or {}).get("imported") or {}
    differing = sum(1 for d in imported.get("comparison") or [] if d.get("cause"))
    rounded = [None if run.get(k) is None else round(run[k], 2) for k in ("tokens_per_second", "ttft_ms_p50",
                                                                             "tpot_ms_p50")]
    return [run["id"], run.get("sweep_id"), tool_label(imported), run.get("scenario"), run.get("file_name"),
            imported.get("benchmark"), run.get("model"), run.get("num_gpus"), *rounded,
            "aggregates only" if imported.get("aggregates_only") else "recounted", differing]


def imported_table(store: Store, tool: str | None = None, scenario: str | None = None) -> pd.DataFrame:
    runs = imported_runs(store, tool=None if tool in (None, "", ANY) else tool,
                         scenario=None if scenario in (None, "", ANY) else scenario)
    return pd.DataFrame([_row(r) for r in runs], columns=COLUMNS)
