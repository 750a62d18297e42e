"""``llmops ab report`` and ``llmops promote``."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from common import cli_console, typer_settings, variant_events_file

ab_app = typer.Typer(help="Online A/B tests of model variants.", no_args_is_help=True,
                     **typer_settings())  # fmt: skip

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")


def seconds(text: str) -> float:
    """'90s', '10m', '1h', '7d' or a bare number of seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r}: expected e.g. 30s, 10m, 1h, 7d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _baseline_from_config(path: Path, alias: str) -> str | None:
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    for m in (doc or {}).get("models") or ():
        if isinstance(m, dict) and (m.get("name") == alias or alias in (m.get("aliases") or ())):
            variants = m.get("variants") or []
            return m.get("baseline") or (variants[0].get("model") if variants else None)
    return None


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.1%}" if pct else f"{x:.4g}"


@ab_app.command("report")
def report(
    model: Annotated[str, typer.Option("--model", help="the alias whose variants to compare")],
    since: Annotated[str, typer.Option(help="window: 30m, 1h, 7d")] = "1h",
    baseline: Annotated[str | None, typer.Option(help="default: the config's baseline")] = None,
    config: Annotated[Path, typer.Option(help="gateway config (for the baseline)")] = Path(
        "config/gateway.yaml"
    ),
    events: Annotated[
        list[Path] | None,
        typer.Option(help="variant record files (repeat for several gateways); default: home"),
    ] = None,
    error_margin: Annotated[float, typer.Option(help="allowed error-rate excess")] = 0.05,
    latency_ratio: Annotated[float, typer.Option(help="allowed latency ratio")] = 1.5,
    feedback_margin: Annotated[float, typer.Option(help="allowed feedback drop")] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per variant: requests, errors, latency, TTFT, tokens, feedback; differences from the
    baseline with 95% intervals, requests needed, and keep / promote / roll back."""
    from rich.table import Table

    from rollout._ab_report import Margins, ab_report
    from rollout._records import read_records, samples_by_variant

    window = seconds(since)
    records = read_records(events or [variant_events_file()], time.time() - window)
    samples = samples_by_variant(records, model)
    base = baseline or _baseline_from_config(config, model)
    if base is None:
        typer.echo(f"error: no baseline for {model!r}: pass --baseline or --config", err=True)
        raise typer.Exit(2)
    if not samples:
        typer.echo(f"error: no requests of {model!r} in the last {since}", err=True)
        raise typer.Exit(1)
    rep = ab_report(model, base, samples, Margins(error_margin, latency_ratio, feedback_margin))
    if as_json:
        typer.echo(json.dumps(rep.as_dict(), indent=2))
        return
    console = cli_console()
    t = Table(title=f"{model}: variants over the last {since} (baseline {base})")
    for col in ("variant", "requests", "errors", "p50 s", "p95 s", "TTFT p50", "TTFT p95",
                "tokens/req"):  # fmt: skip
        t.add_column(col)
    for v in rep.variants:
        t.add_row(v.variant, str(v.requests), f"{v.error_rate:.1%}", _fmt(v.latency_p50_s),
                  _fmt(v.latency_p95_s), _fmt(v.ttft_p50_s), _fmt(v.ttft_p95_s),
                  _fmt(v.tokens_per_request))  # fmt: skip
    console.print(t)
    for c in rep.candidates:
        d = Table(title=f"{c.variant} - {base}")
        for col in ("metric", "baseline", "candidate", "delta", "95% interval", "margin",
                    "reading", "needed/variant"):  # fmt: skip
            d.add_column(col)
        for r in c.rows:
            interval = "-" if r.low is None else f"[{r.low:.4g}, {r.high:.4g}]"
            d.add_row(r.metric, _fmt(r.baseline), _fmt(r.candidate), _fmt(r.delta), interval,
                      _fmt(r.margin), r.reading, str(r.needed or "-"))  # fmt: skip
        console.print(d)
        console.print(f"[bold]{c.variant}: {c.recommendation}[/bold] ({c.why})")


def promote(
    model: Annotated[str, typer.Argument(help="the alias, e.g. chat")],
    to: Annotated[str, typer.Option("--to", help="the variant to promote")],
    steps: Annotated[str, typer.Option(help="percentages, in order")] = "5,25,50,100",
    hold: Annotated[str, typer.Option(help="hold per step: 30s, 10m, 1h")] = "10m",
    gateway: Annotated[str, typer.Option(help="gateway URL", envvar="LLMOPS_GATEWAY_URL")] = (
        "http://127.0.0.1:8000"
    ),
    admin_key: Annotated[
        str | None, typer.Option(help="admin key", envvar="LLMOPS_ADMIN_KEY", show_default=False)
    ] = None,
    gate_record: Annotated[
        Path | None, typer.Option(help="a model-gate.json (e.g. from CI); default: the home's")
    ] = None,
    poll: Annotated[str, typer.Option(help="how often to read the guard")] = "5s",
) -> None:
    """Move a variant's weight step by step; each step holds until the gateway's guard reads
    it as fine. Needs a passed `llmops eval compare --base-model BASE --head-model TO`."""
    from rollout._admin_client import AdminError, VariantAdmin
    from rollout._promote import PromotionError
    from rollout._promote import promote as run_promotion

    key = admin_key or os.environ.get("LLMOPS_ADMIN_KEY")
    if not key:
        typer.echo("error: the admin key is needed: --admin-key or LLMOPS_ADMIN_KEY", err=True)
        raise typer.Exit(2)
    try:
        pcts = [float(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        typer.echo(f"error: --steps {steps!r}: expected numbers like 5,25,50,100", err=True)
        raise typer.Exit(2) from None
    admin = VariantAdmin(gateway, key)
    try:
        run_promotion(admin, model, to, pcts, seconds(hold), gate_record=gate_record,
                      poll_s=seconds(poll), say=typer.echo)  # fmt: skip
    except (PromotionError, AdminError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        admin.close()
