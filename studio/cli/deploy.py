"""The CLI's deployment commands: `studio cluster slurm`, `studio export`,
`studio import`, `studio doctor`. Registered by `studio.cli.commands.build_parser`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from runner.config import ConfigError
from studio.cli.args import whole_arg
from studio.exchange.output_file import OutputError, write_output


def cmd_cluster_slurm(args: argparse.Namespace) -> int:
    from studio.cli.args import fail
    from studio.cli.cluster import SlurmJob, check_run_args, sbatch_script

    run_args = list(args.run_args)
    if args.cpu and not any(a == "--device" or a.startswith("--device=") for a in run_args):
        run_args += ["--device", "cpu"]
    try:
        checked = check_run_args(run_args, nodes=args.nodes, gpus_per_node=args.gpus_per_node)
        job = SlurmJob(
            nodes=args.nodes, gpus_per_node=args.gpus_per_node, run_args=checked, partition=args.partition,
            account=args.account, time=args.time, job_name=args.job_name, cpus_per_task=args.cpus_per_task,
            main_port=args.main_port, result=args.result, setup=tuple(args.setup),
            db=str(Path(args.db).expanduser().resolve()) if args.db else None,  # nodes start elsewhere
            studio=args.studio_command, cpu=args.cpu,
        )
    except ConfigError as exc:
        return fail(str(exc))
    script = sbatch_script(job)
    if args.out:
        try:
            write_output(args.out, script, force=args.force, option="--out")
        except OutputError as exc:
            return fail(str(exc))
        print(f"wrote {args.out}: submit it with  sbatch {shlex.quote(args.out)}", file=sys.stderr)
    else:
        sys.stdout.write(script)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.cli.args import fail
    from studio.exchange.runs_file import build_export, write_export

    data = build_export(Store(args.db), run_ids=args.run or None, sweep_id=args.sweep)
    if args.out and args.out != "-":
        try:
            write_export(data, args.out, force=args.force)
        except OutputError as exc:
            return fail(str(exc))
        print(f"exported {len(data['runs'])} run(s) to {args.out}", file=sys.stderr)
    else:
        json.dump(data, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from studio.cli.import_peers import cmd_import as import_any

    return import_any(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from studio.cli.doctor import FAIL, as_dicts, format_checks, run_checks

    checks = run_checks(db=args.db, ports={"studio": args.port, "main (multi-node)": args.main_port},
                        web_optional=args.web_optional)
    if args.json:
        print(json.dumps(as_dicts(checks), indent=2))
    else:
        print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def add_deploy_commands(sub) -> None:
    from studio.cli.args import add_db_option

    cluster = sub.add_parser("cluster", help="write a cluster job script (SLURM) for a multi-node run")
    kinds = cluster.add_subparsers(dest="cluster_kind", required=True)
    slurm = kinds.add_parser(
        "slurm", help="an sbatch script: srun, one task per node, each running its node's part",
        description="Write an sbatch script. `studio run` options go after --, e.g. "
                    "studio cluster slurm --nodes 2 --gpus-per-node 8 --partition gpu -- "
                    "--model org/name --preset seed",
    )
    slurm.add_argument("--nodes", type=whole_arg, required=True, help="machines to allocate")
    slurm.add_argument("--gpus-per-node", type=whole_arg, required=True, help="GPUs (processes) on each machine")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--time", default="01:00:00", help="SLURM time limit (default 01:00:00)")
    slurm.add_argument("--job-name", default="scaling-studio")
    slurm.add_argument("--cpus-per-task", type=whole_arg, default=None, help="CPU cores per node's task")
    slurm.add_argument("--main-port", type=whole_arg, default=None,
                       help="rendezvous port on node 0 (default 20000 + job id %% 10000)")
    where = slurm.add_mutually_exclusive_group()
    where.add_argument("--result", default="scaling-studio-%j.json",
                       help="JSON file node 0 exports for `studio import` (default scaling-studio-%%j.json, "
                            "in the submit folder; %%j is the job id)")
    where.add_argument("--db", default=None, help="store straight into this database instead (a local disk or a "
                       "file system with working locks: not NFS)")
    slurm.add_argument("--setup", action="append", default=[], metavar="LINE",
                       help="a shell line run first, e.g. 'source ~/venv/bin/activate' (repeatable)")
    slurm.add_argument("--studio-command", default="studio", help="how the nodes call the studio (default studio)")
    slurm.add_argument("--cpu", action="store_true", help="CPU processes, no GPUs requested (adds --device cpu)")
    slurm.add_argument("--out", "-o", default=None, help="file to write (default: print the script)")
    slurm.add_argument("--force", action="store_true", help="replace the --out file if it exists")
    slurm.add_argument("run_args", nargs="*", metavar="-- RUN OPTIONS", help="`studio run` options, after --")
    slurm.set_defaults(func=cmd_cluster_slurm)

    export = sub.add_parser("export", help="write runs as JSON (for `studio import` elsewhere)")
    export.add_argument("--run", type=whole_arg, action="append", help="a run id (repeatable; default all finished runs)")
    export.add_argument("--sweep", type=whole_arg, default=None, help="only this sweep's runs")
    export.add_argument("--out", "-o", default=None, help="file to write (default: print it)")
    export.add_argument("--force", action="store_true", help="replace the --out file if it exists")
    add_db_option(export)
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="add the runs of a `studio export` file, or other tools' results (GuideLLM, "
                         "AIPerf, vLLM bench, inference-benchmarker); never changes stored runs")
    from studio.cli.import_peers import add_import_options

    add_import_options(imp)
    add_db_option(imp)
    imp.set_defaults(func=cmd_import)

    doctor = sub.add_parser("doctor", help="check GPUs, torch, accelerate, ports, database and caches")
    doctor.add_argument("--port", type=whole_arg, default=7860, help="the studio's web port to check (default 7860)")
    doctor.add_argument("--main-port", type=whole_arg, default=29500, help="a multi-node rendezvous port to check")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--web-optional", action="store_true",
                        help="a machine that only runs benchmarks: gradio and plotly missing is a warning, not a failure")
    add_db_option(doctor)
    doctor.set_defaults(func=cmd_doctor)
