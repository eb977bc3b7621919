"""A controller killed between spawning a server and saving its row leaves a server nobody knows of:
the local pool finds such servers by the mark in their environment and stops them when the next
controller starts, and when it stops everything. Servers here are `sleep` processes carrying the mark."""
import os
import subprocess
from types import SimpleNamespace

from controller.pools.local_vllm import SERVER_MARK, build
from controller.ports import group_alive, stop_group
from tests.support.pool import make_local_pool


def _server(mark: str) -> subprocess.Popen:
    """A process group like a vLLM server's: its own session, the pool's mark in its environment."""
    return subprocess.Popen(["sleep", "300"], env={**os.environ, SERVER_MARK: mark}, start_new_session=True)


def _record(pool, version: str, pid: int) -> None:
    pool._deployments.put(f"local:m:{version}", pool=pool.name, model="m", version=version, artifact="/nonexistent",
                          url="http://127.0.0.1:1", pid=pid, state="ready", detail={"core": None})


def _alive(proc: subprocess.Popen) -> bool:
    proc.poll()                       # reap it if it has exited, so that a zombie does not count
    return group_alive(proc.pid)


def test_servers_started_but_never_recorded_are_stopped(tmp_path):
    pool = make_local_pool(tmp_path)
    _, env = pool._server_command("m", tmp_path, 8000, None)
    mark = env[SERVER_MARK]
    orphan, recorded = _server(mark), _server(mark)
    other_pool = _server(mark.replace(str(tmp_path), str(tmp_path / "elsewhere")))
    _record(pool, "1", recorded.pid)
    try:
        build(SimpleNamespace(workdir=tmp_path, pool_device="cpu"), pool._deployments._sessions)  # a start
        assert not _alive(orphan)                         # the unrecorded one was stopped
        assert _alive(recorded) and _alive(other_pool)    # a recorded server and another pool's are left

        stray = _server(mark)                             # another crash's leftover
        pool.stop_all()                                   # recorded servers and unrecorded ones
        assert not any(_alive(p) for p in (stray, recorded))
        assert _alive(other_pool)
    finally:
        for p in (orphan, recorded, other_pool):
            stop_group(p.pid)
