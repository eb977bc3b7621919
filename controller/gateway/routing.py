"""Choosing a track for a request: weighted split with sticky sessions.

Each request gets a point in [0, 100): a hash of its session key when it has one, a
random draw otherwise. Tracks own consecutive slices of that range, candidate first, so
when the candidate's weight grows only stable sessions move to the candidate; a session
already on the candidate stays there (no flapping during a canary).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

# Candidate first: growing its slice only ever captures sessions from stable.
TRACK_ORDER = ("candidate", "stable")


@dataclass(frozen=True)
class Split:
    """Cumulative upper bounds per track, e.g. (("candidate", 5.0), ("stable", 100.0))."""
    bounds: tuple[tuple[str, float], ...]

    @classmethod
    def from_weights(cls, weights: dict[str, float]) -> "Split":
        ordered = sorted(weights, key=lambda t: TRACK_ORDER.index(t) if t in TRACK_ORDER else 99)
        acc, bounds = 0.0, []
        for track in ordered:
            if weights[track] <= 0:
                continue
            acc += weights[track]
            bounds.append((track, acc))
        if not bounds:
            raise ValueError("at least one track needs a weight above 0")
        return cls(tuple(bounds))

    def pick(self, point: float) -> str:
        for track, upper in self.bounds:
            if point < upper:
                return track
        return self.bounds[-1][0]       # rounding at the top edge


def session_point(key: str) -> float:
    """Stable map of a session key to [0, 100); the same key always lands in the same place."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def request_point(session_key: str | None, rng: random.Random | None = None) -> float:
    if session_key:
        return session_point(session_key)
    return (rng or random).random() * 100.0


def session_key(header_value: str | None, body: dict) -> str | None:
    """The header wins over the body's OpenAI `user` field."""
    if header_value:
        return header_value
    user = body.get("user")
    return user if isinstance(user, str) and user else None
