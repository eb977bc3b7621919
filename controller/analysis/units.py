"""The randomisation unit: requests, or sessions when the gateway pins users to a track.

With sticky sessions the split assigns users, not requests, so requests are not
independent draws: one heavy user's volume swings the observed request share (sample-ratio
false alarms), and one user whose requests always fail (on any version) floods whichever
track it landed on with errors. Counting units fixes both: each session the gateway saw on
a track in this step counts once (relctl_sessions), and a failed session once however
many of its requests failed (relctl_sessions_failed). Under "no regression" each session
lands on the candidate with probability ρ independently of how it behaves, so "which
track did this failed session come from" is the same coin as for requests, and the same
count tests apply; the sample-ratio check counts sessions.
"""
from __future__ import annotations

from controller.analysis.types import TrackCounts, Window


def by_unit(windows: list[Window], unit: str) -> list[Window]:
    """Windows whose requests and errors count the randomised unit."""
    if unit == "request":
        return windows
    if unit == "session":
        return [Window(w.canary_share, w.elapsed_seconds, _sessions(w.stable), _sessions(w.candidate), w.shadow)
                for w in windows]
    raise ValueError(f"unknown analysis unit {unit!r}; known: request, session")


def _sessions(t: TrackCounts) -> TrackCounts:
    return TrackCounts(requests=t.sessions, errors=min(t.sessions_failed, t.sessions),
                       sessions=t.sessions, sessions_failed=t.sessions_failed)
