"""Reading another tool's files without trusting them: a size limit checked before
anything is read (a 100 MB file is refused from its size alone), a read that stops
past the limit (a file that grows, or lies about its size), regular files only (no
FIFO, device or link), folders walked without following links, UTF-8 text, JSON and
YAML parsed with their failures turned into a reason a person can act on.

Every refusal is a PeerFileError that names the file by its own name, never by
the server path it was found at.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from studio.exchange.peers.record import PeerFileError, display_name

MAX_BYTES = 64 * 2**20  # a GuideLLM file of 10,000 requests is about 40 MB
MAX_FOLDER_BYTES = 256 * 2**20
MAX_FILES = 2000
MAX_DEPTH = 6
KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Text:
    """A file read whole: its name for messages, where it is relative to what was imported, its text and hash."""

    name: str
    relative: str
    text: str
    sha256: str


def _kind(mode: int) -> str | None:
    return next((words for test, words in KINDS if test(mode)), None)


def read_text(path: Path, relative: str | None = None, *, follow: bool = True) -> Text:
    """One regular file, at most MAX_BYTES, as UTF-8 text. `follow=False` (inside a
    folder) refuses a link rather than reading where it points."""
    name = display_name(path)
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise PeerFileError(name, f"cannot read it ({exc.strerror or exc}); check the name and its permissions") \
            from None
    if not stat.S_ISREG(info.st_mode):
        raise PeerFileError(name, f"is {_kind(info.st_mode) or 'not a regular file'}; import a regular file "
                            "(links inside a folder are not followed: copy the file in)")
    if info.st_size == 0:
        raise PeerFileError(name, "is empty; the tool that wrote it may have stopped before it finished: "
                            "run the benchmark again")
    if info.st_size > MAX_BYTES:
        raise PeerFileError(name, f"is {info.st_size / 2**20:.0f} MiB; the limit is {MAX_BYTES // 2**20} MiB. "
                            "Split the benchmark, or save it with fewer per-request records")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PeerFileError(name, f"cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise PeerFileError(name, f"grew past {MAX_BYTES // 2**20} MiB while it was read; import a finished file")
    if b"\x00" in data[:4096]:
        raise PeerFileError(name, "is binary, not a JSON or YAML text file; import the tool's .json, .jsonl or .yaml")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PeerFileError(name, f"is not UTF-8 text (byte {exc.start}); import the file the tool wrote, "
                            "unconverted") from None
    return Text(name, relative or name, text, hashlib.sha256(data).hexdigest())


def parse_json(doc: Text):
    """JSON, or several JSON objects one a line (vLLM's --append-result, AIPerf's .jsonl).
    Returns (value, lines?): lines=True when the text held one value a line."""
    try:
        return json.loads(doc.text), False
    except RecursionError:
        raise PeerFileError(doc.name, "is nested too deeply to be a benchmark result") from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError) or exc.msg != "Extra data":
            return _maybe_lines(doc, exc)
    return _maybe_lines(doc, None)


def _maybe_lines(doc: Text, first_error: Exception | None):
    values = []
    for number, line in enumerate(doc.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except RecursionError:
            raise PeerFileError(doc.name, "is nested too deeply to be a benchmark result") from None
        except ValueError as exc:
            error = first_error or exc
            where = f" (line {number})" if first_error is None else ""
            cut = "cut off (truncated) or damaged" if _ends_early(doc.text) else "damaged"
            raise PeerFileError(doc.name, f"is not complete JSON{where}: {getattr(error, 'msg', error)}; the file "
                                f"looks {cut}: copy it again from where the tool wrote it") from None
    if not values:
        raise PeerFileError(doc.name, "holds no JSON; import the file the tool wrote")
    return values, True


def _ends_early(text: str) -> bool:
    tail = text.rstrip()
    return not tail.endswith(("}", "]"))


def parse_yaml(doc: Text):
    """YAML as plain data. Anchors and aliases are refused: no tool writes them into a
    results file, and expanding them is how a small YAML file fills the memory."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the studio's dependencies
        raise PeerFileError(doc.name, "is YAML, and PyYAML is not installed; `pip install pyyaml`, or export the "
                            "benchmark as JSON") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for event in yaml.parse(doc.text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise PeerFileError(doc.name, "uses YAML anchors or aliases, which a benchmark file never needs; "
                                    "export it again as JSON")
        return yaml.load(doc.text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PeerFileError(doc.name, f"is not valid YAML{where}; the file looks cut off or damaged: copy it "
                            "again from where the tool wrote it") from None
    except RecursionError:
        raise PeerFileError(doc.name, "is nested too deeply to be a benchmark result") from None


def walk(folder: Path) -> list[tuple[Path, str]]:
    """Regular files under a folder (path, relative name), sorted, links refused."""
    found, total = [], 0
    root_name = display_name(folder)
    for base, dirs, files in os.walk(folder, followlinks=False):
        depth = len(Path(base).relative_to(folder).parts)
        for entry in sorted(dirs + files):
            full = Path(base) / entry
            relative = full.relative_to(folder).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise PeerFileError(root_name, f"holds a symbolic link ({relative}); the studio does not follow "
                                    "links out of an imported folder: copy the files in")
            if stat.S_ISREG(mode):
                found.append((full, relative))
                total += os.lstat(full).st_size
        if depth >= MAX_DEPTH:
            dirs.clear()
        if len(found) > MAX_FILES or total > MAX_FOLDER_BYTES:
            raise PeerFileError(root_name, f"holds more than {MAX_FILES} files or {MAX_FOLDER_BYTES // 2**20} MiB; "
                                "import the benchmark's own folder, not one above it")
    return sorted(found, key=lambda item: item[1])


def folder_hash(docs: list[Text]) -> str:
    digest = hashlib.sha256()
    for doc in sorted(docs, key=lambda d: d.relative):
        digest.update(f"{doc.relative}\0{doc.sha256}\n".encode())
    return digest.hexdigest()
