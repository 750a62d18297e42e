"""Hostile input refused; secrets out of logs; CORS off by default; admin behind its own key."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest
import yaml

from gateway import hash_key
from tests.reliability.conftest import ADMIN, KEY_A, KEY_C, MSG, auth, config_dict, start_gateway
from tests.reliability.fakes import GatewayProcess, SlowUpstream

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_keys_prompts_and_outputs_stay_out_of_logs(
    upstream: SlowUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret_prompt = "my-secret-prompt-4242"
    gw = start_gateway(config_dict([upstream.url], limits={"default": {"requests_per_minute": 2}}))
    caplog.set_level(logging.DEBUG)
    try:
        body = {"model": "chat", "messages": [{"role": "user", "content": secret_prompt}]}
        for key in (KEY_C, KEY_C, KEY_C, "sk-wrong-key-777"):
            httpx.post(gw.url + "/v1/chat/completions", json=body, headers=auth(key))
        upstream.mode = "garbage"
        httpx.post(gw.url + "/v1/chat/completions", json=body, headers=auth(KEY_A))
        httpx.post(
            gw.url + "/v1/chat/completions",
            content=b"{" + secret_prompt.encode(),
            headers=auth(KEY_A),
        )
    finally:
        gw.stop()
    text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    for s in (KEY_C, "sk-wrong-key-777", secret_prompt, "echo:", hash_key(KEY_C)):
        assert s not in text


def test_oversized_body_and_headers_refused(upstream: SlowUpstream, tmp_path: Path) -> None:
    cfg = config_dict([upstream.url], server={"max_body_bytes": 4096, "max_header_bytes": 8192})
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 10_000}]}
        r = httpx.post(gw.url + "/v1/chat/completions", json=big, headers=auth(KEY_C))
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        # Chunked upload without Content-Length is counted as it arrives.
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            headers=auth(KEY_C),
            content=iter([b'{"model":"chat",', b" " * 8000, b"}"]),
        )
        assert r.status_code == 413
        # Headers: 1 MB of them is cut off at the limit with 431, before the app sees them.
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.settimeout(10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(64):
                s.sendall(b"a" * 16384)
        except OSError:
            pass  # the gateway closed the connection while we were still sending
        got = s.recv(200)
        s.close()
        assert got.startswith(b"HTTP/1.1 431")
        r = httpx.get(gw.url + "/healthz", headers={"x-ok": "a" * 4000})
        assert r.status_code == 200
        rss_mib = gw.rss_kib() / 1024
        assert rss_mib < 400
    finally:
        gw.terminate()


def test_cors_off_by_default_and_configurable(upstream: SlowUpstream) -> None:
    pre = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    gw = start_gateway(config_dict([upstream.url]))
    try:
        r = httpx.options(gw.url + "/v1/chat/completions", headers=pre)
        assert "access-control-allow-origin" not in r.headers
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={**auth(KEY_C), **pre},
            json={"model": "chat", "messages": MSG},
        )
        assert "access-control-allow-origin" not in r.headers
    finally:
        gw.stop()
    cfg = config_dict([upstream.url], server={"cors": {"allow_origins": ["https://app.example"]}})
    gw = start_gateway(cfg)
    try:
        ok = {**pre, "origin": "https://app.example"}
        r = httpx.options(gw.url + "/v1/chat/completions", headers=ok)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(gw.url + "/v1/chat/completions", headers=pre)
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"
    finally:
        gw.stop()


def test_admin_routes(upstream: SlowUpstream, tmp_path: Path) -> None:
    cfg = config_dict([upstream.url])
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        u = gw.url
        # Client keys never open admin routes; no key neither.
        assert httpx.get(u + "/admin/keys", headers=auth(KEY_A)).status_code == 401
        assert httpx.get(u + "/admin/keys").status_code == 401
        names = [
            k["name"] for k in httpx.get(u + "/admin/keys", headers=auth(ADMIN)).json()["data"]
        ]
        assert names == ["alice", "bob", "carol"]
        # The admin key is no client key.
        r = httpx.post(
            u + "/v1/chat/completions", headers=auth(ADMIN), json={"model": "chat", "messages": MSG}
        )
        assert r.status_code == 401
        # Add a key with limits: returned once, usable at once, limited.
        r = httpx.post(
            u + "/admin/keys",
            headers=auth(ADMIN),
            json={"name": "dave", "limits": {"requests_per_minute": 1}},
        )
        assert r.status_code == 201, r.text
        dave = r.json()["key"]
        chat = {"model": "chat", "messages": MSG}
        codes = [
            httpx.post(u + "/v1/chat/completions", headers=auth(dave), json=chat).status_code
            for _ in range(2)
        ]
        assert codes == [200, 429]
        assert (
            httpx.post(u + "/admin/keys", headers=auth(ADMIN), json={"name": "dave"}).status_code
            == 409
        )
        # Invalid input is a 400 in OpenAI's shape.
        r = httpx.post(u + "/admin/keys", headers=auth(ADMIN), json={"name": "../x"})
        assert r.status_code == 400 and "error" in r.json()
        # Revoke: the key stops working immediately.
        assert httpx.delete(u + "/admin/keys/carol", headers=auth(ADMIN)).status_code == 200
        assert (
            httpx.post(u + "/v1/chat/completions", headers=auth(KEY_C), json=chat).status_code
            == 401
        )
        # Reload: a new key and new limits from the edited file, without a restart.
        cfg["auth"]["keys"].append({"name": "erin", "sha256": hash_key("sk-erin")})
        cfg["limits"] = {"default": {"requests_per_minute": 1}}
        gw.config_path.write_text(yaml.safe_dump(cfg))
        r = httpx.post(u + "/admin/reload", headers=auth(ADMIN))
        assert r.status_code == 200, r.text
        codes = [
            httpx.post(u + "/v1/chat/completions", headers=auth("sk-erin"), json=chat).status_code
            for _ in range(2)
        ]
        assert codes == [200, 429]
        assert (
            httpx.post(u + "/v1/chat/completions", headers=auth(KEY_C), json=chat).status_code
            == 401
        )
        assert httpx.post(
            u + "/v1/chat/completions", headers=auth(dave), json=chat
        ).status_code in (200, 429)
        # A broken file is refused and the running config stays.
        gw.config_path.write_text("models: [{name: x}]\n")
        r = httpx.post(u + "/admin/reload", headers=auth(ADMIN))
        assert r.status_code == 400 and "sk-" not in r.text
        assert (
            httpx.post(u + "/v1/chat/completions", headers=auth(KEY_A), json=chat).status_code
            == 200
        )
        assert "sk-erin" not in gw.log() and dave not in gw.log()
    finally:
        gw.terminate()


def test_admin_off_without_admin_digest(upstream: SlowUpstream) -> None:
    cfg = config_dict([upstream.url])
    del cfg["auth"]["admin_sha256"]
    gw = start_gateway(cfg)
    try:
        assert httpx.get(gw.url + "/admin/keys", headers=auth(ADMIN)).status_code == 404
        assert httpx.post(gw.url + "/admin/reload", headers=auth(KEY_A)).status_code == 404
    finally:
        gw.stop()


def test_reload_applies_replicas_and_models(upstream: SlowUpstream) -> None:
    """``apply_config`` (behind /admin/reload): replicas and models change, counters stay."""
    from gateway import GatewayConfig

    other = SlowUpstream(name="other").start()
    cfg = config_dict([upstream.url], limits={"default": {"requests_per_minute": 3}})
    gw = start_gateway(cfg)
    try:
        chat = {"model": "chat", "messages": MSG}
        assert (
            httpx.post(gw.url + "/v1/chat/completions", headers=auth(KEY_C), json=chat).status_code
            == 200
        )
        old = gw.gw.state.pools["chat"].replicas[0]
        cfg["models"][0]["upstreams"].append({"url": other.url})
        cfg["models"].append({"name": "chat2", "upstreams": [{"url": other.url}]})
        changes = gw.gw.state.apply_config(GatewayConfig(**cfg))
        assert changes["added"] == [f"chat {other.url}", "chat2"] and not changes["removed"]
        replicas = gw.gw.state.pools["chat"].replicas
        assert replicas[0] is old and len(replicas) == 2
        r = httpx.post(
            gw.url + "/v1/chat/completions", headers=auth(KEY_C), json={**chat, "model": "chat2"}
        )
        assert r.status_code == 200 and "[other]" in r.text
        # The key's bucket kept its count across the reload: 3 per minute in all (2 used).
        codes = [
            httpx.post(gw.url + "/v1/chat/completions", headers=auth(KEY_C), json=chat).status_code
            for _ in range(2)
        ]
        assert codes == [200, 429]
    finally:
        gw.stop()
        other.stop()
