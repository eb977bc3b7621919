"""One log line, not a traceback, for requests that are not valid HTTP.

aiohttp answers a malformed request line or header with 400 by itself, but logs each one
as an ERROR with a full traceback: noise that anyone can make the gateway write at will.
This filter turns such records into a single WARNING (or keeps them lower) that names the
client and the first line of the parser's reason, never the raw bytes sent.
"""
from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

AIOHTTP_SERVER_LOGGER = "aiohttp.server"


class MalformedRequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = (exc.message or type(exc).__name__).splitlines()[0].rstrip(": ")
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "malformed HTTP request from %s refused (400): %s", (remote, reason)
            record.levelno = min(record.levelno, logging.WARNING)
            record.levelname = logging.getLevelName(record.levelno)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def quiet_malformed_requests() -> None:
    """Install the filter once on aiohttp's server logger (idempotent)."""
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
