"""Local pool: vLLM OpenAI servers as child processes on this machine.

Servers run in their own session so that a controller crash leaves them serving; the
deployment table remembers pid and port, and a restarted controller adopts them.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from controller.pools.base import Served
from controller.ports import free_port, http_ok, pid_alive, stop_group
from controller.store.deployments import DeploymentStore

log = logging.getLogger(__name__)

QUANTIZED = ("awq", "compressed-tensors")
SERVER_MARK = "RELCTL_POOL_SERVER"      # set in each server's environment: which pool started it
NO_CPU_KERNEL = ("vLLM's CPU build has its 4-bit kernel (CPUWNA16) only for CPUs with AVX-512; this "
                 "CPU has none, so 4-bit builds are served on GPU pools or AVX-512 CPUs")


def cpu_has_4bit_kernel() -> bool:
    """vLLM loads its AVX-512 kernel library (which holds cpu_gemm_wna16) on exactly this test."""
    import torch
    return bool(torch.cpu._is_avx512_supported())


def cpu_dtype() -> str:
    """One activation dtype for every server of a CPU pool, so that a build and its parent (and
    the stable and candidate tracks) are compared like for like: bf16 where 4-bit builds run
    (their kernel takes bf16), fp32 elsewhere (exact, and fast without AVX-512)."""
    return "bfloat16" if cpu_has_4bit_kernel() else "float32"


class LocalVllmPool:
    # A starting server silent this long has hung (seen on CPU: vLLM's engine process never
    # came up after other servers had just stopped); its normal silences last about a minute.
    STALL_SECONDS = 180.0
    STALL_RESTARTS = 2
    fetches_checkpoints = False      # servers load the folder the controller downloaded

    def __init__(self, deployments: DeploymentStore, workdir: Path, *, device: str = "cpu",
                 name: str = "local", max_model_len: int = 512, extra_args: tuple[str, ...] = (),
                 stall_seconds: float = STALL_SECONDS):
        self.name = name
        self.device = device
        self._deployments = deployments
        self._logs = Path(workdir) / "pool-logs"
        self._max_model_len = max_model_len
        self._extra_args = extra_args
        self._stall_seconds = stall_seconds
        self._children: dict[str, subprocess.Popen] = {}
        self._mark = f"{name}@{self._logs.resolve()}"

    def can_serve(self, quantization: str | None) -> tuple[bool, str]:
        if quantization in (None, "", "none"):
            return True, "full precision"
        if quantization not in QUANTIZED:
            return False, f"pool {self.name} does not serve {quantization!r} checkpoints"
        if self.device == "gpu":
            return True, f"GPU pool serves {quantization} builds with vLLM's 4-bit kernels"
        if cpu_has_4bit_kernel():
            return True, f"CPU pool serves {quantization} builds with vLLM's CPUWNA16 kernel (AVX-512)"
        return False, NO_CPU_KERNEL

    def ensure(self, model: str, version: str, artifact_dir: Path) -> Served:
        key = self._key(model, version)
        row = self._deployments.get(key)
        if row is not None and row.state in ("starting", "ready") and pid_alive(row.pid):
            return self._observe(key, row.model, row.version, row.url, row.state)
        pid, url = self._start(key, model, version, artifact_dir, {"core": self._free_core()})
        log.info("pool.start", extra={"model": model, "version": version, "url": url, "pid": pid})
        return Served(model, version, url, "starting", f"pid {pid}")

    def _start(self, key: str, model: str, version: str, artifact_dir: Path, detail: dict) -> tuple[int, str]:
        """Spawn a server on a free port (the core in `detail`) and record it; (pid, url)."""
        port = free_port()
        proc = self._spawn(model, artifact_dir, port, key, detail["core"])
        url = f"http://127.0.0.1:{port}"
        try:
            self._deployments.put(key, pool=self.name, model=model, version=version, artifact=str(artifact_dir),
                                  url=url, pid=proc.pid, state="starting", detail=detail)
        except Exception:
            stop_group(proc.pid)  # an unrecorded server would be orphaned and started again next tick
            raise
        return proc.pid, url

    def reap_orphans(self) -> None:
        """Stop servers this pool started but never recorded: a controller killed between spawning
        a server and saving its row leaves one behind, serving nobody, holding memory and maybe a
        core. Run when no server is being started: at the controller's start, and in stop_all."""
        for group in self.unrecorded_groups():
            log.warning("pool.orphan_stopped", extra={"pgid": group})
            stop_group(group)

    def unrecorded_groups(self) -> set[int]:
        """Process groups (one per server, led by its pid) carrying this pool's mark in their
        environment that no live row records."""
        recorded = {row.pid for row in self._deployments.live(self.name)}
        groups = set()
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(SERVER_MARK) == self._mark:
                    groups.add(os.getpgid(proc.pid))
            except (psutil.Error, ProcessLookupError):
                continue                 # exited meanwhile, or not ours to read
        return groups - recorded

    def adopt(self, model: str, label: str, version: str) -> bool:
        src, dst = self._key(model, label), self._key(model, version)
        if not self._deployments.move(src, dst, version):
            return False
        if src in self._children:
            self._children[dst] = self._children.pop(src)
        log.info("pool.adopt", extra={"model": model, "from": label, "version": version})
        return True

    def status(self, model: str, version: str) -> Served | None:
        key = self._key(model, version)
        row = self._deployments.get(key)
        if row is None or row.state == "stopped":
            return None
        return self._observe(key, model, version, row.url, row.state)

    def stop(self, model: str, version: str) -> None:
        key = self._key(model, version)
        row = self._deployments.get(key)
        if row is None or row.state == "stopped":
            return
        stop_group(row.pid)
        self._children.pop(key, None)
        self._deployments.put(key, state="stopped")
        log.info("pool.stop", extra={"model": model, "version": version})

    def stop_all(self) -> None:
        for row in self._deployments.live(self.name):
            self.stop(row.model, row.version)
        self.reap_orphans()

    def _observe(self, key: str, model: str, version: str, url: str, state: str) -> Served:
        row = self._deployments.get(key)
        child = self._children.get(key)
        dead = (child.poll() is not None) if child else not pid_alive(row.pid)
        if dead:
            self._deployments.put(key, state="failed")
            return Served(model, version, url, "failed", f"server exited; see {self._log_path(key)}")
        if state != "ready" and http_ok(f"{url}/health"):
            self._deployments.put(key, state="ready")
            state = "ready"
        if state == "starting" and self._silent_for(key) > self._stall_seconds:
            return self._restart_stalled(key, row)
        return Served(model, version, url, state)

    def _silent_for(self, key: str) -> float:
        try:
            return time.time() - self._log_path(key).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _restart_stalled(self, key: str, row) -> Served:
        """Stop a server whose start hung; start it again, up to STALL_RESTARTS times."""
        stop_group(row.pid)
        self._children.pop(key, None)
        detail = row.detail or {}
        restarts = detail.get("stall_restarts", 0)
        why = f"no output for {self._stall_seconds:.0f} s while starting"
        if restarts >= self.STALL_RESTARTS:
            self._deployments.put(key, state="failed")
            return Served(row.model, row.version, row.url, "failed",
                          f"{why}, {restarts + 1} times; see {self._log_path(key)}")
        pid, url = self._start(key, row.model, row.version, Path(row.artifact),
                               {**detail, "core": self._free_core(), "stall_restarts": restarts + 1})
        log.warning("pool.restart_stalled", extra={"model": row.model, "version": row.version, "pid": pid,
                                                   "reason": why})
        return Served(row.model, row.version, url, "starting", f"restarted: {why}")

    def _server_command(self, model: str, artifact_dir: Path, port: int, core: int | None) -> tuple[list[str], dict]:
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(artifact_dir),
               "--served-model-name", model, "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(self._max_model_len), *self._extra_args]
        env = {**os.environ, SERVER_MARK: self._mark}
        if self.device == "cpu":
            cmd += ["--dtype", cpu_dtype()]
            if not any(a.startswith(("--compilation-config", "-O", "-cc")) for a in self._extra_args):
                # No torch.compile warm-up: on CPU it compiles C++ with gcc at every new model
                # (10-30 s per start quiet, minutes on a loaded 2-core machine) and served the
                # tiny models no faster (p50 41-60 ms either way). Compilation options given in
                # the pool's extra args take precedence.
                cmd.append("--enforce-eager")
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            if core is None:          # no core of its own: one unpinned thread the kernel places
                env.update(VLLM_CPU_OMP_THREADS_BIND="nobind", OMP_NUM_THREADS="1")
            else:
                env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
        return cmd, env

    def _spawn(self, model: str, artifact_dir: Path, port: int, key: str, core: int | None) -> subprocess.Popen:
        self._logs.mkdir(parents=True, exist_ok=True)
        cmd, env = self._server_command(model, artifact_dir, port, core)
        with open(self._log_path(key), "ab") as out:
            # a line of our own marks each start in the log and restarts its silence clock
            out.write(f"--- relctl: starting {model} from {artifact_dir} on port {port}\n".encode())
            out.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        # A child inherits the spawning thread's CPU affinity, which quantization narrows (and
        # OpenMP may pin): give the server the whole process's cores; vLLM pins its own workers.
        os.sched_setaffinity(proc.pid, os.sched_getaffinity(os.getpid()))
        self._children[key] = proc
        return proc

    def busy_cores(self) -> set[int]:
        """Cores pinned to live CPU servers (their OpenMP threads spin on them)."""
        return {(r.detail or {}).get("core") for r in self._deployments.live(self.name)} - {None}

    def _free_core(self) -> int | None:
        """A core no other CPU server is pinned to, so two servers do not fight over one; None when
        every core is taken. (Pinned beside a server answering requests, a starting server's worker
        got 51 ms of CPU in 155 s and never came up; left to the kernel it started in 83 s.) An
        unpinned server takes a core too -- the kernel's choice, so any of them: with as many live
        servers as cores, none is free (a start pinned to the core such a server spun on was silent
        for 180 s; the same start unpinned came up)."""
        cores = sorted(os.sched_getaffinity(0))
        if len(self._deployments.live(self.name)) >= len(cores):
            return None
        busy = self.busy_cores()
        return next((c for c in cores if c not in busy), None)

    def _log_path(self, key: str) -> Path:
        return self._logs / (key.replace(":", "_").replace("/", "_") + ".log")

    def _key(self, model: str, version: str) -> str:
        return f"{self.name}:{model}:{version}"


def build(settings, sessions) -> LocalVllmPool:
    """Backend factory (controller.backends): vLLM servers as processes on this machine."""
    pool = LocalVllmPool(DeploymentStore(sessions), settings.workdir, device=settings.pool_device)
    pool.reap_orphans()          # built as the controller starts: no server of ours is between spawn and save
    return pool
