"""Model rollouts: the online A/B reading of an alias's variants, and promotion that needs the
offline gate's pass and holds each step on the gateway's online guard.

Talks to the gateway only over its admin API and reads its variant records from file; see
docs/variants.md. ``rollout/cli.py`` gives ``llmops ab report`` and ``llmops promote``.
"""

from rollout._ab_report import ABReport, Margins, ab_report
from rollout._admin_client import AdminError, VariantAdmin
from rollout._promote import PromotionError, check_gate, promote, step_weights
from rollout._records import VariantSample, read_records, samples_by_variant

__all__ = [
    "ABReport",
    "AdminError",
    "Margins",
    "PromotionError",
    "VariantAdmin",
    "VariantSample",
    "ab_report",
    "check_gate",
    "promote",
    "read_records",
    "samples_by_variant",
    "step_weights",
]
