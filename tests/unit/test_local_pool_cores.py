"""The local pool pins each CPU server to a core of its own, and to the least busy core when
none is free (a server pinned beside one answering requests was starved)."""
import os
import subprocess
import sys

from tests.support.pool import make_local_pool

SPIN = [sys.executable, "-c", "while True: pass"]


def _record(pool, tmp_path, version: str, core: int) -> None:
    pool._deployments.put(f"local:m:{version}", pool=pool.name, model="m", version=version,
                          artifact=str(tmp_path), url="http://127.0.0.1:1", pid=os.getpid(),
                          state="ready", detail={"core": core})


def test_a_free_core_is_taken_first(tmp_path):
    pool = make_local_pool(tmp_path)
    cores = sorted(os.sched_getaffinity(0))
    assert pool._free_core() == cores[0]
    _record(pool, tmp_path, "1", cores[0])
    if len(cores) > 1:
        assert pool._free_core() == cores[1]


def test_with_every_core_taken_the_least_busy_one_is_chosen(tmp_path):
    pool = make_local_pool(tmp_path)
    cores = sorted(os.sched_getaffinity(0))
    assert len(cores) >= 2, "this machine's CI has two cores"
    for i, core in enumerate(cores):
        _record(pool, tmp_path, str(i), core)
    for spun in (cores[0], cores[-1]):           # whichever core is kept busy, the other is chosen
        spinner = subprocess.Popen(SPIN)
        try:
            os.sched_setaffinity(spinner.pid, {spun})
            assert pool._free_core() != spun
        finally:
            spinner.kill()
            spinner.wait()
