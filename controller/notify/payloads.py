"""What a subscriber receives (pure: an event and its release in, JSON-ready dicts out).

The generic body is stable JSON a program reads; the Slack body is what a Slack incoming
webhook accepts (`text` plus Block Kit `blocks`), with links to the release's page and the
API calls that promote or abort it (POST, so they are shown as commands, not as buttons).
"""
from __future__ import annotations

from typing import Any

SCHEMA = "relctl.notification/v1"
BAD_ENDINGS = {"rolled_back", "failed", "aborted", "rolling_back"}


def links(base_url: str, release_id: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {"page": f"{base}/releases/{release_id}/page",
            "release": f"{base}/api/v1/releases/{release_id}",
            "promote": f"{base}/api/v1/releases/{release_id}/promote",
            "abort": f"{base}/api/v1/releases/{release_id}/abort"}


def webhook_body(event: dict[str, Any], release: dict[str, Any], base_url: str) -> dict[str, Any]:
    """`event`: the event row's fields (id, seq, at, kind, from_phase, to_phase, reason, data);
    `release`: id, model, candidate_version, stable_version."""
    data = event.get("data") or {}
    return {"schema": SCHEMA, "event": {k: event.get(k) for k in
                                        ("id", "seq", "at", "kind", "from_phase", "to_phase", "reason")},
            "release": release, "step": data.get("step"), "verdict": data.get("verdict"),
            "data": data, "links": links(base_url, release["id"])}


def headline(event: dict[str, Any], release: dict[str, Any]) -> str:
    who = f"{release['model']} v{release['candidate_version']} ({release['id']})"
    kind, to = event.get("kind"), event.get("to_phase")
    if kind == "created":
        return f"Release started: {who}"
    if kind == "transition" and to:
        step = (event.get("data") or {}).get("step")
        where = f"{to} step {step}" if to == "canary" and step is not None else to
        return f"{who}: {event.get('from_phase') or '?'} → {where}"
    return f"{who}: {kind}"


def verdict_line(verdict: dict | None) -> str:
    """The judge's decision and its largest e-value against the threshold, if a verdict is given."""
    if not verdict:
        return ""
    evidence = verdict.get("evidence") or {}
    tests = dict(evidence.get("metrics") or {})
    if isinstance(evidence.get("test"), dict):
        tests["shadow"] = evidence["test"]
    scored = [(n, t) for n, t in tests.items() if isinstance(t, dict) and "e_value" in t and "threshold" in t]
    if not scored:
        return f"verdict {verdict.get('decision', '?')}"
    name, top = max(scored, key=lambda nt: float(nt[1]["e_value"]) / float(nt[1]["threshold"] or 1))
    return (f"verdict {verdict.get('decision', '?')}: {name} e-value {float(top['e_value']):.3g} "
            f"vs threshold {float(top['threshold']):.3g}")


def slack_body(event: dict[str, Any], release: dict[str, Any], base_url: str) -> dict[str, Any]:
    title = headline(event, release)
    bad = event.get("to_phase") in BAD_ENDINGS
    link = links(base_url, release["id"])
    lines = [f"{':red_circle:' if bad else ':large_blue_circle:'} *{title}*"]
    if event.get("reason"):
        lines.append(str(event["reason"]))
    verdict = verdict_line((event.get("data") or {}).get("verdict"))
    if verdict:
        lines.append(verdict)
    actions = (f"<{link['page']}|Release page> · promote: `POST {link['promote']}` · "
               f"abort: `POST {link['abort']}`")
    return {"text": title,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": actions}]}]}


def body_for(fmt: str, event: dict[str, Any], release: dict[str, Any], base_url: str) -> dict[str, Any]:
    return slack_body(event, release, base_url) if fmt == "slack" else webhook_body(event, release, base_url)
