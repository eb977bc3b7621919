"""Talking to one OpenAI-compatible upstream: buffered calls and SSE streams.

Nothing here touches metrics or routing; it returns what happened so the caller can
count it. Streams are relayed line by line as they arrive, so the user sees each chunk
as soon as the upstream sends it.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web



class ClientGone(Exception):
    """The user closed the connection while their stream was being relayed."""


@dataclass
class StreamStats:
    """What a relayed stream carried, gathered while passing it through."""
    text_parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    gaps: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    digest: Any = field(default_factory=hashlib.sha256)
    _last_token_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def on_piece(self, piece: str, now: float) -> None:
        self.text_parts.append(piece)
        if self.first_token_at is None:
            self.first_token_at = now
        elif self._last_token_at is not None:
            self.gaps.append(now - self._last_token_at)
        self._last_token_at = now


def output_text(doc: Any) -> str | None:
    """Concatenated output of a chat or text completion response (None if it has no choices)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        return None
    parts = []
    for choice in doc["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if content is None:
            content = choice.get("text")
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)


def usage_tokens(doc: Any) -> tuple[int | None, int | None]:
    usage = doc.get("usage") if isinstance(doc, dict) else None
    if not isinstance(usage, dict):
        return None, None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else None,
            completion if isinstance(completion, int) else None)


def blank_output(doc: Any) -> Any:
    """The same response with every choice's output emptied (the `truncate` fault)."""
    for choice in doc.get("choices", []) if isinstance(doc, dict) else []:
        if isinstance(choice.get("message"), dict):
            choice["message"]["content"] = ""
        if isinstance(choice.get("delta"), dict):
            choice["delta"]["content"] = ""
        if "text" in choice:
            choice["text"] = ""
    return doc


def _parse_event(line: bytes) -> Any:
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return None
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


async def relay_stream(upstream, out: web.StreamResponse | None, truncate: bool,
                       stats: StreamStats) -> StreamStats:
    """Pass an SSE body through line by line (out=None: just consume it, for shadows)."""
    async for line in upstream.content:
        event = _parse_event(line)
        piece = output_text(event) if event is not None else None
        if event is not None:
            prompt, completion = usage_tokens(event)
            stats.prompt_tokens = prompt if prompt is not None else stats.prompt_tokens
            stats.completion_tokens = completion if completion is not None else stats.completion_tokens
        if truncate and event is not None:
            continue                  # the fault drops every data event; [DONE] still ends the stream
        if piece:
            stats.on_piece(piece, time.perf_counter())
        stats.digest.update(line)
        if out is not None:
            try:
                await out.write(line)
            except ConnectionResetError:
                raise ClientGone() from None
    return stats
