"""Controller scale: many active canaries judged from a real Prometheus, and one slow build beside a rollback.

The controller runs here with its real store (SQLite), reconcile loop, per-release workers
and judge, and the batched metric provider over a REAL Prometheus; pool, router and
registry are the in-memory fakes of tests/fakes. The gateway's series of every release come
from bench/scale_exporter.py (its own process, scraped every second).

1. N active canaries (policy `demo`, first step 20 %; its steps made long so none promotes
   while measured): how often each release is judged per second of wall time, reconcile
   ticks per second, then a fault (candidate timeouts at 50 %) on some of them, their starts
   spread over two scrapes: the time from the breach -- the first sample in Prometheus on
   which the judge rolls the release back -- to the candidate's weight reaching 0 in the
   router (p50, p99, max); also from the fault's first sample, which usually holds too few
   errors to decide on yet; and the controller's peak RSS.
2. Canaries of other models turn faulty, alone and then beside a release whose build takes
   120 s (quantize_stage._build replaced by a wait on the job's cancel event): the median
   time from breach to weight 0 in each case.

    python bench/controller_scale.py [--releases 1000] [--quick] [--json]
"""
from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import sessionmaker  # noqa: E402

from controller.analysis.analyzer import Analyzer  # noqa: E402
from controller.analysis.prometheus_server import PrometheusServer  # noqa: E402
from controller.analysis.providers.batched import BatchedProvider  # noqa: E402
from controller.analysis.providers.prometheus import PrometheusProvider  # noqa: E402
from controller.domain.phases import Phase  # noqa: E402
from controller.domain.release import UserAction  # noqa: E402
from controller.ports import free_port  # noqa: E402
from controller.reconcile import quantize_stage, workers as workers_mod  # noqa: E402
from controller.reconcile.context import Controller, utc_now  # noqa: E402
from controller.reconcile.jobs import JobRunner  # noqa: E402
from controller.reconcile.workers import ReleaseWorkers  # noqa: E402
from controller.store.audit import AuditStore  # noqa: E402
from controller.store.db import make_engine, migrate  # noqa: E402
from controller.store.jobs import JobStore  # noqa: E402
from controller.store.registry_state import ChampionStore, VersionQueue  # noqa: E402
from controller.store.releases import ReleaseStore  # noqa: E402
from policies.loader import load_policy  # noqa: E402
from policies.schema import Policy  # noqa: E402
from tests.fakes import FakePool, FakeRegistry, FakeRouter  # noqa: E402

RATE, SHARE, BASE_ERROR, BREACH_ERROR = 50.0, 0.2, 0.01, 0.5    # per release: req/s, canary share, error rates
BREACH_SPREAD_SECONDS = 2.0   # breaches start spread over this long
HISTORY_SECONDS = 60          # counters start this long before the bench (a release already serving)


class WatchedRouter(FakeRouter):
    """The fake router, noting when each model's candidate first got no traffic."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: set[str] = set()
        self.zero_at: dict[str, float] = {}

    def watch(self, models: set[str]) -> None:
        """From now on, note when these models' candidates reach weight 0."""
        self.watched |= models

    def apply(self, spec) -> None:
        super().apply(spec)
        if spec.model in self.watched and spec.weights.get("candidate", 0.0) == 0.0 \
                and spec.mirror_to != "candidate":
            self.zero_at.setdefault(spec.model, time.time())

    def remove(self, model) -> None:
        super().remove(model)
        if model in self.watched:
            self.zero_at.setdefault(model, time.time())


class CountingProvider:
    """Counts the judge's reads per release (a read is one judgment on fresh or cached counts), and for
    watched releases notes each read's time and the candidate's request counter it saw (which names
    the Prometheus sample the judgment was made on)."""

    def __init__(self, inner: BatchedProvider) -> None:
        self.inner = inner
        self.reads: dict[str, int] = {}
        self.watched: set[str] = set()
        self.seen: dict[str, list[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def read(self, model, release_id, thresholds):
        with self._lock:
            self.reads[release_id] = self.reads.get(release_id, 0) + 1
        m = self.inner.read(model, release_id, thresholds)
        if release_id in self.watched and m.ok:
            with self._lock:
                self.seen.setdefault(release_id, []).append((time.time(), m.candidate.requests))
        return m

    def stable_latency(self, model, release_id, kind):
        return self.inner.stable_latency(model, release_id, kind)


class Exporter:
    """bench/scale_exporter.py in its own process, fed through a JSON control file."""

    def __init__(self, workdir: Path, prom: PrometheusServer) -> None:
        self.control = workdir / "series.json"
        self.releases: list[dict] = []
        self.write()
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "scale_exporter.py"),
                                      "--port", str(self.port), "--control", str(self.control)])
        prom.add_target(f"127.0.0.1:{self.port}", name="scale-exporter")

    def write(self) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rate": RATE, "share": SHARE, "base_error": BASE_ERROR,
                                   "breach_error": BREACH_ERROR, "releases": self.releases}))
        os.replace(tmp, self.control)

    def serve(self, releases) -> None:
        start = time.time() - HISTORY_SECONDS
        self.releases = [{"model": r.model, "release": r.id, "stable": r.stable_version,
                          "candidate": r.candidate_version, "start": start, "breach": None} for r in releases]
        self.write()

    def breach(self, release_ids: list[str], spread_seconds: float = BREACH_SPREAD_SECONDS) -> None:
        """Each release turns faulty at its own moment, spread evenly over `spread_seconds` (two
        scrapes), so the times measured sample every phase of the scrape and snapshot cycles."""
        now, order = time.time(), {rid: i for i, rid in enumerate(release_ids)}
        for r in self.releases:
            if r["release"] in order:
                r["breach"] = now + spread_seconds * order[r["release"]] / len(release_ids)
        self.write()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def make_ctx(workdir: Path, models: list[str], metrics) -> Controller:
    workdir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{workdir / 'relctl.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    registry = FakeRegistry(workdir, model=models[0])
    pool = FakePool()
    for m in models:
        registry.versions[m] = {"1": {}, "2": {}}
        registry.aliases[(m, "champion")] = "1"
        pool.ensure(m, "1", None)
        pool.ensure(m, "2", None)
    return Controller(store=ReleaseStore(sessions), registry=registry, pool=pool, router=WatchedRouter(),
                      metrics=metrics, workdir=workdir, jobs=JobRunner(JobStore(sessions), utc_now),
                      champions=ChampionStore(sessions), queue=VersionQueue(sessions), audit=AuditStore(sessions))


def canary_policy() -> Policy:
    """The built-in `demo` policy, its canary steps made long so that nothing promotes while measured."""
    p = load_policy("demo")
    return p.model_copy(update={"canary": p.canary.model_copy(update={"step_seconds": 3600.0})})


def create_canaries(ctx: Controller, models: list[str], policy: Policy) -> list:
    """Releases already in canary step 1 (candidate served at the policy's first weight)."""
    out, doc, share = [], policy.model_dump(mode="json"), policy.canary.steps[0] / 100.0
    for m in models:
        now = ctx.clock()
        r = ctx.store.create(m, "2", "1", doc, now)
        state = Analyzer(ctx.metrics, policy.analysis).start_window(m, r.id, share, now, {})
        new = r.evolve(phase=Phase.CANARY, step_index=0, phase_started_at=now, reason="bench",
                       status={"analysis": state, "deployment": {"version": "2", "quantization": "none",
                                                                 "reason": "bench"}})
        out.append(ctx.store.save(r, new, [dict(kind="transition", from_phase="pending", to_phase="canary",
                                                reason="bench: straight to canary", data={})], now))
    return out


class Driver:
    """The scheduler's reconcile job: ReleaseWorkers.tick() every tick_seconds, counting reconciles."""

    def __init__(self, ctx: Controller, tick_seconds: float, workers: int, profile: bool = False) -> None:
        self.workers = ReleaseWorkers(ctx, max_workers=workers)
        self.tick_seconds, self.reconciles, self.ticks = tick_seconds, 0, 0
        self._stop = threading.Event()
        self._count_lock = threading.Lock()
        self.profiles: list[cProfile.Profile] = []
        self._local = threading.local()
        original = workers_mod.reconcile

        def counted(c, release_id, known_version=None):
            prof = self._profiler() if profile else None
            if prof is not None:
                prof.enable()
            try:
                return original(c, release_id, known_version)
            finally:
                if prof is not None:
                    prof.disable()
                with self._count_lock:
                    self.reconciles += 1
        self._original = original
        workers_mod.reconcile = counted
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _profiler(self) -> cProfile.Profile:
        """One profiler per worker thread (cProfile sees only the thread it is enabled in)."""
        if not hasattr(self._local, "prof"):
            self._local.prof = cProfile.Profile()
            with self._count_lock:
                self.profiles.append(self._local.prof)
        return self._local.prof

    def print_profile(self, top: int = 30) -> None:
        if self.profiles:
            stats = pstats.Stats(*self.profiles, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(top)
            stats.sort_stats("tottime").print_stats(top)

    def _run(self) -> None:
        """At a fixed rate, as the server's APScheduler interval job (a late tick starts the next at once)."""
        due = time.monotonic()
        while not self._stop.is_set():
            self.workers.tick()
            self.ticks += 1
            due = max(due + self.tick_seconds, time.monotonic() - self.tick_seconds)
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.workers.shutdown()
        workers_mod.reconcile = self._original


def appeared_at(prom: PrometheusServer, release_ids: set[str]) -> dict[str, float]:
    """Per release, the time of the first scraped sample that shows the breach's timeouts."""
    rows = prom.query('relctl_errors_total{error_class="timeout",track="candidate"}[3m]')
    out = {}
    for row in rows:
        rel = row["metric"].get("release")
        first = next((float(ts) for ts, v in row["values"] if float(v) > 0), None)
        if rel in release_ids and first is not None:
            out[rel] = first
    return out


def decisive_at(prom: PrometheusServer, provider: CountingProvider, router: WatchedRouter,
                releases: list, stats: dict[str, int]) -> dict[str, float]:
    """Per release, the time of the first sample in Prometheus on which the judge rolls it back.

    The judgment that rolled a release back is its last read before weight 0; its candidate request
    counter names the scraped sample it was made on. Earlier faulty samples that some judgment read
    without rolling back held too little evidence; any earlier faulty sample that no judgment read
    counts against the controller (the breach is then timed from it)."""
    ids = {r.id for r in releases}
    timeouts = {row["metric"]["release"]: [(float(ts), float(v)) for ts, v in row["values"]]
                for row in prom.query('relctl_errors_total{error_class="timeout",track="candidate"}[3m]')
                if row["metric"].get("release") in ids}
    requests = {row["metric"]["release"]: {float(ts): round(float(v)) for ts, v in row["values"]}
                for row in prom.query('relctl_requests_total{track="candidate"}[3m]')
                if row["metric"].get("release") in ids}
    out = {}
    for r in releases:
        zero, reads = router.zero_at.get(r.model), provider.seen.get(r.id, [])
        judged = [n for at, n in reads if zero is None or at <= zero]
        faulty = [ts for ts, v in timeouts.get(r.id, []) if v > 0]
        if zero is None or not judged or not faulty:
            continue
        by_count = {n: ts for ts, n in requests.get(r.id, {}).items()}
        decisive = by_count.get(judged[-1])
        if decisive is None:          # not matched to a sample: time it from the fault's first one
            out[r.id] = faulty[0]
            stats["unmatched"] += 1
            continue
        read_counts = set(judged[:-1])
        earlier = [ts for ts in faulty if ts < decisive]
        while earlier and requests[r.id].get(earlier[-1]) not in read_counts:
            decisive = earlier.pop()      # a faulty sample no judgment read: the controller's delay
            stats["unread_samples"] += 1
        out[r.id] = decisive
    return out


def breach_and_wait(ctx: Controller, prom: PrometheusServer, exporter: Exporter, releases: list,
                    timeout: float, provider: CountingProvider | None = None) -> dict:
    """Turn the releases faulty; seconds to weight 0 from each fault's first sample in Prometheus
    ("fault") and, with a counting provider, from the first sample the judge rolls back on ("breach",
    with "timing": breaches timed from an unread or unmatched earlier sample)."""
    ids = {r.id for r in releases}
    ctx.router.watch({r.model for r in releases})
    if provider is not None:
        provider.watched |= ids
    exporter.breach([r.id for r in releases])
    deadline = time.time() + BREACH_SPREAD_SECONDS + timeout
    while time.time() < deadline and not all(r.model in ctx.router.zero_at for r in releases):
        time.sleep(0.1)
    time.sleep(1.5)  # the breach's samples are in Prometheus long before this
    zero = ctx.router.zero_at

    def since(at: dict[str, float]) -> list[float]:
        return [zero[r.model] - at[r.id] if r.model in zero and r.id in at else float("inf") for r in releases]

    out = {"fault": since(appeared_at(prom, ids))}
    if provider is not None:
        stats = {"unmatched": 0, "unread_samples": 0}
        out["breach"] = since(decisive_at(prom, provider, ctx.router, releases, stats))
        out["timing"] = stats
    return out


def wait_series(prom: PrometheusServer, releases: list, timeout: float = 90.0) -> None:
    want = {r.id for r in releases}
    prom.wait_for('count by (release) (relctl_requests_total{track="candidate"})',
                  lambda rows: want <= {row["metric"].get("release") for row in rows}, timeout)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None (JSON null) when it is a breach that never reached weight 0."""
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
    return round(value, 3) if math.isfinite(value) else None


def scale_run(base: Path, prom: PrometheusServer, exporter: Exporter, args) -> dict:
    models = [f"model-{i:04d}" for i in range(args.releases)]
    provider = CountingProvider(BatchedProvider(PrometheusProvider(prom.url), args.refresh_seconds))
    ctx = make_ctx(base / "scale", models, provider)
    t0 = time.time()
    releases = create_canaries(ctx, models, canary_policy())
    created_s = time.time() - t0
    exporter.serve(releases)
    wait_series(prom, releases)
    driver = Driver(ctx, args.tick_seconds, args.workers, profile=args.profile)
    provider.inner.on_new_errors(driver.workers.hurry)     # as relctl serve wires it
    started = time.time()
    # Steady state: every release judged twice (baseline taken, thresholds computed and cached).
    while min((provider.reads.get(r.id, 0) for r in releases), default=0) < 2:
        if time.time() - started > args.warmup_timeout:
            raise RuntimeError(f"not every release was judged twice within {args.warmup_timeout:.0f} s")
        time.sleep(0.2)
    warmup = time.time() - started
    reads0, rec0, ticks0, refresh0, m0 = dict(provider.reads), driver.reconciles, driver.ticks, \
        provider.inner.refreshes, time.time()
    cpu0 = time.process_time()
    time.sleep(args.measure_seconds)
    elapsed, cpu = time.time() - m0, time.process_time() - cpu0
    rates = [(provider.reads.get(r.id, 0) - reads0.get(r.id, 0)) / elapsed for r in releases]
    reconciles = (driver.reconciles - rec0) / elapsed
    ticks, refreshes = (driver.ticks - ticks0) / elapsed, (provider.inner.refreshes - refresh0) / elapsed
    faulty = releases[:: max(1, len(releases) // args.breaches)][: args.breaches]
    timed = breach_and_wait(ctx, prom, exporter, faulty, timeout=args.breach_timeout, provider=provider)
    seconds, fault, timing = timed["breach"], timed["fault"], timed["timing"]
    settle_deadline = time.time() + 15    # rolling_back ends on the tick after weight 0
    while time.time() < settle_deadline and ctx.store.count_by_phase().get("rolling_back"):
        time.sleep(0.2)
    driver.stop()
    driver.print_profile()
    phases = ctx.store.count_by_phase()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ctx.jobs.join(5)
    return {"judged_per_release_per_second": round(min(rates), 3),
            "judged_per_release_per_second_mean": round(statistics.fmean(rates), 3),
            "reconciles_per_second": round(reconciles, 1), "scheduler_ticks_per_second": round(ticks, 2),
            "snapshot_refreshes_per_second": round(refreshes, 2),
            # the controller process's CPU (all threads) while measured: cores busy, and per reconcile
            "controller_cpu_cores": round(cpu / elapsed, 2),
            "controller_cpu_ms_per_reconcile": round(1000 * cpu / max(1, driver.reconciles - rec0), 3),
            "breaches": len(faulty), "breaches_rolled_back": sum(s != float("inf") for s in seconds),
            "breach_to_zero_weight_p50_seconds": pct(seconds, 0.5),
            "breach_to_zero_weight_p99_seconds": pct(seconds, 0.99),
            "breach_to_zero_weight_max_seconds": pct(seconds, 1.0),
            # breaches timed from an earlier faulty sample because no judgment read it (or unmatched)
            "breach_timing": timing,
            # from the fault's first sample, which holds too little evidence yet (the next scrape's does)
            "fault_first_sample_to_zero_weight_p50_seconds": pct(fault, 0.5),
            "fault_first_sample_to_zero_weight_p99_seconds": pct(fault, 0.99),
            "phases_after": phases, "setup_seconds": round(created_s, 1),
            "all_judged_twice_after_seconds": round(warmup, 1),
            "peak_rss_mb": round(peak, 1)}


def slow_build(started: threading.Event):
    def _build(ctx, r, policy, jc):
        started.set()
        jc.progress(step="quantizing", detail="bench: a build that takes 120 s")
        jc.cancel.wait(120)
        jc.check()
        return {"version": "3", "report": {"quality": {}, "quantization": "awq"}}
    return _build


def rollback_run(base: Path, prom: PrometheusServer, exporter: Exporter, args, beside_slow_build: bool) -> float | None:
    """Median seconds from breach (the sample the judge rolls back on) to weight 0 of `--faulty`
    canaries, alone or beside a 120 s build."""
    name = "beside" if beside_slow_build else "alone"
    models = [f"faulty-{name}-{i}" for i in range(args.faulty)]
    provider = CountingProvider(BatchedProvider(PrometheusProvider(prom.url), args.refresh_seconds))
    ctx = make_ctx(base / name, models + ["quantized"], provider)
    started = threading.Event()
    builder = None
    if beside_slow_build:
        quantize_stage._build = slow_build(started)
        builder = ctx.store.create("quantized", "2", "1", load_policy("demo").model_dump(mode="json"), ctx.clock())
    t0 = time.time()
    releases = create_canaries(ctx, models, canary_policy())
    exporter.serve(releases)
    wait_series(prom, releases)
    driver = Driver(ctx, args.tick_seconds, args.workers)
    provider.inner.on_new_errors(driver.workers.hurry)
    if builder is not None and not started.wait(120):
        raise RuntimeError("the slow build never started")
    time.sleep(max(0.0, t0 + canary_policy().analysis.settle_seconds + 4.0 - time.time()))
    seconds = breach_and_wait(ctx, prom, exporter, releases, timeout=args.breach_timeout, provider=provider)["breach"]
    if builder is not None:
        assert ctx.store.get(builder.id).phase == Phase.QUANTIZING, "the slow build ended early"
        ctx.store.request_action(builder.id, UserAction.ABORT, ctx.clock())
        deadline = time.time() + 30
        while time.time() < deadline and ctx.store.get(builder.id).phase != Phase.ABORTED:
            time.sleep(0.2)
    driver.stop()
    ctx.jobs.join(10)
    return pct(seconds, 0.5)


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="relctl-scale-") as tmp:
        base = Path(tmp)
        prom = PrometheusServer(base / "prometheus", scrape_interval_seconds=args.scrape_seconds).start()
        exporter = Exporter(base, prom)
        try:
            started = time.time()
            scale = scale_run(base, prom, exporter, args)
            alone = rollback_run(base, prom, exporter, args, beside_slow_build=False)
            beside = rollback_run(base, prom, exporter, args, beside_slow_build=True)
            scrapes = prom.query('avg(avg_over_time(up{job="relctl"}[10m]))')
        finally:
            exporter.stop()
            prom.stop()
    return {"releases": args.releases, "judged_per_release_per_second": scale.pop("judged_per_release_per_second"),
            "breach_to_zero_weight_p99_seconds": scale.pop("breach_to_zero_weight_p99_seconds"),
            "rollback_seconds_alone": alone, "rollback_seconds_beside_slow_quantization": beside,
            "peak_rss_mb": scale.pop("peak_rss_mb"), **scale,
            "settings": {"tick_seconds": args.tick_seconds, "refresh_seconds": args.refresh_seconds,
                         "workers": args.workers, "measure_seconds": args.measure_seconds,
                         "scrape_interval_seconds": args.scrape_seconds,
                         "load_average_1m": round(os.getloadavg()[0], 2)},
            "scrapes_ok_fraction": round(float(scrapes[0]["value"][1]), 4) if scrapes else None,
            "wall_seconds": round(time.time() - started, 1)}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--releases", type=int, default=1000, help="active canaries (default 1000)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 50 releases, short measurements")
    ap.add_argument("--tick-seconds", type=float, default=0.5, help="the scheduler's reconcile interval")
    ap.add_argument("--refresh-seconds", type=float, default=0.5, help="the batched provider's snapshot age")
    ap.add_argument("--workers", type=int, default=8, help="reconcile worker threads")
    ap.add_argument("--scrape-seconds", type=float, default=1.0,
                    help="Prometheus's scrape interval (a breach shows up at the next scrape)")
    ap.add_argument("--measure-seconds", type=float, default=20.0)
    ap.add_argument("--breaches", type=int, default=100, help="canaries of the N that turn faulty")
    ap.add_argument("--faulty", type=int, default=20, help="canaries that turn faulty in the rollback runs")
    ap.add_argument("--breach-timeout", type=float, default=60.0)
    ap.add_argument("--warmup-timeout", type=float, default=240.0)
    ap.add_argument("--profile", action="store_true", help="cProfile the reconciles of the N canaries (stderr)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.releases, args.measure_seconds, args.breaches, args.faulty = 50, 5.0, 10, 3
        args.breach_timeout = min(args.breach_timeout, 30.0)
    args.breaches = max(1, min(args.breaches, args.releases))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    out = run(args)
    if args.json:
        print(json.dumps(out))
        return
    for key, value in out.items():
        print(f"{key:45s} {value}")


if __name__ == "__main__":
    main()
