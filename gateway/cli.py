"""Gateway commands: ``llmops serve`` and ``llmops keys``."""

from __future__ import annotations

import gc
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from common import typer_settings

if TYPE_CHECKING:
    from gateway._config import GatewayConfig

keys_app = typer.Typer(
    help="Create and hash client API keys.", no_args_is_help=True, **typer_settings()
)


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Gateway YAML config.", exists=True)
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (overrides config).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Serve the gateway; models without upstreams get a local vLLM engine."""
    import uvicorn
    from pydantic import ValidationError

    from gateway._app import GatewayApp
    from gateway._config import load_config
    from gateway._plugins import default_plugins
    from gateway.limits._edge import bounded_httptools

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load_config(config)
    except (ValidationError, ValueError, OSError) as e:
        typer.echo(f"error: invalid config {config}: {e}", err=True)
        raise typer.Exit(2) from e
    if host is not None:
        cfg.server.host = host
    if port is not None:
        cfg.server.port = port
    gw = GatewayApp(cfg, default_plugins(cfg))
    gw.startup.append(freeze_startup_heap)  # last: after every plug-in has loaded its state
    gw.startup.append(lambda: typer.echo(ready_banner(cfg), err=True))
    uvicorn.run(
        gw.app,
        host=cfg.server.host,
        port=cfg.server.port,
        log_level=log_level.lower(),
        access_log=False,
        loop="uvloop",
        http=bounded_httptools(cfg.server.max_header_bytes),
        timeout_graceful_shutdown=30,
    )


def freeze_startup_heap() -> None:
    """Move what start-up loaded (modules, config, registries) out of the cycle collector's
    reach. It lives as long as the process, and every full collection rescanned all of it:
    60-80 ms pauses every few seconds under load, about 0.02 ms of CPU per request. The process
    owner decides this, not the app: tests build many apps in one process."""
    gc.collect()
    gc.freeze()


@keys_app.command("new")
def new_key(name: Annotated[str, typer.Argument(help="A name for the key.")] = "default") -> None:
    """Print a new random key and the config entry that stores its hash."""
    from gateway._config import hash_key

    key = "sk-llmops-" + secrets.token_urlsafe(32)
    typer.echo(f"key (give it to the client, it is not stored): {key}")
    typer.echo(f"config entry:\n  - name: {name}\n    sha256: {hash_key(key)}")


@keys_app.command("hash")
def hash_cmd(key: Annotated[str, typer.Argument(help="The key to hash.")]) -> None:
    """Print the SHA-256 digest of an existing key, for the config's auth.keys."""
    from gateway._config import hash_key

    typer.echo(hash_key(key))


def ready_banner(cfg: GatewayConfig) -> str:
    """What to paste next: printed once the engines are up and the gateway is listening."""
    host = "127.0.0.1" if cfg.server.host in ("0.0.0.0", "::") else cfg.server.host
    base = f"http://{host}:{cfg.server.port}"
    chat = next((m for m in cfg.models if m.kind == "chat"), None)
    model = (chat.aliases[0] if chat.aliases else chat.name) if chat else "MODEL"
    key = "$LLMOPS_API_KEY" if cfg.auth.enabled else "none"
    auth = ' -H "Authorization: Bearer $LLMOPS_API_KEY"' if cfg.auth.enabled else ""
    question = "What is the capital of France?"
    return (
        f"\nllmops gateway ready on {base} ({len(cfg.models)} model(s))\n\n"
        f"  curl {base}/v1/chat/completions -H 'content-type: application/json'{auth} \\\n"
        f'    -d \'{{"model": "{model}", "messages": '
        f'[{{"role": "user", "content": "{question}"}}]}}\'\n\n'
        f"  python -c 'from openai import OpenAI; "
        f'c = OpenAI(base_url="{base}/v1", api_key="{key}"); '
        f'print(c.chat.completions.create(model="{model}", messages=[{{"role": "user", '
        f'"content": "{question}"}}]).choices[0].message.content)\'\n'
    )
