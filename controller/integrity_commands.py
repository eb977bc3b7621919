"""`relctl audit verify` and `relctl verify`: the tamper checks, as CLI commands.

Kept apart from cli.py so they add one line there; errors print `relctl: error: …` and exit 1,
as every relctl command does.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone

EXIT_ERROR = 1
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def add_integrity_commands(sub) -> None:
    audit = sub.add_parser("audit", help="check the audit trail's hash chains (events and gateway records)")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="recompute every chain; report the first break of each")
    v.add_argument("--db-url", default=os.environ.get("RELCTL_DB_URL"),
                   help="the store (default: RELCTL_DB_URL, else the settings of --config)")
    v.add_argument("--config", help="settings YAML, as for `relctl serve`")
    v.add_argument("--since", type=_since, metavar="TIME",
                   help="only rows from this time: ISO 8601 (UTC if no offset) or an age such as 24h, 7d")
    v.set_defaults(func=_audit_verify)

    m = sub.add_parser("verify", help="download a registered version and check it against its SHA-256 manifest")
    m.add_argument("model")
    m.add_argument("version")
    m.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    m.set_defaults(func=_model_verify)


def _since(text: str) -> datetime:
    ago = _AGO.match(text.strip())
    if ago:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or an age like 24h: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _fail(message: str) -> int:
    print(f"relctl: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _audit_verify(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from controller.config import SettingsError, load_settings
    from controller.store.db import make_engine
    from controller.store.verify import verify_all

    try:
        url = args.db_url or load_settings(args.config).database_url()
        engine = make_engine(url)
        try:
            report = verify_all(engine, since=args.since)
        finally:
            engine.dispose()
    except (SettingsError, SQLAlchemyError) as exc:
        return _fail(f"cannot read the store: {str(exc).splitlines()[0][:300]}")
    print(json.dumps(report, indent=2))
    breaks = report["events"]["breaks"] + report["audit_records"]["breaks"]
    if breaks:
        b = min(breaks, key=lambda b: b["at"])
        return _fail(f"{len(breaks)} chain(s) broken; first: {b['table']} chain {b['chain']} "
                     f"at seq {b['seq']} (row {b['row_id']}, {b['at']}): {b['reason']}")
    return 0


def _model_verify(args) -> int:
    from controller.registry.mlflow_registry import MlflowRegistry
    from controller.registry.types import RegistryError

    try:
        result = MlflowRegistry(args.mlflow_uri).verify(args.model, args.version)
    except RegistryError as exc:
        return _fail(str(exc))
    print(json.dumps(result, indent=2))
    return 0
