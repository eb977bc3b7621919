"""The local pool pins each CPU server to a core of its own; with every core taken -- by a pinned server
or an unpinned one, which runs wherever the kernel puts it -- a new server is left unpinned (pinned
beside a server answering requests, a starting server never came up)."""
import os
import subprocess

from tests.support.pool import make_local_pool


def _record(pool, tmp_path, version: str, core: int | None, state: str = "ready", pid: int | None = None) -> None:
    pool._deployments.put(f"local:m:{version}", pool=pool.name, model="m", version=version,
                          artifact=str(tmp_path), url="http://127.0.0.1:1", pid=pid or os.getpid(),
                          state=state, detail={"core": core})


def _bind(pool, tmp_path) -> dict:
    """The OpenMP settings the next server would start with."""
    _, env = pool._server_command("m", tmp_path, 8000, pool._free_core())
    return {k: env.get(k) for k in ("VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS")}


def test_each_server_gets_a_free_core_then_none_is_pinned(tmp_path):
    pool = make_local_pool(tmp_path)
    cores = sorted(os.sched_getaffinity(0))
    for i, core in enumerate(cores):
        assert pool._free_core() == core
        assert _bind(pool, tmp_path)["VLLM_CPU_OMP_THREADS_BIND"] == str(core)
        _record(pool, tmp_path, str(i), core)
    assert pool._free_core() is None
    assert _bind(pool, tmp_path) == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
    _record(pool, tmp_path, "0", cores[0], state="stopped")    # a stopped one frees its core
    assert pool._free_core() == cores[0]
    _record(pool, tmp_path, "unpinned", None)      # an unpinned one holds a core too: the kernel's choice
    assert pool._free_core() is None
    assert _bind(pool, tmp_path) == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}


def test_a_stalled_server_is_restarted_on_a_free_core_not_its_old_one(tmp_path, monkeypatch):
    pool = make_local_pool(tmp_path, stall_seconds=0.0)
    cores = sorted(os.sched_getaffinity(0))
    starts = []
    monkeypatch.setattr(pool, "_spawn", lambda model, art, port, key, core: starts.append(core) or _Proc())
    for i, core in enumerate(cores[1:]):
        _record(pool, tmp_path, f"other{i}", core)
    hung = subprocess.Popen(["true"])            # stands for the hung server, whose group is stopped
    hung.wait()
    _record(pool, tmp_path, "1", cores[0], state="starting", pid=hung.pid)   # on the first core, silent
    pool._restart_stalled("local:m:1", pool._deployments.get("local:m:1"))
    assert starts == [None]          # every core held (its own by the hung start): left unpinned
    assert pool._deployments.get("local:m:1").detail == {"core": None, "stall_restarts": 1}


class _Proc:
    pid = os.getpid()
