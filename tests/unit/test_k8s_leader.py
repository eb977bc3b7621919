"""Leader election on a Lease, two replicas against the HTTP-level API stand-in."""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from controller.k8s.api import KubeApi
from controller.k8s.leader import LeaderElector

LEASE = "/apis/coordination.k8s.io/v1/namespaces/relctl/leases/relctl-controller"


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def replicas(emu):
    clock = Clock()
    api = KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5)
    return clock, LeaderElector(api, "relctl", "a", clock=clock), LeaderElector(api, "relctl", "b", clock=clock)


def test_one_replica_leads_and_the_other_waits(emu, replicas):
    clock, a, b = replicas
    assert a.tick() is True and b.tick() is False
    assert [(c.method, c.status) for c in emu.calls[:2]] == [("GET", 404), ("POST", 201)]
    clock.now += 5
    assert a.tick() is True and b.tick() is False
    assert emu.get(LEASE)["spec"]["holderIdentity"] == "a"


def test_a_replica_that_stops_renewing_loses_within_the_renew_deadline_and_the_other_takes_over(emu, replicas):
    clock, a, b = replicas
    a.tick()
    emu.fail_next("GET", "/leases/", 503, "apiserver away")
    clock.now += 5
    assert a.tick() is True                      # renewal failed, still within the deadline
    clock.now += 6
    assert a.is_leader() is False                # 11 s since its last renewal: it stops acting
    assert b.tick() is False                     # the lease (15 s) has not expired yet
    clock.now += 5
    assert b.tick() is True
    lease = emu.get(LEASE)["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("b", 1)
    assert a.tick() is False and not a.is_leader()


def test_of_two_replicas_racing_for_an_expired_lease_only_one_wins(emu, replicas):
    clock, a, b = replicas
    a.tick()
    clock.now += 30                              # a is gone; its lease expired
    emu.fail_next("PUT", "/leases/", 409, "the object has been modified")   # b's claim loses the race
    assert b.tick() is False
    assert b.tick() is True


def test_release_hands_the_lease_over_at_once(emu, replicas):
    clock, a, b = replicas
    a.tick()
    a.release()
    assert not a.is_leader() and emu.get(LEASE)["spec"]["holderIdentity"] == ""
    assert b.tick() is True


def test_a_leader_whose_lease_another_holder_took_stops_at_its_next_tick(emu, replicas):
    clock, a, b = replicas
    a.tick()
    emu.edit(LEASE, lambda lease: lease["spec"].update(holderIdentity="c"))   # e.g. an operator's kubectl edit
    clock.now += 1
    assert a.tick() is False and not a.is_leader()          # well before its renew deadline
    assert emu.get(LEASE)["spec"]["holderIdentity"] == "c"   # it does not take the lease back
