"""The strategy object for a model's ``routing`` setting."""

from __future__ import annotations

from gateway._prefix_routing import PrefixAware
from gateway._routing import LeastOutstanding, RandomChoice, RoundRobin, RoutingStrategy
from gateway._routing_config import RoutingConfig


def make_strategy(cfg: RoutingConfig) -> RoutingStrategy:
    if cfg.strategy == "prefix":
        return PrefixAware(cfg)
    if cfg.strategy == "round_robin":
        return RoundRobin()
    if cfg.strategy == "random":
        return RandomChoice()
    return LeastOutstanding()
