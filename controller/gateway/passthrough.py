"""Which upstream response headers the gateway passes on to the user.

An error passed through keeps its end-to-end headers: `Retry-After` on a 429 or 503 is
what lets a client (the official `openai` one included) back off. Hop-by-hop headers
(RFC 9110 section 7.6.1, and any named in `Connection`) belong to the upstream connection and
are dropped, as are those the gateway writes itself (length, date, server).
"""
from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
GATEWAY_OWN = frozenset({"content-length", "date", "server"})


def end_to_end_headers(headers: CIMultiDictProxy | CIMultiDict) -> CIMultiDict:
    named = {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",")}
    out: CIMultiDict = CIMultiDict()
    for name, value in headers.items():
        low = name.lower()
        if low not in HOP_BY_HOP and low not in GATEWAY_OWN and low not in named:
            out.add(name, value)
    out.setdefault("Content-Type", "application/json")
    return out
