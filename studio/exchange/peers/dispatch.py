"""Which tool wrote a file, told from its content (its name only breaks ties), and
the reader that turns it into records.

`sniff(path)` returns what an import of that path would add: one ImportedFile per
file or sweep folder, or STUDIO_EXPORT for a `studio export` file (whose import is
studio.exchange.runs_file's, unchanged). Anything else is refused with what the
file looked like and what the studio reads.
"""

from __future__ import annotations

import re
from pathlib import Path

from studio.exchange.peers import aiperf, guidellm, inference_benchmarker, vllm
from studio.exchange.peers.files import Text, folder_hash, parse_json, parse_yaml, read_text, walk
from studio.exchange.peers.record import ImportedFile, PeerFileError, display_name

STUDIO_EXPORT = "scaling-studio-runs"
KNOWN = ("GuideLLM benchmarks.json/.yaml, AIPerf profile_export.jsonl or profile_export_aiperf.json (or their "
         "folder), vLLM `bench serve --save-result`, `bench sweep` folders, `bench throughput`/`bench latency` "
         "--output-json, inference-benchmarker results/*.json, or a `studio export` file")
RUN_FILE = re.compile(r"(^|/)run=\d+\.json$")
EXPORT_HEAD = re.compile(r'^\s*\{\s*"format"\s*:\s*"scaling-studio-runs"')


def is_studio_export(path: str | Path) -> bool:
    """A `studio export` file, told from its first bytes (`build_export` writes "format" first), so
    that its import keeps runs_file's own checks and limits rather than these readers'."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    return bool(EXPORT_HEAD.match(head))


def _unknown(name: str, data) -> PeerFileError:
    if isinstance(data, dict):
        keys = ", ".join(list(map(str, data))[:6])
        seen = f"a JSON object with keys {keys}" if keys else "an empty JSON object"
    elif isinstance(data, list):
        seen = f"a list of {len(data)} item(s)" if data else "an empty list"
    else:
        seen = f"a bare {type(data).__name__}"
    return PeerFileError(name, f"is not a results file the studio knows (it holds {seen}); the studio reads {KNOWN}")


def _aiperf_summary_beside(records: Path) -> Path | None:
    """profile_export.jsonl's summary: profile_export_aiperf.json in the same folder."""
    for candidate in (records.with_name(records.stem + "_aiperf.json"), records.with_name("profile_export_aiperf.json")):
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def _aiperf_file(doc: Text, lines: list, summary_path: Path | None, name: str) -> ImportedFile:
    aiperf.require_records(lines, doc.name)
    summary_doc = read_text(summary_path) if summary_path else None
    summary = parse_json(summary_doc)[0] if summary_doc else None
    if summary is not None and not aiperf.is_summary(summary):
        summary = None
    docs = [doc] + ([summary_doc] if summary_doc and summary is not None else [])
    run = aiperf.run(lines, summary, name, doc.name)
    return ImportedFile("aiperf", (summary or {}).get("aiperf_version"), "aiperf profile_export.jsonl"
                        + (" + profile_export_aiperf.json" if summary else ""), name,
                        folder_hash(docs) if len(docs) > 1 else doc.sha256, [run],
                        definitions=aiperf.DEFINITIONS, same_quantity=aiperf.SAME_QUANTITY)


def _from_value(doc: Text, data, lines: bool, path: Path) -> ImportedFile | str:
    name = doc.name
    if isinstance(data, dict) and data.get("format") == STUDIO_EXPORT:
        return STUDIO_EXPORT
    if guidellm.is_guidellm(data):
        return guidellm.read(data, name, doc.sha256)
    if isinstance(data, list) and data and all(aiperf.is_record(x) for x in data):
        return _aiperf_file(doc, data, _aiperf_summary_beside(path), name)
    if aiperf.is_summary(data):
        records = path.with_name(path.name.replace("_aiperf.json", ".jsonl"))
        if records != path and records.is_file() and not records.is_symlink():
            records_doc = read_text(records)
            values, _ = parse_json(records_doc)
            return _aiperf_file(records_doc, values if isinstance(values, list) else [values], path, name)
        run = aiperf.run([], data, name, name)
        return ImportedFile("aiperf", data.get("aiperf_version"), "aiperf profile_export_aiperf.json (aggregates "
                            "only)", name, doc.sha256, [run], definitions=aiperf.DEFINITIONS,
                            same_quantity=aiperf.SAME_QUANTITY)
    if inference_benchmarker.is_report(data):
        runs, labels = inference_benchmarker.read_runs(data, name)
        for run in runs:
            run.labels = dict(labels)
        return ImportedFile("inference-benchmarker", labels.get("version_benchmarker"),
                            "inference-benchmarker results (aggregates only)", name, doc.sha256, runs,
                            definitions=inference_benchmarker.DEFINITIONS,
                            same_quantity=(("ttft", "ttft"), ("tpot", "tpot"), ("latency", "latency"),
                                           ("tokens_per_second", "tokens_per_second")))
    serves = data if isinstance(data, list) else [data]
    if serves and all(vllm.is_serve(x) for x in serves):
        what = ("vllm bench serve --append-result" if lines else "vllm bench sweep summary.json"
                if isinstance(data, list) else "vllm bench serve --save-result")
        runs = [vllm.serve_run(x, f"{name} #{i + 1}" if len(serves) > 1 else name, name)
                for i, x in enumerate(serves)]
        return _vllm_file(what, name, doc.sha256, runs)
    if vllm.is_throughput(data):
        return _vllm_file("vllm bench throughput --output-json", name, doc.sha256, [vllm.throughput_run(data, name)])
    if vllm.is_latency(data):
        return _vllm_file("vllm bench latency --output-json", name, doc.sha256, [vllm.latency_run(data, name)])
    raise _unknown(name, data)


def _vllm_file(what: str, name: str, digest: str, runs: list) -> ImportedFile:
    detailed = any(r.requests for r in runs)
    return ImportedFile("vllm", None, what + ("" if detailed or "serve" not in what else " (aggregates only)"), name,
                        digest, runs, definitions=vllm.DEFINITIONS, same_quantity=vllm.SAME_QUANTITY)


def sniff_file(path: Path) -> ImportedFile | str:
    doc = read_text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        data, lines = parse_yaml(doc), False
        if not isinstance(data, dict):
            raise _unknown(doc.name, data)
    else:
        data, lines = parse_json(doc)
        if lines and len(data) == 1:
            data, lines = data[0], False
    return _from_value(doc, data, lines, path)


def _aiperf_folder(folder: Path, files: list[tuple[Path, str]]) -> ImportedFile | None:
    records = [(p, rel) for p, rel in files if p.name.endswith(".jsonl")]
    runs, docs, version = [], [], None
    for path, relative in records:
        doc = read_text(path, relative, follow=False)
        values, _ = parse_json(doc)
        values = values if isinstance(values, list) else [values]
        if not values or not aiperf.is_record(values[0]):
            continue
        aiperf.require_records(values, relative)
        summary_path = _aiperf_summary_beside(path)
        summary_doc = read_text(summary_path, str(Path(relative).with_name(summary_path.name)), follow=False) \
            if summary_path else None
        summary = parse_json(summary_doc)[0] if summary_doc else None
        summary = summary if aiperf.is_summary(summary) else None
        docs += [doc] + ([summary_doc] if summary is not None else [])
        version = version or (summary or {}).get("aiperf_version")
        name = str(Path(relative).parent) if str(Path(relative).parent) != "." else display_name(folder)
        runs.append(aiperf.run(values, summary, name, relative))
    if not runs:
        return None
    return ImportedFile("aiperf", version, f"aiperf folder of {len(runs)} profiling run(s)", display_name(folder),
                        folder_hash(docs), runs, definitions=aiperf.DEFINITIONS, same_quantity=aiperf.SAME_QUANTITY)


def _vllm_sweep(folder: Path, files: list[tuple[Path, str]]) -> ImportedFile | None:
    chosen = [(p, rel) for p, rel in files if RUN_FILE.search(rel)]
    if not chosen:  # only the combinations' summaries: each a list of its runs
        chosen = [(p, rel) for p, rel in files if p.name == "summary.json"]
    runs, docs = [], []
    for path, relative in chosen:
        doc = read_text(path, relative, follow=False)
        data, _ = parse_json(doc)
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            runs.append(vllm.serve_run(item, vllm.sweep_run_name(relative) + (f" #{i + 1}" if len(items) > 1 else ""),
                                       relative))
        docs.append(doc)
    if not runs:
        return None
    return _vllm_file(f"vllm bench sweep folder of {len(runs)} run(s)", display_name(folder), folder_hash(docs), runs)


def sniff(path: str | Path) -> list[ImportedFile | str]:
    """What importing `path` (a file or a folder) would add, every file read and checked."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return [sniff_file(path)]
    files = walk(path)
    if not files:
        raise PeerFileError(display_name(path), "is an empty folder; import the folder the tool wrote its results in")
    for reader in (_aiperf_folder, _vllm_sweep):
        found = reader(path, files)
        if found is not None:
            return [found]
    found = [sniff_file(p) for p, rel in files if "/" not in rel and p.suffix.lower() in (".json", ".yaml", ".yml",
                                                                                           ".jsonl")]
    if not found:
        raise PeerFileError(display_name(path), f"holds no results file the studio knows; it reads {KNOWN}")
    return found
