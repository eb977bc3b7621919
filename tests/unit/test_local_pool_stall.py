"""The local pool restarts a server whose start hangs (no log output), then gives up."""
import sys
import time

from controller.pools.local_vllm import LocalVllmPool
from tests.support.pool import make_local_pool

SILENT = [sys.executable, "-c", "import time; time.sleep(60)"]
CHATTY = [sys.executable, "-u", "-c", "import time\nwhile True:\n    print('loading', flush=True)\n    time.sleep(0.1)"]


def _pool(tmp_path, monkeypatch, command, stall_seconds: float = 1.0) -> LocalVllmPool:
    """A local pool whose 'server' is `command`, with a short stall limit."""
    pool = make_local_pool(tmp_path, stall_seconds=stall_seconds)
    monkeypatch.setattr(pool, "_server_command", lambda *args: (command, {}))
    return pool


def test_a_silent_start_is_restarted_then_failed(tmp_path, monkeypatch):
    pool = _pool(tmp_path, monkeypatch, SILENT)
    first = pool.ensure("m", "1", tmp_path)
    assert first.state == "starting"
    pids = [pool._deployments.get("local:m:1").pid]
    try:
        for attempt in (1, 2):
            time.sleep(1.3)
            served = pool.status("m", "1")
            row = pool._deployments.get("local:m:1")
            assert served.state == "starting" and "restarted: no output for 1 s" in served.detail
            assert row.detail["stall_restarts"] == attempt and row.pid not in pids
            pids.append(row.pid)
        time.sleep(1.3)
        served = pool.status("m", "1")
        assert served.state == "failed" and "no output for 1 s while starting, 3 times" in served.detail
        assert all(not _alive(pid) for pid in pids)
        assert (tmp_path / "pool-logs" / "local_m_1.log").read_text().count("--- relctl: starting m") == 3
    finally:
        pool.stop_all()


def test_a_start_that_keeps_logging_is_left_alone(tmp_path, monkeypatch):
    pool = _pool(tmp_path, monkeypatch, CHATTY, stall_seconds=2.0)   # room for a slow interpreter start
    pool.ensure("m", "1", tmp_path)
    pid = pool._deployments.get("local:m:1").pid
    try:
        time.sleep(4.5)
        served = pool.status("m", "1")
        assert served.state == "starting" and pool._deployments.get("local:m:1").pid == pid
    finally:
        pool.stop_all()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_cpu_servers_skip_torch_compile_unless_the_pool_asks_for_it(tmp_path):
    eager, _ = make_local_pool(tmp_path)._server_command("m", tmp_path, 8000, 0)
    assert "--enforce-eager" in eager
    compiled, _ = make_local_pool(tmp_path, extra_args=("-O3",))._server_command("m", tmp_path, 8000, 0)
    assert "--enforce-eager" not in compiled and "-O3" in compiled
    gpu, _ = make_local_pool(tmp_path, device="gpu")._server_command("m", tmp_path, 8000, 0)
    assert "--enforce-eager" not in gpu
