"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.

``PgCluster`` runs the machine's PostgreSQL binaries (``/usr/lib/postgresql/15/bin`` by
default, ``QWEN_PG_BIN`` to override): ``initdb`` into a temporary directory (as the
``postgres`` user when running as root: PostgreSQL refuses to run as root), ``pg_ctl
start`` on a free loopback port with its socket inside that directory, and a database
reachable with trust authentication from 127.0.0.1 only. Leaving the ``with`` block (also
on failure) stops the cluster (``pg_ctl stop -m fast``) and removes the directory.

    with PgCluster() as pg:
        engine = create_engine(pg.url)      # postgresql+psycopg://postgres@127.0.0.1:PORT/DB
        pg.restart()                         # or pg.stop() ... pg.start(), for fault tests

Missing binaries: :func:`require_pg` fails the test when ``CI`` is set (CI must have
them: ``apt-get install postgresql-15 postgresql-contrib``) and skips it otherwise, with
the reason either way."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PG_BIN", "PgCluster", "PgUnavailable", "missing_reason", "require_pg",
           "pg_cluster"]

PG_BIN = Path(os.environ.get("QWEN_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"  # the OS user that runs the cluster when we are root
FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be run here (binaries or the ``postgres`` user missing)."""


def missing_reason(bindir: Path = PG_BIN) -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (bindir / tool).is_file():
            return (f"PostgreSQL binaries not found ({bindir / tool} is missing); install "
                    "postgresql-15 and postgresql-contrib, or set QWEN_PG_BIN")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root but there is no {USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root but runuser(1) is missing"
    return None


def require_pg(bindir: Path = PG_BIN) -> None:
    """Fail (under CI) or skip (locally) the calling test when PostgreSQL is missing."""
    import pytest

    reason = missing_reason(bindir)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One PostgreSQL cluster in a temporary directory. ``fast``: fsync and synchronous
    commit off (tests; data need not survive a machine crash). ``database``: created at
    start, the one :attr:`url` names."""

    def __init__(self, database: str = "qwen_chat", *, bindir: Path = PG_BIN,
                 fast: bool = True, start_timeout: float = 60.0) -> None:
        reason = missing_reason(bindir)
        if reason is not None:
            raise PgUnavailable(reason)
        self.bindir = bindir
        self.database = database
        self.fast = fast
        self.start_timeout = start_timeout
        self.port = 0
        self.dir: Path | None = None
        self._root = os.geteuid() == 0
        self._running = False

    # -- paths and commands ----------------------------------------------------------------

    @property
    def data(self) -> Path:
        assert self.dir is not None, "cluster not created"
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.dir is not None, "cluster not created"
        return self.dir / "sock"

    @property
    def log(self) -> Path:
        assert self.dir is not None, "cluster not created"
        return self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._root:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd="/")
        return done

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError, AssertionError):
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}"
                               f"{done.stderr}\n{tail}".strip())

    # -- life cycle ------------------------------------------------------------------------

    def create(self) -> PgCluster:
        """initdb into a new temporary directory (no server yet)."""
        self.dir = Path(tempfile.mkdtemp(prefix="qwen-pg-"))
        try:
            self.socket_dir.mkdir()
            if self._root:
                entry = pwd.getpwnam(USER)
                for path in (self.dir, self.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self._check(self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync",
            ), "initdb")
        except BaseException:
            self.remove()
            raise
        return self

    def start(self) -> None:
        """Start the server (on the same port after a stop; a free one the first time)."""
        if self._running:
            return
        attempts = 1 if self.port else 3
        last: Exception | None = None
        for _ in range(attempts):
            port = self.port or free_port()
            opts = (f"-p {port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=100" + (f" {FAST}" if self.fast else ""))
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                             "-t", str(int(self.start_timeout)), "-o", opts, "start",
                             timeout=self.start_timeout + 30)
            if done.returncode == 0:
                self.port = port
                self._running = True
                return
            self._kill_postmaster()
            try:
                self._check(done, "pg_ctl start")
            except RuntimeError as exc:
                last = exc
        assert last is not None
        raise last

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: fast, immediate or smart)."""
        if self.dir is None or not self.data.exists():
            return
        done = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                         timeout=90)
        self._running = False
        if done.returncode != 0:
            self._kill_postmaster()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, AssertionError):
            return None

    def _kill_postmaster(self) -> None:
        """Last resort: SIGQUIT then SIGKILL the postmaster this cluster started."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def remove(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def close(self) -> None:
        """Stop the server and remove the directory (safe to call twice)."""
        try:
            self.stop()
        finally:
            self.remove()

    def __enter__(self) -> PgCluster:
        self.create()
        try:
            self.start()
            self.create_database(self.database)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def pg_cluster(database: str = "qwen_chat", **kwargs: object) -> Iterator[PgCluster]:
    """``with pg_cluster() as pg: ... pg.url``."""
    with PgCluster(database, **kwargs) as pg:  # type: ignore[arg-type]
        yield pg
