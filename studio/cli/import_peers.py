"""`studio import FILE_OR_FOLDER… [--label key=value …] [--slo ttft=MS,tpot=MS]`: a
`studio export` file as before (studio.exchange.runs_file, its output unchanged),
other tools' results through studio.exchange.peers. Every path is read and checked
before anything is stored; one that cannot be imported stops the command with its
file's name and the reason (exit 2)."""

from __future__ import annotations

import argparse
import sys


def add_import_options(imp: argparse.ArgumentParser) -> None:
    imp.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                     help="a `studio export` file, or results of GuideLLM (benchmarks.json/.yaml), AIPerf "
                          "(profile_export.jsonl, or its folder), vLLM bench (serve, sweep folder, throughput, "
                          "latency) or inference-benchmarker (results/*.json)")
    imp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="what the file does not say, e.g. gpus=8,gpu=H100 or engine=vllm (repeatable)")
    imp.add_argument("--slo", default=None, help="latency limits for the recounted goodput: ttft=MS,tpot=MS")


def _export_line(report: dict) -> str:
    ids = report["run_ids"]
    added = f"imported {report['runs_added']} run(s)" + (f" as run {ids[0]}" if len(ids) == 1 else
                                                         f" as runs {ids[0]}-{ids[-1]}" if ids else "")
    if report["runs_skipped"]:
        added += f"; skipped {report['runs_skipped']} already in the database"
    return added


def cmd_import(args: argparse.Namespace) -> int:
    from db.store import Store
    from runner.config import ConfigError
    from studio.cli.args import fail
    from studio.exchange.peers.dispatch import is_studio_export
    from studio.exchange.peers.importer import LabelError, import_paths, parse_labels
    from studio.exchange.peers.record import PeerFileError
    from studio.exchange.runs_file import ExportFileError, import_file, read_export
    from studio.sweeps.slo import parse_slo

    try:
        labels, slo = parse_labels(args.label), parse_slo(args.slo)
    except (LabelError, ConfigError) as exc:
        return fail(str(exc))
    exports = [p for p in args.paths if is_studio_export(p)]
    others = [p for p in args.paths if p not in exports]
    store = Store(args.db)
    try:
        for path in exports:
            read_export(path)  # checked before anything of the others is stored
        reports = import_paths(store, others, labels, slo) if others else []
        for path in exports:
            print(_export_line(import_file(path, store)))
    except (ExportFileError, PeerFileError) as exc:
        return fail(str(exc))
    for report in reports:
        print(report.line())
        for note in report.notes[:8]:
            print(f"  differs: {note}", file=sys.stderr)
        if len(report.notes) > 8:
            print(f"  … and {len(report.notes) - 8} more: `studio show RUN` lists each with its cause", file=sys.stderr)
    return 0


def side_by_side_report(store, sweep_ids: list[int], args: argparse.Namespace) -> int:
    """`studio report A --compare B,C`: the sweeps on one page (studio.reports.side_by_side)."""
    from studio.analysis.cost import parse_price
    from studio.cli.args import fail
    from studio.exchange.output_file import OutputError, write_output
    from studio.reports.side_by_side import SideBySideError, side_by_side_html

    if args.format != "html":
        return fail("--format json compares two sweeps (--compare B); several sweeps make one HTML page")
    output = args.output or f"sweeps-{'-'.join(map(str, sweep_ids))}-side-by-side.html"
    try:
        page = side_by_side_html(store, sweep_ids, parse_price(args.price, name="--price"))
        write_output(output, page, force=args.force, option="--output")
    except (SideBySideError, OutputError) as exc:
        return fail(str(exc))
    print(f"wrote {output}")
    return 0
