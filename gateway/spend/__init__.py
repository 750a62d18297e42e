"""Spend: what each request costs, from a token price or from the replica cost allocated to
the tokens it served; recorded by key, team, model, variant and prompt, and capped by money
budgets in the limits (see docs/spend.md).

The config models live beside the gateway's own (``gateway/_spend_config.py``).
"""

from gateway._spend_config import InfraCost, SpendConfig, TokenPrice
from gateway.spend._accounting import SpendAccounting
from gateway.spend._charge import Charge, Pricer
from gateway.spend._meter import ReplicaMeter
from gateway.spend._plugin import install as spend_plugin

__all__ = [
    "Charge",
    "InfraCost",
    "Pricer",
    "ReplicaMeter",
    "SpendAccounting",
    "SpendConfig",
    "TokenPrice",
    "spend_plugin",
]
