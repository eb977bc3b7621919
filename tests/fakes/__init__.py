"""In-memory doubles of the backends (pool, router, registry, metric provider) for unit tests of
the reconcile loop, the stages and the registry handling. They keep what they were asked to do,
so a test asserts on effects; the real backends have their own integration tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controller.analysis.providers.base import HistogramReading
from controller.analysis.types import Measurement, ShadowCounts, TrackCounts
from controller.pools.base import Served
from controller.registry.events import poll_events
from controller.registry.types import RegistryError, VersionInfo
from controller.traffic.base import Fault, RouteSpec


class FakePool:
    name = "fake"
    fetches_checkpoints = False

    def __init__(self, ready_immediately: bool = True):
        self.servers: dict[tuple[str, str], Served] = {}
        self.starts: list[tuple[str, str]] = []
        self.stops: list[tuple[str, str]] = []
        self.ready_immediately = ready_immediately

    def can_serve(self, quantization):
        return True, "fake pool serves everything"

    def ensure(self, model, version, artifact_dir):
        current = self.servers.get((model, version))
        if current and current.state in ("starting", "ready"):
            return current
        self.starts.append((model, version))
        state = "ready" if self.ready_immediately else "starting"
        served = Served(model, version, f"http://fake/{model}/{version}", state)
        self.servers[(model, version)] = served
        return served

    def make_ready(self, model, version):
        s = self.servers[(model, version)]
        self.servers[(model, version)] = Served(s.model, s.version, s.url, "ready")

    def adopt(self, model, label, version):
        s = self.servers.pop((model, label), None)
        if s is None or s.state not in ("starting", "ready"):
            return False
        self.servers[(model, version)] = Served(model, version, s.url, s.state)
        return True

    def status(self, model, version):
        s = self.servers.get((model, version))
        return None if s is None or s.state == "stopped" else s

    def stop(self, model, version):
        if (model, version) in self.servers and self.servers[(model, version)].state != "stopped":
            self.stops.append((model, version))
            s = self.servers[(model, version)]
            self.servers[(model, version)] = Served(model, version, s.url, "stopped")

    def stop_all(self):
        for model, version in list(self.servers):
            self.stop(model, version)

    def live(self) -> set[str]:
        return {v for (_, v), s in self.servers.items() if s.state in ("starting", "ready")}


class FakeRouter:
    def __init__(self):
        self.routes: dict[str, RouteSpec] = {}
        self.applied: list[RouteSpec] = []
        self.faults: list[tuple[str, str, Fault]] = []

    def apply(self, spec):
        self.routes[spec.model] = spec
        self.applied.append(spec)

    def current(self, model):
        return self.routes.get(model)

    def remove(self, model):
        self.routes.pop(model, None)

    def set_fault(self, model, track, fault):
        self.faults.append((model, track, fault))

    def weight(self, model, track="candidate") -> float:
        route = self.routes.get(model)
        return route.weights.get(track, 0.0) if route else 0.0


class FakeRegistry:
    uri = "fake://registry"

    def __init__(self, workdir: Path, model: str = "chat", versions: int = 2, champion: str | None = "1"):
        self.workdir = workdir
        self.versions: dict[str, dict[str, dict[str, str]]] = {model: {str(v): {} for v in range(1, versions + 1)}}
        self.aliases: dict[tuple[str, str], str] = {}
        if champion:
            self.aliases[(model, "champion")] = champion
        self.calls: list[tuple] = []
        self.fail: Exception | None = None      # set to make every call raise (registry down)

    def _check(self, name, version=None):
        if self.fail is not None:
            raise self.fail
        if name not in self.versions:
            raise RegistryError(f"unknown model {name!r}")
        if version is not None and version not in self.versions[name]:
            raise RegistryError(f"model {name!r} has no version {version}")

    def add_version(self, name, tags=None) -> str:
        version = str(len(self.versions[name]) + 1)
        self.versions[name][version] = dict(tags or {})
        return version

    def register_checkpoint(self, name, checkpoint_dir, *, tags=None, description=""):
        self._check(name)
        self.calls.append(("register", name))
        return self.add_version(name, tags)

    def get_version(self, name, version):
        self._check(name, version)
        return VersionInfo(name, version, f"models:/{name}/{version}", tags=dict(self.versions[name][version]),
                           aliases=tuple(a for (m, a), v in self.aliases.items() if m == name and v == version))

    def list_versions(self, name):
        self._check(name)
        return [self.get_version(name, v) for v in self.versions[name]]

    def find_versions_by_tag(self, name, key, value):
        return [v for v in self.list_versions(name) if v.tags.get(key) == value]

    def download(self, name, version, dest_dir):
        self._check(name, version)
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        return Path(dest_dir)

    def poll(self, name, seen):
        return poll_events(name, self.list_versions(name), seen)

    def get_alias(self, name, alias):
        self._check(name)
        return self.aliases.get((name, alias))

    def set_alias(self, name, alias, version):
        self._check(name, version)
        self.calls.append(("set_alias", alias, version))
        self.aliases[(name, alias)] = version

    def delete_alias(self, name, alias):
        self._check(name)
        self.aliases.pop((name, alias), None)

    def set_tags(self, name, version, tags):
        self._check(name, version)
        self.versions[name][version].update(tags)

    def delete_tag(self, name, version, key):
        self._check(name, version)
        self.versions[name][version].pop(key, None)


@dataclass
class FakeProvider:
    """Cumulative counters per track, advanced by the test."""
    stable: TrackCounts = field(default_factory=TrackCounts)
    candidate: TrackCounts = field(default_factory=TrackCounts)
    reads: int = 0

    def read(self, model, release_id, thresholds):
        self.reads += 1
        return Measurement(self.stable, self.candidate, ShadowCounts())

    def stable_latency(self, model, release_id, kind):
        return HistogramReading(error="no latency in the fake provider")

    def add(self, track: str, requests: int, errors: int = 0) -> None:
        now = getattr(self, track)
        setattr(self, track, TrackCounts(requests=now.requests + requests, errors=now.errors + errors))
