"""``llmops spend report``: the gateway's spend ledger, grouped, as a table or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from common import cli_console, duration_s, error_of, server_root, typer_settings

app = typer.Typer(help="Spend: cost per key, team, model, variant and prompt.",
                  no_args_is_help=True, **typer_settings())  # fmt: skip

_BY = ("key", "team", "model", "variant", "prompt")


def fetch_report(gateway: str, admin_key: str, by: str, since: str) -> dict[str, Any]:
    """``GET /admin/spend``; a RuntimeError says why it failed."""
    base = server_root(gateway)
    try:
        r = httpx.get(base + "/admin/spend", params={"by": by, "since": since},
                      headers={"authorization": f"Bearer {admin_key}"}, timeout=30)  # fmt: skip
    except httpx.HTTPError as e:
        raise RuntimeError(f"cannot reach the gateway at {base}: {e}") from None
    if r.status_code >= 400:
        msg, _ = error_of(r, limit=200)
        raise RuntimeError(f"GET /admin/spend: {r.status_code}: {msg}")
    data: dict[str, Any] = r.json()
    return data


@app.command("report")
def report(
    by: Annotated[str, typer.Option(help="key, team, model, variant or prompt")] = "key",
    since: Annotated[str, typer.Option(help="window, to the hour: 24h, 7d, 30d")] = "7d",
    gateway: Annotated[str, typer.Option(help="gateway URL", envvar="LLMOPS_GATEWAY_URL")] = (
        "http://127.0.0.1:8000"
    ),
    admin_key: Annotated[
        str | None, typer.Option(help="admin key", envvar="LLMOPS_ADMIN_KEY", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Cost, requests and tokens per key, team, model, variant or prompt, from the gateway's
    ledger (Redis: every replica's). Idle replica time is its own line."""
    if by not in _BY:
        raise typer.BadParameter(f"--by must be one of {', '.join(_BY)}")
    try:
        duration_s(since)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if not admin_key:
        typer.echo("error: the gateway's admin key is needed: --admin-key or LLMOPS_ADMIN_KEY",
                   err=True)  # fmt: skip
        raise typer.Exit(2)
    try:
        rep = fetch_report(gateway, admin_key, by, since)
    except RuntimeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    from rich.table import Table

    total = rep["total_usd"] or 0.0
    t = Table(title=f"spend by {by}, last {since} ({rep['store']} ledger)")
    for col in (by, "USD", "share", "requests", "prompt tok", "completion tok", "USD/1k tok",
                "estimated"):  # fmt: skip
        t.add_column(col, justify="left" if col == by else "right")
    for row in rep["data"]:
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        per_1k = f"{row['usd'] / tokens * 1000:.5f}" if tokens else "-"
        share = f"{row['usd'] / total:.1%}" if total else "-"
        t.add_row(str(row[by]), f"{row['usd']:.4f}", share, str(row["requests"]),
                  str(row["prompt_tokens"]), str(row["completion_tokens"]), per_1k,
                  str(row["estimated"]))  # fmt: skip
    console = cli_console()
    console.print(t)
    console.print(f"total: ${total:.4f}")
