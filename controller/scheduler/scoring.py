"""Score a suite against the live version THROUGH THE GATEWAY, as evaluation traffic.

One prompt per request (what users send), `parallel` requests in flight, greedy answers.
Each answer is checked by its suite item (accuracy) and by the policy's output validators, the
same ones the gateway runs on user answers (compliance). An answer the gateway failed counts
as wrong and non-compliant: that is what a user would have got. Two cases are not figures of
the version and record none: a gateway with no route for the model yet (the run is skipped),
and a suite where every request failed (the server is down: the run fails, so an outage is
neither a baseline nor "drift").
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx

from controller.gateway.evaluation import EVALUATION, TRAFFIC_HEADER, VERSION_HEADER
from controller.reconcile.jobs import Cancelled
from controller.scheduler.drift import SuiteFigures
from policies.validators import Validator, first_failure
from quantize.suites import Suite, SuiteItem


class ChampionChanged(Cancelled):
    """The version under evaluation is no longer the live champion: the run is void."""


class GatewayUnavailable(RuntimeError):
    pass


class NotServed(RuntimeError):
    """The gateway has no route for the model (yet): nothing to evaluate."""


class GatewayScorer:
    def __init__(self, gateway_url: str, model: str, version: str, *, parallel: int = 4, timeout_s: float = 120.0,
                 transport: httpx.BaseTransport | None = None):
        self.url, self.model, self.version, self.parallel = gateway_url.rstrip("/"), model, version, parallel
        self._http = httpx.Client(timeout=timeout_s, transport=transport,
                                  headers={TRAFFIC_HEADER: EVALUATION, VERSION_HEADER: version})

    def close(self) -> None:
        self._http.close()

    def answer(self, item: SuiteItem) -> str | int:
        """The answer's text, or the HTTP status of the gateway's error answer."""
        body = {"model": self.model, "prompt": item.prompt, "max_tokens": item.max_tokens, "temperature": 0.0}
        try:
            resp = self._http.post(f"{self.url}/v1/completions", json=body)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"gateway {self.url} unreachable: {exc}") from exc
        if resp.status_code == 409:
            raise ChampionChanged(f"the gateway no longer serves {self.model} version {self.version}: "
                                  f"{resp.text[:200]}")
        if resp.status_code == 404 and _error_type(resp) == "model_not_found":
            raise NotServed(f"the gateway does not serve {self.model} yet (its route is not applied)")
        if resp.status_code != 200:
            return resp.status_code
        choices = resp.json().get("choices") or [{}]
        return str(choices[0].get("text") or "")

    def score(self, suite: Suite, validators: tuple[Validator, ...],
              between_chunks: Callable[[], None] = lambda: None) -> SuiteFigures:
        """Figures of one suite; `between_chunks` runs before each chunk (cancel checks, lock renewal)."""
        items, chunk = list(suite.items), self.parallel * 8
        right = compliant = 0
        failed: Counter[int] = Counter()            # HTTP status of each failed answer
        with ThreadPoolExecutor(self.parallel) as pool:
            for start in range(0, len(items), chunk):
                between_chunks()
                part = items[start:start + chunk]
                for item, out in zip(part, pool.map(self.answer, part)):
                    if isinstance(out, int):
                        failed[out] += 1
                        continue
                    right += bool(item.check(out))
                    compliant += bool(out.strip()) and first_failure(validators, out) is None
        n, errors = len(items), sum(failed.values())
        if n and errors == n:
            statuses = ", ".join(f"HTTP {status} x{count}" for status, count in failed.most_common())
            raise GatewayUnavailable(f"every one of the {n} requests of {suite.name} failed ({statuses}): "
                                     f"{self.model} version {self.version} is not answering; no figures recorded")
        return SuiteFigures(items=n, accuracy=right / n, compliance=compliant / n, errors=errors)


def _error_type(resp: httpx.Response) -> str | None:
    try:
        return resp.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None
