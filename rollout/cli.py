"""``llmops ab report`` and ``llmops promote``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from common import cli_console, duration_s, typer_settings, variant_events_file

ab_app = typer.Typer(help="Online A/B tests of model variants.", no_args_is_help=True,
                     **typer_settings())  # fmt: skip


def seconds(text: str) -> float:
    """'90s', '10m', '1h', '7d' or a bare number of seconds."""
    try:
        return duration_s(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


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


def _means(means: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in means.items()) or "-"


def _online_scores(ids: list[str], start: float) -> dict[str, dict[str, float]] | None:
    """The monitor's judge scores of these requests, or None (said on stderr) when Langfuse
    cannot be read: the report stands without them."""
    from datetime import UTC, datetime

    try:
        from langfuse import Langfuse

        from rollout._online_scores import by_request, fetch_online_scores
    except ImportError:
        typer.echo("warning: online scores need the Langfuse SDK: pip install "
                   "'llmops[observability]'", err=True)  # fmt: skip
        return None
    try:
        scores = fetch_online_scores(Langfuse(), datetime.fromtimestamp(start, UTC))
    except Exception as e:  # the SDK raises its own ApiError, httpx's and pydantic's errors
        typer.echo(f"warning: online scores not read from Langfuse: {e}", err=True)
        return None
    return by_request(ids, scores)


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
    quality_margin: Annotated[
        float, typer.Option(help="allowed drop of an online judge score (0-1 scale)")
    ] = 0.05,
    langfuse: Annotated[
        bool | None,
        typer.Option(
            "--langfuse/--no-langfuse",
            help="join the monitor's online judge scores from Langfuse; default: when "
            "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per variant: requests, errors, latency, TTFT, tokens, feedback, online judge scores;
    differences from the baseline with 95% intervals, requests needed, and keep / promote /
    roll back."""
    from rich.table import Table

    from rollout._ab_report import Margins, ab_report
    from rollout._records import read_records, request_ids, samples_by_variant

    window = seconds(since)
    start = time.time() - window
    records = read_records(events or [variant_events_file()], start)
    if langfuse is None:
        langfuse = bool(os.environ.get("LANGFUSE_PUBLIC_KEY") and
                        os.environ.get("LANGFUSE_SECRET_KEY"))  # fmt: skip
    online = _online_scores(request_ids(records, model), start) if langfuse else None
    samples = samples_by_variant(records, model, online)
    base = baseline or _baseline_from_config(config, model)
    if base is None:
        typer.echo(f"error: no baseline for {model!r}: pass --baseline or --config", err=True)
        raise typer.Exit(2)
    if not samples:
        typer.echo(f"error: no requests of {model!r} in the last {since}", err=True)
        raise typer.Exit(1)
    margins = Margins(error_margin, latency_ratio, feedback_margin, quality_margin)
    rep = ab_report(model, base, samples, margins)
    if as_json:
        typer.echo(json.dumps(rep.as_dict(), indent=2))
        return
    console = cli_console()
    t = Table(title=f"{model}: variants over the last {since} (baseline {base})")
    for col in ("variant", "requests", "errors", "p50 s", "p95 s", "TTFT p50", "TTFT p95",
                "tokens/req", "USD/req", "feedback", "online (judged)"):  # fmt: skip
        t.add_column(col)
    for v in rep.variants:
        online_cell = _means(v.online) + (f" ({v.online_scored})" if v.online_scored else "")
        t.add_row(v.variant, str(v.requests), f"{v.error_rate:.1%}", _fmt(v.latency_p50_s),
                  _fmt(v.latency_p95_s), _fmt(v.ttft_p50_s), _fmt(v.ttft_p95_s),
                  _fmt(v.tokens_per_request), _fmt(v.cost_per_request_usd), _means(v.feedback),
                  online_cell)  # fmt: skip
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
