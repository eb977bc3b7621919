"""The gateway's series for many releases at once, served on 127.0.0.1 for a real Prometheus to scrape.

Used by bench/controller_scale.py (in its own process, as the real gateway would be). Each
release's counters are a function of time: `rate` requests/s split `share` to the candidate,
`base_error` of each track failing as http_5xx; from a release's `breach` time on, its
candidate also fails `breach_error` of its requests as timeouts (a separate class, so the
bench can see in Prometheus when the breach appeared). The names and labels are the
gateway's (controller/gateway/metrics.py: relctl_requests_total, relctl_errors_total with
model, version, track, release, mode). A JSON control file, re-read when it changes, lists
the releases:

    {"rate": 50, "share": 0.2, "base_error": 0.01, "breach_error": 0.5,
     "releases": [{"model": "m0", "release": "rel-…", "stable": "1", "candidate": "2",
                   "start": <unix seconds>, "breach": <unix seconds or null>}, …]}

    python bench/scale_exporter.py --port P --control FILE
"""
from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric

LABELS = ["model", "version", "track", "release", "mode"]


class ReleaseSeries:
    """Collector: every release's request and error counters at the moment of the scrape."""

    def __init__(self, control: Path) -> None:
        self.control = control
        self._mtime = 0.0
        self._spec: dict = {"releases": []}
        self._lock = threading.Lock()

    def _load(self) -> dict:
        with self._lock:
            try:
                mtime = os.stat(self.control).st_mtime
            except FileNotFoundError:
                return self._spec
            if mtime != self._mtime:
                self._spec, self._mtime = json.loads(self.control.read_text()), mtime
            return self._spec

    def collect(self) -> Iterator[Metric]:
        spec, now = self._load(), time.time()
        requests = CounterMetricFamily("relctl_requests", "Requests answered per track", labels=LABELS)
        errors = CounterMetricFamily("relctl_errors", "Failed requests per track and error class",
                                     labels=LABELS + ["error_class"])
        for r in spec["releases"]:
            up = max(now - r["start"], 0.0)
            for track, version, frac in (("stable", r["stable"], 1 - spec["share"]),
                                         ("candidate", r["candidate"], spec["share"])):
                labels = [r["model"], version, track, r["release"], "live"]
                n = math.floor(spec["rate"] * frac * up)
                requests.add_metric(labels, n)
                errors.add_metric(labels + ["http_5xx"], math.floor(n * spec["base_error"]))
                if track == "candidate" and r.get("breach") is not None:
                    bad = math.floor(spec["rate"] * frac * spec["breach_error"] * max(now - r["breach"], 0.0))
                    errors.add_metric(labels + ["timeout"], bad)
        yield requests
        yield errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control", type=Path, required=True)
    args = ap.parse_args()
    registry = CollectorRegistry()
    registry.register(ReleaseSeries(args.control))
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    threading.Event().wait()


if __name__ == "__main__":
    main()
