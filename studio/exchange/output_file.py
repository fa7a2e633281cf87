"""Every file a CLI writes where the user said (`--output`, `--out`) goes through
`write_output`, so none of them can replace a device, a FIFO or a symlink's target,
or an existing file the user did not ask to replace.

The text is written to a temporary file in the target's own folder and renamed over
it, so a reader never sees half a file and a crash leaves the old one whole.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class OutputError(ValueError):
    """A refused output path; the message says what to change."""


def check_output(path: str | Path, *, force: bool = False, option: str = "--output") -> Path:
    """Refuse a target that is not a plain new file (or an existing one with `force`)."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot be checked ({exc.strerror}); pick another file") from None
    if mode is not None:
        kind = next((name for test, name in KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")
        if kind:
            raise OutputError(f"{option} {path} exists and is {kind}; only a regular file is written: "
                              "give the name of a new file")
        if not force:
            raise OutputError(f"{option} {path} already exists; add --force to replace it, or give another name")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {path}: folder {parent} does not exist; create it or pick another {option}")
    return path


def write_output(path: str | Path, text: str, *, force: bool = False, option: str = "--output") -> Path:
    """Check the target, then write `text` beside it and rename it into place."""
    path = check_output(path, force=force, option=option)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{option} {path} could not be written ({exc.strerror or exc}); "
                          "pick a file in a folder you can write to") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path
