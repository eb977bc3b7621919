"""What the API said when it refused a call: one reading for every client in relctl (CLI, report, evals)."""
from __future__ import annotations

import httpx


def error_detail(resp: httpx.Response) -> str:
    """The API's `detail` message, or the body as text when it is not the API's JSON error."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    return str(body.get("detail", resp.text)) if isinstance(body, dict) else resp.text
