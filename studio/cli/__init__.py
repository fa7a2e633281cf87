"""`studio` on the command line: `main(argv)` runs one command and returns its exit
status, so a test (or another program) can call it in process as the console
script does."""

from studio.cli.commands import main

__all__ = ["main"]
