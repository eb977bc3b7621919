"""The release store. Importing it registers the event hash chain (controller/store/chain.py),
so every session that writes EventRow chains its events."""
from controller.store import chain  # noqa: F401  (registers the before_flush listener)
