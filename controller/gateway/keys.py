"""Typed keys for what the gateway keeps on its aiohttp Application."""
from __future__ import annotations

from aiohttp import ClientSession, web

STATE = web.AppKey("state", object)        # GatewayState (object: avoids an import cycle)
SHADOW = web.AppKey("shadow", object)      # ShadowMirror
SESSION = web.AppKey("session", ClientSession)
