"""Soak: the whole stack at the gateway's measured capacity for minutes, with releases running through.

    python bench/soak.py [--minutes 10] [--json] [--quick]

Starts, for real: PostgreSQL (the store; SQLite where PostgreSQL is not installed), MLflow,
Prometheus with Alertmanager, the gateway and the controller (`relctl serve`, run through
bench/stub_pool.py so that its pool starts nginx stubs instead of vLLM: real vLLM on two CPU
cores answers tens of requests a second, the gateway thousands). Then:

1. registers version 1 as champion and waits until the gateway serves it;
2. measures the gateway's capacity through the stack: bench/soak_load.py in closed loop
   (32 connections, `--capacity-seconds`);
3. offers that rate (times `--load-factor`) for `--minutes`, open loop, while it registers new
   versions one after another in MLflow: each goes shadow -> canary -> promoted, and every
   third candidate (the 2nd, 5th, ...) is faulty (its stub answers 30 % 500s) and must be
   rolled back;
4. samples RSS and open file descriptors of the controller and gateway processes every
   `--sample-seconds`;
5. compares what the client sent and got with the gateway's own counters
   (relctl_requests_total{mode="live"}, relctl_errors_total) over the same window.

"Lost" is a request the client sent that got no HTTP answer; "uncounted" an answer the
gateway's counters do not hold. Memory slope: least squares over the second half of the
samples, MB per minute. Exit status 1 when a request was lost or uncounted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.stub_pool import MARKER, NAME, StubPool  # noqa: E402
from controller.demo.stack import DemoStack  # noqa: E402
from controller.domain.phase_table import TERMINAL  # noqa: E402
from controller.gateway.metrics import RETIRE_AFTER_SECONDS  # noqa: E402

MODEL = "soak-chat"
ENDED = {p.value for p in TERMINAL}
FAULTY_ERROR_RATE = 0.3
CAPACITY_CONNECTIONS = 32


def policy(quick: bool) -> dict:
    """Short phases (a release in about a minute); errors judged, not latency: at full load the
    two stubs' latencies differ by the scheduler's whims, not by version."""
    step = 5 if quick else 10
    return {"name": "soak", "quantize": {"enabled": False}, "shadow": {"duration_seconds": step},
            "canary": {"steps": [50] if quick else [20, 50], "step_seconds": step},
            "analysis": {"alpha": 0.05, "min_requests": 200, "min_soak_seconds": step, "settle_seconds": 2,
                         "error_rate_tolerance": 0.05, "latency_metrics": []}}


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S', time.gmtime())}Z] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the stack

def start_postgres(workdir: Path):
    """PostgreSQL as the tests start it (tests/support/postgres.py); None where it is not installed."""
    try:
        from tests.support.postgres import PostgresServer, _binary
        _binary("initdb")
    except (ImportError, RuntimeError) as exc:
        say(f"no PostgreSQL ({exc}); the store is SQLite")
        return None
    folder = workdir / "postgres"
    folder.mkdir(parents=True)
    for path in (folder, *folder.parents):   # the postgres user must reach its data folder
        if path == Path("/"):
            break
        os.chmod(path, os.stat(path).st_mode | 0o711)
    return PostgresServer(folder).start()


class SoakStack(DemoStack):
    """The demo's stack (MLflow, Prometheus, Alertmanager, gateway, controller) on the soak's store,
    with the controller's pool the nginx stubs."""

    def __init__(self, workdir: Path, policy_file: Path, db_url: str):
        super().__init__(workdir, watch={MODEL: str(policy_file)})
        self._db_url = db_url

    @property
    def db_url(self) -> str:
        return self._db_url

    def env(self) -> dict[str, str]:
        return {**super().env(), "RELCTL_POOL": NAME, "PYTHONPATH": str(ROOT)}

    controller_module = ("-m", "bench.stub_pool", "serve")   # `relctl serve` with the stub pool registered

    def stop_model_servers(self) -> None:
        from sqlalchemy.orm import sessionmaker

        from controller.store.db import make_engine
        from controller.store.deployments import DeploymentStore
        engine = make_engine(self.db_url)
        StubPool(DeploymentStore(sessionmaker(engine)), self.workdir, name="stub").stop_all()
        engine.dispose()


def checkpoint(root: Path, n: int, error_rate: float) -> Path:
    """A folder MLflow registers like a checkpoint; the stub pool reads its error rate from it."""
    folder = root / f"v{n}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "name": f"soak-{n}"}))
    (folder / "weights.bin").write_bytes(f"soak checkpoint {n}".encode() * 64)
    (folder / MARKER).write_text(json.dumps({"error_rate": error_rate}))
    return folder


def wait_served(gateway_url: str, timeout_s: float) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{MODEL} not served through the gateway after {timeout_s:.0f} s")


# ---------------------------------------------------------------- measuring

class GatewayCounters(threading.Thread):
    """The gateway's own counters (live requests, errors by class, shadow and audit drops), scraped
    every `every` seconds and kept per series. The gateway removes a release's series
    RETIRE_AFTER_SECONDS after its route went away, so totals read only at the end would miss
    the requests of every release retired during the run; the last value seen of each series
    does not."""

    FAMILIES = ("relctl_requests", "relctl_errors", "relctl_shadow_dropped", "relctl_audit_dropped")

    def __init__(self, gateway_url: str, every: float = 10.0):
        super().__init__(daemon=True)
        assert every < RETIRE_AFTER_SECONDS / 4, "scrape well within the gateway's retirement time"
        self.url, self.every, self._stop_event = gateway_url, every, threading.Event()
        self.last: dict[tuple, tuple[str, dict, float]] = {}        # series -> (family, labels, value)

    def scrape(self) -> None:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name not in self.FAMILIES:
                continue
            for s in family.samples:
                if s.name.endswith("_total"):
                    self.last[(s.name, tuple(sorted(s.labels.items())))] = (family.name, s.labels, s.value)

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                self.scrape()
            except httpx.HTTPError:
                pass

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)

    def totals(self) -> dict:
        out = {"requests": 0, "errors": {}, "shadow_requests": 0, "shadow_dropped": 0, "audit_dropped": 0}
        for family, labels, value in self.last.values():
            if family == "relctl_requests":
                out["requests" if labels.get("mode") == "live" else "shadow_requests"] += int(value)
            elif family == "relctl_errors" and labels.get("mode") == "live" and value:
                out["errors"][labels["error_class"]] = out["errors"].get(labels["error_class"], 0) + int(value)
            elif family == "relctl_shadow_dropped":
                out["shadow_dropped"] += int(value)
            elif family == "relctl_audit_dropped":
                out["audit_dropped"] += int(value)
        return out


def delta(after: dict, before: dict) -> dict:
    out = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out[key] = {c: n - before[key].get(c, 0) for c, n in value.items() if n != before[key].get(c, 0)}
        else:
            out[key] = value - before[key]
    return out


class Sampler(threading.Thread):
    """RSS (MB) and open file descriptors of each process every `every` seconds."""

    def __init__(self, pids: dict[str, int], every: float):
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.every, self.samples = every, {name: [] for name in pids}
        self.stubs: list[int] = []        # nginx stubs alive (the controller's children)
        self.cpu: dict[int, tuple[str, float, float]] = {}     # pid -> (role, first CPU s, last CPU s)
        self.machine: list[float] = []                          # busy CPU seconds of the machine
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def cpu_sample(self) -> None:
        """CPU seconds of every process of the soak (this one's children, by role) and of the machine."""
        first = not self.cpu
        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    role = self.cpu.get(p.pid, (role_of(p, me),))[0]
            except psutil.Error:
                continue
            used = t.user + t.system
            start = self.cpu[p.pid][1] if p.pid in self.cpu else (used if first else 0.0)
            self.cpu[p.pid] = (role, start, used)
        busy = psutil.cpu_times()
        self.machine.append(sum(busy) - busy.idle - getattr(busy, "iowait", 0.0))

    def cpu_summary(self, wall: float) -> dict:
        """Cores used on average by each role over the soak, and by everything else on the machine."""
        roles: dict[str, float] = {}
        for role, start, end in self.cpu.values():
            roles[role] = roles.get(role, 0.0) + end - start
        total = self.machine[-1] - self.machine[0]
        out = {role: round(sec / wall, 2) for role, sec in sorted(roles.items(), key=lambda kv: -kv[1])}
        out["not the soak's"] = round(max(0.0, total - sum(roles.values())) / wall, 2)
        return out

    def sample(self) -> None:
        self.cpu_sample()
        t = time.monotonic() - self.t0
        for name, proc in self.procs.items():
            with proc.oneshot():
                self.samples[name].append((t, proc.memory_info().rss / 2**20, proc.num_fds()))
        self.stubs.append(sum(1 for c in self.procs["controller"].children() if c.name() == "nginx"))

    def at_rest(self, peers: dict[int, str]) -> dict:
        """Each process's RSS, fds and TCP sockets by peer now, and the stubs alive (before and after the
        load, once idle connections have been closed)."""
        out = {}
        for name, p in self.procs.items():
            tcp: dict[str, int] = {}
            for c in p.net_connections(kind="tcp"):
                port = c.raddr.port if c.raddr else None
                peer = "listening" if port is None else peers.get(port) or peers.get(c.laddr.port) or "stub servers"
                tcp[peer] = tcp.get(peer, 0) + 1
            out[name] = {"rss_mb": round(p.memory_info().rss / 2**20, 1), "fds": p.num_fds(), "tcp": tcp}
        out["stub_servers"] = sum(1 for c in self.procs["controller"].children() if c.name() == "nginx")
        return out

    def run(self) -> None:
        self.t0 = time.monotonic()
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def summary(self) -> dict:
        out = {}
        for name, rows in self.samples.items():
            rss, fds = [r[1] for r in rows], [r[2] for r in rows]
            half = rows[len(rows) // 2:]
            t = [r[0] for r in half]
            out[name] = {"rss_mb": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1),
                                    "slope_mb_per_min": round(60 * slope(t, [r[1] for r in half]), 3)},
                         "fds": {"start": fds[0], "end": fds[-1], "max": max(fds),
                                 "slope_per_min": round(60 * slope(t, [r[2] for r in half]), 3)},
                         "samples": len(rows)}
        out["stub_servers"] = {"max": max(self.stubs), "end": self.stubs[-1]}
        return out


ROLES = (("controller.gateway", "gateway"), ("bench.stub_pool", "controller"), ("soak_load.py", "load client"),
         ("postgres", "postgresql"), ("mlflow", "mlflow"), ("gunicorn", "mlflow"), ("uvicorn", "mlflow"),
         ("alertmanager", "alertmanager"), ("prometheus", "prometheus"), ("nginx", "stub servers"))


def role_of(p: psutil.Process, me: psutil.Process) -> str:
    if p.pid == me.pid:
        return "soak harness"
    cmd = " ".join(p.cmdline())
    return next((role for part, role in ROLES if part in cmd), p.name())


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def run_load(stack: SoakStack, seconds: float, rate: float, connections: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "bench" / "soak_load.py"), "--url", stack.gateway_url, "--model", MODEL,
           "--seconds", str(seconds), "--rate", str(rate), "--connections", str(connections)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)


def load_result(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"load client exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- releases

class Releases:
    """Registers candidates one after another while the load runs; each is followed to its end."""

    def __init__(self, stack: SoakStack, registry, folder: Path):
        self.stack, self.registry, self.folder = stack, registry, folder
        self.done: list[dict] = []
        self.errors: list[str] = []      # the driver's own failures (MLflow, the API), not the releases'
        self.n = 1

    def release_for(self, version: str) -> dict | None:
        rows = self.stack.api("GET", "/api/v1/releases", params={"model": MODEL}).json()
        return next((r for r in rows if r["candidate_version"] == version), None)

    def run_one(self, deadline: float) -> None:
        self.n += 1
        faulty = (self.n - 1) % 3 == 2
        version = self.registry.register_checkpoint(
            MODEL, checkpoint(self.folder, self.n, FAULTY_ERROR_RATE if faulty else 0.0),
            description="soak candidate" + (" (faulty)" if faulty else ""))
        started, row, paused = time.monotonic(), None, None
        say(f"registered version {version}{' (faulty)' if faulty else ''}")
        while time.monotonic() < deadline:
            row = self.release_for(version) or row
            if row and row["phase"] in ENDED:
                break
            if row and row["phase"] == "paused" and paused is None:
                # a pause waits for a person: recorded, then aborted so that the next release can run
                paused = row.get("reason")
                say(f"version {version} paused ({paused}); aborting it")
                self.stack.api("POST", f"/api/v1/releases/{row['id']}/abort").raise_for_status()
            time.sleep(1)
        outcome = row["phase"] if row else "not_started"
        entry = {"version": version, "faulty": faulty, "outcome": outcome,
                 "seconds": round(time.monotonic() - started, 1)}
        if paused:
            entry["paused"] = paused
        if row and outcome not in ("succeeded", "rolled_back"):
            entry["reason"] = row.get("reason")
        say(f"version {version}: {outcome} after {entry['seconds']} s")
        self.done.append(entry)

    def summary(self) -> dict:
        count = {}
        for r in self.done:
            count[r["outcome"]] = count.get(r["outcome"], 0) + 1
        faulty = [r for r in self.done if r["faulty"] and r["outcome"] != "unfinished"]
        return {"promoted": count.get("succeeded", 0), "rolled_back": count.get("rolled_back", 0),
                "other": {k: v for k, v in count.items() if k not in ("succeeded", "rolled_back")},
                "faulty_all_rolled_back": all(r["outcome"] == "rolled_back" for r in faulty),
                "healthy_all_promoted": all(r["outcome"] == "succeeded" for r in self.done
                                            if not r["faulty"] and r["outcome"] in ENDED),
                "driver_errors": self.errors, "each": self.done}


# ---------------------------------------------------------------- main

def soak(args: argparse.Namespace, workdir: Path) -> dict:
    from controller.registry.mlflow_registry import MlflowRegistry

    pg = start_postgres(workdir)
    try:
        db_url = pg.create_database("relctl") if pg else f"sqlite:///{(workdir / 'relctl.db').resolve()}"
        policy_file = workdir / "soak-policy.yaml"
        policy_file.write_text(yaml.safe_dump(policy(args.quick)))
        stack = SoakStack(workdir / "stack", policy_file, db_url)
        say(f"starting {'PostgreSQL, ' if pg else ''}MLflow, Prometheus, Alertmanager, the gateway and the "
            f"controller; files in {workdir}")
        stack.start()
        try:
            return drive(args, stack, MlflowRegistry(stack.mlflow.url), workdir, "postgresql" if pg else "sqlite",
                         pg.port if pg else None)
        finally:
            say("stopping the stack")
            stack.stop()
    finally:
        if pg:
            pg.stop()


def drive(args, stack: SoakStack, registry, workdir: Path, store: str, pg_port: int | None) -> dict:
    releases = Releases(stack, registry, workdir / "checkpoints")
    registry.set_alias(MODEL, "champion", registry.register_checkpoint(MODEL, checkpoint(releases.folder, 1, 0.0)))
    wait_served(stack.gateway_url, 120)
    say(f"version 1 served; measuring capacity for {args.capacity_seconds:g} s")
    cap = load_result(run_load(stack, args.capacity_seconds, 0, CAPACITY_CONNECTIONS, workdir / "load.log"),
                      args.capacity_seconds + 60)
    rate = round(cap["achieved_rps"] * args.load_factor)
    seconds = args.minutes * 60
    say(f"capacity {cap['achieved_rps']} req/s; offering {rate} req/s for {seconds:g} s")
    sampler = Sampler({"controller": stack.controller.pid, "gateway": stack.gateway.pid}, args.sample_seconds)
    peers = {stack.gateway_port: "gateway", stack.api_port: "controller API", stack.mlflow.port: "mlflow",
             int(stack.prometheus.url.rsplit(":", 1)[1]): "prometheus"} | ({pg_port: "store"} if pg_port else {})
    say(f"{args.settle_seconds:g} s without traffic, then RSS and fds at rest")
    time.sleep(args.settle_seconds)
    rest_before = sampler.at_rest(peers)
    counters = GatewayCounters(stack.gateway_url)
    counters.scrape()
    before = counters.totals()
    sampler.start()
    counters.start()
    load = run_load(stack, seconds, rate, args.connections, workdir / "load.log")
    deadline = time.monotonic() + seconds
    while load.poll() is None and time.monotonic() < deadline - args.release_margin:
        try:
            releases.run_one(deadline)
        except Exception as exc:    # noqa: BLE001 - the load goes on; the error is in the report
            say(f"release driver: {exc}")
            releases.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(5)
    result = load_result(load, seconds + 120)
    counters.stop()
    counters.scrape()
    after = counters.totals()
    sampler.stop()
    (workdir / "samples.json").write_text(json.dumps(sampler.samples))    # (s, RSS MB, fds) per process
    cores = sampler.cpu_summary(time.monotonic() - sampler.t0)
    loadavg = os.getloadavg()
    say(f"load done; {args.settle_seconds:g} s without traffic, then RSS and fds at rest")
    time.sleep(args.settle_seconds)
    rest = sampler.at_rest(peers)
    for r in releases.done:
        if r["outcome"] not in ENDED:
            r["outcome"] = "unfinished"
    procs = sampler.summary()
    for name in ("controller", "gateway", "stub_servers"):
        procs[name]["at_rest"] = {"before": rest_before[name], "after": rest[name]}
    env = {"loadavg_1m_before": round(args.loadavg_before, 2), "loadavg_1m_at_end": round(loadavg[0], 2)}
    env["cores_used"] = cores
    return report(cap, result, delta(after, before), procs, releases.summary(), store, args) | env


def report(cap: dict, load: dict, gw: dict, procs: dict, releases: dict, store: str, args) -> dict:
    answered = load["answered"]
    errors = {s: n for s, n in load["status"].items() if not s.startswith("2")}
    return {
        "minutes": args.minutes, "store": store, "cpus": os.cpu_count(),
        "capacity_rps": cap["achieved_rps"], "capacity_run": {k: cap[k] for k in ("connections", "status",
                                                                                 "not_answered", "latency_ms")},
        "offered_rps": load["offered_rps"], "achieved_rps": load["achieved_rps"], "not_offered": load["not_offered"],
        "requests_sent": load["sent"], "answered": answered, "errors_by_status": errors,
        "not_answered": load["not_answered"], "lost": load["attempted"] - answered,
        "gateway": {"counted": gw["requests"], "uncounted": answered - gw["requests"],
                    "errors_by_class": gw["errors"], "shadow_requests": gw["shadow_requests"],
                    "shadow_dropped": gw["shadow_dropped"], "audit_dropped": gw["audit_dropped"]},
        "latency_ms": load["latency_ms"], "late_max_s": load["late_max_s"], "late_over_1s": load["late_over_1s"],
        "answered_rps_per_10s": load["answered_rps_per_10s"],
        "releases": releases,
        "controller": procs["controller"], "gateway_process": procs["gateway"], "stub_servers": procs["stub_servers"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 s capacity, 5 s phases, one canary step")
    p.add_argument("--capacity-seconds", type=float, help="closed-loop capacity measurement (default 10; quick 5)")
    p.add_argument("--load-factor", type=float, default=1.0, help="offered rate as a share of the capacity")
    p.add_argument("--connections", type=int, default=64, help="client connections during the soak")
    p.add_argument("--sample-seconds", type=float, default=5.0)
    p.add_argument("--settle-seconds", type=float, default=35.0,
                   help="without traffic before RSS, fds and sockets are read at rest, before and after the load "
                        "(the gateway's idle upstream connections close 15-30 s after their last use)")
    p.add_argument("--release-margin", type=float, help="no new candidate this close to the end (default 60 s; "
                                                        "quick 0)")
    p.add_argument("--workdir", help="keep the files here (default: a temporary folder, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.capacity_seconds is None:
        args.capacity_seconds = 5.0 if args.quick else 10.0
    if args.release_margin is None:
        args.release_margin = 0.0 if args.quick else 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.loadavg_before = os.getloadavg()[0]
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        result = soak(args, Path(args.workdir).resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="relctl-soak-") as tmp:
            result = soak(args, Path(tmp))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    ok = result["lost"] == 0 and result["gateway"]["uncounted"] == 0
    say("no request lost or uncounted" if ok else
        f"lost {result['lost']}, uncounted by the gateway {result['gateway']['uncounted']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
