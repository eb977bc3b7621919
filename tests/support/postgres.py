"""A real, throw-away PostgreSQL server for tests: initdb into a temp folder, listen on a free
loopback port, trust authentication, stopped (whole process group) at the end.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user
that Debian's package creates.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from controller.ports import free_port, stop_group

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _binary(name: str) -> str:
    for folder in PG_BIN_DIRS:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql package (make setup does)")
    return found


class PostgresServer:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self._proc: subprocess.Popen | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> "PostgresServer":
        data, sockets = self.workdir / "data", self.workdir / "sockets"
        for folder in (data, sockets):
            folder.mkdir(parents=True, exist_ok=True)
            if self._user:
                entry = pwd.getpwnam(self._user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._run([_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"], check=True)
        cmd = [_binary("postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(sockets),
               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.workdir / "postgres.log", "ab")
        self._proc = subprocess.Popen(self._as_user(cmd), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self._wait_ready(timeout_s)
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._proc is not None:
            # Fast shutdown: SIGTERM ("smart") would wait for pooled client connections to close.
            self._run([_binary("pg_ctl"), "stop", "-D", str(self.workdir / "data"), "-m", "fast", "-w"], check=False)
            stop_group(self._proc.pid, grace=5)
            self._proc = None

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}: "
                                   f"{(self.workdir / 'postgres.log').read_text()[-2000:]}")
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready after {timeout_s} s") from None
                time.sleep(0.2)

    def _as_user(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *cmd] if self._user else cmd

    def _run(self, cmd: list[str], check: bool) -> None:
        out = subprocess.run(self._as_user(cmd), capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-2000:]}")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> PostgresServer:
    folder = tmp_path_factory.mktemp("postgres")
    os.chmod(folder, 0o755)
    for parent in folder.parents:      # the postgres user must reach its data folder
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o711)
    server = PostgresServer(folder).start()
    yield server
    server.stop()
