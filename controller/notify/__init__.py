"""Notifications: phase changes and verdicts delivered to subscribers from an outbox table.

settings.py  who is told, and how (a subscriber list in the controller's settings)
payloads.py  the generic JSON body and the Slack-compatible one (pure)
signing.py   HMAC headers in MLflow's webhook scheme, and their check on a receiver
outbox.py    the outbox table and the flush listener that fills it with each event
deliver.py   `Deliverer.deliver_due()`: claim, send, mark, back off; run by its own scheduler job
"""
from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from controller.notify.deliver import Deliverer
from controller.notify.outbox import install
from controller.notify.settings import NotificationSettings


def start_notifications(sessions: sessionmaker[Session], settings: NotificationSettings,
                        api_url: str) -> Deliverer:
    """Check the subscribers' secrets are set, fill the outbox from every event written through
    `sessions` from now on, and return the deliverer whose `deliver_due` a scheduler job runs.

    `api_url`: this API's address as subscribers reach it (links); `settings.public_url` wins."""
    settings.check_environment()
    install(sessions, settings, settings.public_url or api_url)
    return Deliverer(sessions, settings)
