"""`studio serve` refuses to start where it should, before it binds anything."""

from __future__ import annotations

import pytest

from studio.web.server import is_loopback, parse_auth


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_auth_is_user_colon_password():
    assert parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    assert parse_auth(None) is None
    for bad in ("alice", ":pw", "alice:"):
        with pytest.raises(ValueError, match="user:password"):
            parse_auth(bad)


def test_a_public_host_without_a_password_is_refused(db_path, free_port, cli):
    done = cli("serve", "--host", "0.0.0.0", "--port", str(free_port), "--db", str(db_path))
    assert done.returncode == 2
    assert "--auth user:password" in done.stderr and "--insecure" in done.stderr
    assert not db_path.exists()  # refused before anything was opened


def test_a_malformed_auth_is_refused(db_path, free_port, cli):
    done = cli("serve", "--auth", "nopassword", "--port", str(free_port), "--db", str(db_path))
    assert done.returncode == 2 and "user:password" in done.stderr
