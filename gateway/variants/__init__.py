"""Model variants behind one alias: weighted, sticky canaries and A/B tests, an online guard
that rolls a bad variant back by itself, and the admin routes that promotion drives.

See docs/variants.md.
"""

from gateway.variants._choice import VariantGroup
from gateway.variants._events import EventLog
from gateway.variants._guard import GuardVerdict, judge
from gateway.variants._plugin import events_file, install, state_file
from gateway.variants._router import OVERRIDE_HEADER, VariantError, VariantRouter
from gateway.variants._window import SlidingWindow, Tally

__all__ = [
    "OVERRIDE_HEADER",
    "EventLog",
    "GuardVerdict",
    "SlidingWindow",
    "Tally",
    "VariantError",
    "VariantGroup",
    "VariantRouter",
    "events_file",
    "install",
    "judge",
    "state_file",
]
