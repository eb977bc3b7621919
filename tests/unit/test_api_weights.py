"""The release API answers with the split the stored phase asks for, read with the phase."""
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.domain.phases import Phase
from policies.schema import Policy

AUTH = {"Authorization": "Bearer v"}


def test_weights_follow_the_stored_phase_and_step(ctx):
    client = TestClient(create_app(ctx, {"v": "viewer"}))
    policy = Policy.model_validate({"name": "t"}).model_dump(mode="json")
    r = ctx.store.create("chat", "2", "1", policy, ctx.clock())
    get = lambda: client.get(f"/api/v1/releases/{r.id}", headers=AUTH).json()["weights"]  # noqa: E731
    assert get() is None                                           # pending: the release does not route yet
    for phase, step, expected in [
            (Phase.SHADOW, 0, {"stable": 100.0, "candidate": 0.0, "mirror_percent": 100.0}),
            (Phase.CANARY, 1, {"stable": 75.0, "candidate": 25.0, "mirror_percent": 0.0}),
            (Phase.PROMOTING, 2, {"stable": 0.0, "candidate": 100.0, "mirror_percent": 0.0}),
            (Phase.SUCCEEDED, 2, None)]:
        r = ctx.store.save(r, r.evolve(phase=phase, step_index=step), [], ctx.clock())
        assert get() == expected, phase
    listed = client.get("/api/v1/releases", headers=AUTH).json()
    assert listed[0]["weights"] is None and "weights" in listed[0]
