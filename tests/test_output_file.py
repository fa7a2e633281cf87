"""Files the CLIs write where the user says (issue 27 item 3): nothing that exists
and is not a regular file is replaced, an existing file only with --force, and the
write is a rename inside the target's folder."""

from __future__ import annotations

import os
import stat

import pytest

from studio.exchange.output_file import OutputError, write_output


def test_a_new_file_is_written_and_no_temporary_file_is_left(tmp_path):
    target = tmp_path / "deck.html"
    write_output(target, "hello")
    assert target.read_text() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deck.html"]


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    target = tmp_path / "deck.html"
    target.write_text("mine")
    with pytest.raises(OutputError, match="already exists; add --force to replace it"):
        write_output(target, "new")
    assert target.read_text() == "mine"
    write_output(target, "new", force=True)
    assert target.read_text() == "new"


@pytest.mark.parametrize("force", [False, True])
def test_special_files_are_refused_even_with_force(tmp_path, force):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="is a FIFO"):
        write_output(fifo, "x", force=force)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="is a symbolic link"):
        write_output(link, "x", force=force)
    assert os.path.islink(link) and victim.read_text() == "keep"

    with pytest.raises(OutputError, match="is a character device"):
        write_output("/dev/null", "x", force=force)
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe", "victim"]


def test_a_file_that_cannot_be_replaced_gives_a_message_not_a_traceback():
    with pytest.raises(OutputError, match="could not be written|already exists"):
        write_output("/proc/self/status", "x", force=True)


def test_every_cli_that_writes_a_named_file_refuses_the_same_way(db_path, tmp_path, cli):
    os.mkfifo(tmp_path / "pipe")
    existing = tmp_path / "existing.json"
    existing.write_text("mine")
    commands = [["present", "ref:batched", "--output"], ["report", "ref:batched", "--output"],
                ["export", "--out"]]
    for command in commands:
        for target, message in ((tmp_path / "pipe", "is a FIFO"), ("/dev/null", "is a character device"),
                                (existing, "already exists; add --force")):
            done = cli(*command, str(target), "--db", str(db_path))
            assert done.returncode == 2, (command, done.stdout, done.stderr)
            assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert existing.read_text() == "mine" and stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    done = cli("report", "ref:batched", "--format", "json", "--output", str(existing), "--force", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert existing.read_text().startswith("{")
