"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

One replica reconciles, the others wait. `tick()` (every retry period, e.g. 2 s) claims or
renews the Lease with optimistic concurrency: create when absent, otherwise a PUT carrying
the resourceVersion just read, so of two replicas racing only one wins (the other gets a
409). A replica is leader only while its last successful renewal is younger than the renew
deadline: one cut off from the API server stops acting within that time, before the lease
expires for the others (renew_deadline < lease_seconds). A new leader continues any release
from the store.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from controller.k8s.api import KubeApi, KubeError

log = logging.getLogger(__name__)

MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"      # the Lease's MicroTime


class LeaderElector:
    def __init__(self, api: KubeApi, namespace: str, identity: str, *, name: str = "relctl-controller",
                 lease_seconds: int = 15, renew_deadline: float = 10.0,
                 clock: Callable[[], float] = time.time):
        if not 0 < renew_deadline < lease_seconds:
            raise ValueError("renew_deadline must be positive and shorter than lease_seconds")
        self._api, self._ns, self.identity, self._name = api, namespace, identity, name
        self._lease_seconds, self._renew_deadline, self._clock = lease_seconds, renew_deadline, clock
        self._renewed_at: float | None = None

    def is_leader(self) -> bool:
        return self._renewed_at is not None and self._clock() - self._renewed_at < self._renew_deadline

    def tick(self) -> bool:
        """Claim or renew the lease once; whether this replica leads now."""
        now = self._clock()
        try:
            won = self._try(now)
        except KubeError as exc:
            if not exc.retryable:
                raise
            log.warning("leader.renew_failed", extra={"identity": self.identity, "error": str(exc)})
            return self.is_leader()
        if won:
            self._renewed_at = now
        elif self._renewed_at is not None:
            log.warning("leader.lost", extra={"identity": self.identity})
            self._renewed_at = None
        return self.is_leader()

    def release(self) -> None:
        """On shutdown: hand the lease over at once instead of letting it expire."""
        lease = self._get()
        if lease is None or lease["spec"].get("holderIdentity") != self.identity:
            return
        lease["spec"].update(holderIdentity="", leaseDurationSeconds=1)
        try:
            self._api.replace(lease)
        except KubeError:
            pass                                   # it will expire on its own
        self._renewed_at = None

    def _try(self, now: float) -> bool:
        lease = self._get()
        if lease is None:
            try:
                self._api.create(self._lease({}, now, transitions=0))
            except KubeError as exc:
                if exc.status == 409:
                    return False                   # another replica created it first
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder not in ("", self.identity) and not _expired(spec, now):
            return False
        transitions = (spec.get("leaseTransitions") or 0) + (holder != self.identity)
        claimed = self._lease(lease["metadata"], now, transitions,
                              acquired=spec.get("acquireTime") if holder == self.identity else None)
        try:
            self._api.replace(claimed)
        except KubeError as exc:
            if exc.status == 409:
                return False                       # someone renewed or claimed it since we read it
            raise
        if holder != self.identity:
            log.info("leader.acquired", extra={"identity": self.identity, "previous": holder})
        return True

    def _get(self) -> dict | None:
        return self._api.get("coordination.k8s.io/v1", "Lease", self._ns, self._name)

    def _lease(self, meta: dict, now: float, transitions: int, acquired: str | None = None) -> dict:
        stamp = _micro(now)
        metadata = {"name": self._name, "namespace": self._ns}
        if meta.get("resourceVersion"):
            metadata["resourceVersion"] = meta["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self._lease_seconds,
                         "acquireTime": acquired or stamp, "renewTime": stamp, "leaseTransitions": transitions}}


def build_elector(settings, identity: str) -> LeaderElector | None:
    """The elector for `settings.kubernetes` (None when leader election is off); `identity` is
    unique per replica, e.g. the pod's name from the downward API (POD_NAME)."""
    from controller.k8s.api import api_client
    k = settings.kubernetes
    if not k.leader_election:
        return None
    api = KubeApi(api_client(k), timeout=k.request_timeout_seconds)
    return LeaderElector(api, k.namespace, identity, name=k.lease_name, lease_seconds=k.lease_seconds,
                         renew_deadline=k.renew_deadline_seconds)


def _micro(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime(MICRO)


def _expired(spec: dict, now: float) -> bool:
    renew = spec.get("renewTime")
    if not renew:
        return True
    renewed = dt.datetime.strptime(renew, MICRO).replace(tzinfo=dt.UTC).timestamp()
    return now > renewed + (spec.get("leaseDurationSeconds") or 0)
