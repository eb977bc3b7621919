"""The line the gateway prints once its socket listens, and how whoever started it reads the port
from it (with `--port 0` the gateway picks the port itself)."""
from __future__ import annotations

import re

_ANNOUNCED = re.compile(r"relctl gateway ready on http://[^\s:]+:(\d+)")


def ready_line(host: str, port: int) -> str:
    return f"relctl gateway ready on http://{host}:{port}"


def announced_port(text: str) -> int | None:
    """The port named by the first ready line in `text`, or None if there is none yet."""
    found = _ANNOUNCED.search(text)
    return int(found.group(1)) if found else None
