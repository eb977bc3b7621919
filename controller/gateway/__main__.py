"""`python -m controller.gateway --host 127.0.0.1 --port P [--admin-token-env VAR] [--db-url URL]`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from controller.gateway.ready import ready_line
from controller.gateway.server import build_app
from controller.logs import setup_logging
from controller.gateway.state import GatewayConfig, GatewayState

log = logging.getLogger("controller.gateway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m controller.gateway", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True,
                   help="port to listen on; 0 picks a free one, announced in the ready line")
    p.add_argument("--admin-token-env", default="RELCTL_GATEWAY_TOKEN",
                   help="name of the environment variable holding the admin bearer token")
    p.add_argument("--db-url", default=None, help="SQLAlchemy URL of the store for audit records")
    p.add_argument("--upstream-timeout", type=float, default=120.0)
    p.add_argument("--shadow-queue", type=int, default=1024)
    p.add_argument("--shadow-workers", type=int, default=32)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level.upper())
    token = os.environ.get(args.admin_token_env, "")
    if not token:
        print(f"error: environment variable {args.admin_token_env} (admin token) is not set",
              file=sys.stderr)
        return 2
    config = GatewayConfig(admin_token=token, db_url=args.db_url,
                           upstream_timeout_s=args.upstream_timeout,
                           shadow_queue_size=args.shadow_queue, shadow_workers=args.shadow_workers)
    try:
        import uvloop  # optional: noticeably faster event loop for a proxy
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        asyncio.run(serve(GatewayState(config), args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


async def serve(state: GatewayState, host: str, port: int) -> None:
    """Listen, announce readiness only once the socket is bound, stop cleanly on SIGTERM/SIGINT."""
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()          # e.g. the port is taken: close the upstream session first
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = runner.addresses[0][1]       # the bound port: differs from the argument when that was 0
    log.info("gateway ready", extra={"url": f"http://{host}:{port}"})
    print(ready_line(host, port), flush=True)
    try:
        await stop.wait()
    finally:
        log.info("gateway stopping")
        await runner.cleanup()

if __name__ == "__main__":
    sys.exit(main())
