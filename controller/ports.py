"""Small process helpers shared by the pool, the demo and the test harnesses."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except Exception:
        return False


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, what: str = "server",
              log: object = None) -> None:
    """Wait for `url` to answer 2xx; fail early if `proc` exits. `log` names where to look on failure."""
    hint = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready{hint}")
        if http_ok(url):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready at {url} after {timeout:.0f} s{hint}")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate a child, kill it if it has not exited after `grace` seconds, and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def stop_group(pid: int | None, grace: float = 15.0) -> None:
    """SIGTERM a process group started with start_new_session=True, SIGKILL what is left after `grace`.

    Waits for the whole group, not only its leader: a vLLM server's engine process or an
    MLflow worker outliving its parent would keep memory and ports.
    """
    if not pid or not group_alive(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pid) and time.monotonic() < deadline:
        _reap(pid)  # our own child leader would otherwise linger as a zombie
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0       # the kernel tears killed processes down asynchronously
    while True:
        _reap(pid)
        if not group_alive(pid) or time.monotonic() > deadline:
            break
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
