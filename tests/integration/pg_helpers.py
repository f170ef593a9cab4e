"""A throwaway PostgreSQL server for the tests of the catalog on PostgreSQL.

One cluster per pytest session (`initdb` in a temporary directory, as the `postgres` user
when the tests run as root, since initdb refuses root), listening on 127.0.0.1 on a free
port with password authentication (scram-sha-256) for TCP; each test gets a database of its
own, owned by the role `obhut`. `psql` edits rows as the provider's database admin could.
A machine without PostgreSQL fails these tests, naming it; they are never skipped.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port

ROLE = "obhut"
PASSWORD = "catalog-pw-" + os.urandom(6).hex()


def bin_dir() -> Path:
    if os.environ.get("OBHUT_PG_BINDIR"):
        return Path(os.environ["OBHUT_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pytest.fail(
        "PostgreSQL is not installed: the tests of the catalog on PostgreSQL need its server programs "
        "(initdb, pg_ctl, postgres, psql), e.g. Debian's package postgresql (scripts/test installs it); "
        "none found in OBHUT_PG_BINDIR, /usr/lib/postgresql/*/bin or the PATH",
        pytrace=False,
    )


class PgServer:
    def __init__(self):
        # Directly under the temporary directory (pytest's are root's alone, and the server
        # runs as postgres); the socket's path must also stay short.
        self.base = Path(tempfile.mkdtemp(prefix="obhut-pg-"))
        self.bin = bin_dir()
        self.root = os.geteuid() == 0
        self.data = self.base / "data"
        self.port = free_port()
        self.count = 0

    def _as_server_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self.root else argv

    def _run(self, argv: list[str], what: str, input: str | None = None) -> str:
        r = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"PostgreSQL test server: {what} failed ({r.returncode}): {r.stdout}{r.stderr}", pytrace=False)
        return r.stdout

    def start(self, settings: list[str] | None = None) -> "PgServer":
        """Starts the cluster; `settings` are more `-c name=value` options (e.g. WAL archiving),
        kept for `restart`."""
        self.settings = list(settings or [])
        self.base.mkdir(parents=True, exist_ok=True)
        if self.root:
            shutil.chown(self.base, "postgres", "postgres")
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            self._as_server_user([
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
            ]),
            "initdb",
        )
        pwfile.unlink()
        self.restart()
        self.psql("postgres", f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def restart(self) -> None:
        """Starts the server on its data directory (again, after `halt`)."""
        extra = "".join(f" -c {s}" for s in getattr(self, "settings", []))
        self._run(
            self._as_server_user([
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"),
                "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                      f"-c synchronous_commit=off -c full_page_writes=off -c max_prepared_transactions=50{extra}",
                "-w", "-t", "60", "start",
            ]),
            "pg_ctl start",
        )

    def halt(self) -> None:
        """Stops the server, keeping its directory (`stop` removes it)."""
        self._run(
            self._as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )

    def stop(self) -> None:
        subprocess.run(
            self._as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            capture_output=True, timeout=60,
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, db: str, sql: str) -> str:
        """Runs SQL as the superuser over the unix socket; returns unaligned, tuples-only output."""
        return self._run(
            [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.base), "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            f"psql {sql[:80]!r}",
        )

    def new_database(self) -> str:
        """A new empty database owned by the catalog's role; returns its URL (no password)."""
        self.count += 1
        name = f"cat{self.count}_{int(time.time() * 1000) % 100000}"
        self.psql("postgres", f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgres://{ROLE}@127.0.0.1:{self.port}/{db}"
