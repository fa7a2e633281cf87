"""What every `studio` subcommand shares: the run options, the database option
and how a command fails. Kept apart from `studio.cli.commands` (the entry point) so the
modules that add subcommands import it without importing the CLI back."""

from __future__ import annotations

import argparse
import sys

from runner.config import RunConfig
from studio.sweeps.settings import SweepRequest, whole_arg

__all__ = ["whole_arg"]

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="SQLite database (default: $STUDIO_DB or ~/.scaling-studio/studio.db)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """`studio run`'s options: the run settings (studio.sweeps.settings) and how to report."""
    SweepRequest.add_cli_args(p)
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    add_db_option(p)


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, dict[str, list]]:
    """The sweep's base settings (each list's first value) and its axes, checked as far as
    they can be without this machine's models and devices."""
    planned = SweepRequest.from_cli_args(args).sweep_args()
    return planned["base"], planned["axes"]
