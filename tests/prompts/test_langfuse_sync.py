"""``llmops prompts sync-langfuse`` and ``langfuse_prompt_versions`` against Langfuse's API shapes.

Langfuse itself cannot run here (it needs Postgres, ClickHouse, Redis and the network), so a stub
HTTP server on 127.0.0.1 stands in for it: it keeps prompt versions in memory and answers the
endpoints the installed SDK calls (``GET/POST /api/public/v2/prompts``,
``GET /api/public/v2/prompts/{name}``, ``PATCH /api/public/v2/prompts/{name}/versions/{version}``)
in the recorded shapes under ``fixtures/langfuse/``, with Langfuse's rules where the sync depends
on them: basic auth, versions numbered 1, 2, ... per name, ``latest`` on the newest, a label on
one version at a time (moved, never removed, by a PATCH, which adds labels), the label format,
one prompt type per name, and the list's ``filter``. The SDK's own client (``LangfuseAPI`` and
``langfuse.Langfuse``) parses every answer with its pydantic models, so a wrong shape fails.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from typer.testing import CliRunner

from prompts import (
    LangfuseSettings,
    LangfuseUnavailable,
    PromptRegistry,
    langfuse_prompt_versions,
    sync_to_langfuse,
)
from prompts.cli import app

from .conftest import Repo

FIXTURES = Path(__file__).parent / "fixtures" / "langfuse"
ROOT = Path(__file__).resolve().parents[2]
PK, SK = "pk-lf-sync-test", "sk-lf-sync-test"  # a key of its own: the SDK keeps one client per key
_LABEL = re.compile(r"^[a-z0-9_.-]{1,36}$")
runner = CliRunner()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _filled(template: Any, **values: Any) -> dict[str, Any]:
    """A recorded body with its values replaced; only keys the recording has may be set."""
    body = copy.deepcopy(template)
    unknown = set(values) - set(body)
    assert not unknown, f"not in the recorded shape: {unknown}"
    body.update(values)
    return dict(body)


# the stub ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class LangfuseStub:
    """Langfuse's prompt endpoints over an in-memory store."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.auth = "Basic " + base64.b64encode(f"{PK}:{SK}".encode()).decode()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                with stub.lock:
                    stub.seen.append(Seen(method, parts.path, query, body))
                    if self.headers.get("Authorization") != stub.auth:
                        status, payload = 401, {"message": "Invalid credentials"}
                    else:
                        segs = [unquote(s) for s in parts.path.split("/") if s]
                        status, payload = stub.handle(method, segs, query, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # helpers for tests

    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.method in ("POST", "PATCH")]

    def version(self, name: str, number: int) -> dict[str, Any]:
        return next(r for r in self.rows[name] if r["version"] == number)

    # Langfuse's behaviour

    def handle(self, method: str, segs: list[str], q: dict[str, str], body: Any) -> tuple[int, Any]:
        if segs[:4] != ["api", "public", "v2", "prompts"]:
            return 404, {"message": "not found"}
        rest = segs[4:]
        if method == "GET" and not rest:
            return self._list(q)
        if method == "POST" and not rest:
            return self._create(body)
        if method == "GET" and len(rest) == 1:
            return self._get(rest[0], q)
        if method == "PATCH" and len(rest) == 3 and rest[1] == "versions":
            return self._patch(rest[0], int(rest[2]), body)
        return 405, {"message": "method not allowed"}

    def _now(self) -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _take_labels(self, name: str, labels: list[str], keep: dict[str, Any] | None) -> None:
        """Labels are unique per prompt: setting one on a version takes it off the others."""
        for row in self.rows.get(name, []):
            if row is not keep:
                row["labels"] = [x for x in row["labels"] if x not in labels]

    def _bad(self, why: str) -> tuple[int, Any]:
        return 400, _filled(fixture("error_400.json"), error=why)

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        name, kind = body["name"], body.get("type", "text")
        labels = list(body.get("labels") or [])
        if any(not _LABEL.match(x) for x in labels):
            return self._bad("Label must be lowercase alphanumeric")
        if kind == "chat" and not all({"role", "content"} <= m.keys() for m in body["prompt"]):
            return self._bad("chat messages need role and content")
        previous = self.rows.get(name, [])
        if previous and previous[-1]["type"] != kind:
            return self._bad("Previous versions have different prompt type.")
        final = list(dict.fromkeys([*labels, "latest"]))
        self._take_labels(name, final, None)
        now = self._now()
        row = _filled(
            fixture("post_prompts_201.json"),
            id=str(uuid.uuid4()),
            createdAt=now,
            updatedAt=now,
            name=name,
            version=len(previous) + 1,
            type=kind,
            prompt=body["prompt"],
            config=body.get("config") if body.get("config") is not None else {},
            tags=list(body.get("tags") or (previous[-1]["tags"] if previous else [])),
            labels=final,
            commitMessage=body.get("commitMessage"),
        )
        self.rows.setdefault(name, []).append(row)
        return 201, row

    def _get(self, name: str, q: dict[str, str]) -> tuple[int, Any]:
        rows = self.rows.get(name, [])
        if "version" in q:
            found = [r for r in rows if r["version"] == int(q["version"])]
            what = f"with version {q['version']}"
        else:
            label = q.get("label", "production")
            found = [r for r in rows if label in r["labels"]]
            what = f"with label '{label}'"
        if not found:
            return 404, _filled(
                fixture("get_prompt_404.json"), message=f"Prompt not found: '{name}' {what}"
            )
        return 200, _filled(fixture("get_prompt_200.json"), **found[0], resolutionGraph=None)

    def _patch(self, name: str, number: int, body: dict[str, Any]) -> tuple[int, Any]:
        new = list(body["newLabels"])
        if "latest" in new:
            return self._bad("Cannot set 'latest' label")
        if any(not _LABEL.match(x) for x in new):
            return self._bad("Label must be lowercase alphanumeric")
        row = next((r for r in self.rows.get(name, []) if r["version"] == number), None)
        if row is None:
            return 404, _filled(fixture("get_prompt_404.json"), message=f"Prompt not found: {name}")
        self._take_labels(name, new, row)
        row["labels"] = list(dict.fromkeys([*new, *row["labels"]]))  # added, never removed
        row["updatedAt"] = self._now()
        return 200, _filled(fixture("patch_prompt_version_200.json"), **row)

    def _list(self, q: dict[str, str]) -> tuple[int, Any]:
        page, limit = int(q.get("page", 1)), int(q.get("limit", 10))
        if limit > 100 or page < 1:
            return self._bad("limit must be at most 100")
        conditions = json.loads(q["filter"]) if "filter" in q else []
        name_eq = None if "filter" in q else q.get("name")  # filter takes precedence

        def keep(row: dict[str, Any]) -> bool:
            if name_eq is not None and row["name"] != name_eq:
                return False
            for c in conditions:
                if c["type"] == "stringOptions" and c["column"] == "name":
                    if row["name"] not in c["value"]:
                        return False
                elif c["type"] == "stringObject" and c["column"] == "config":
                    assert c["operator"] == "is set", c
                    if c["key"] not in (row["config"] or {}):
                        return False
                else:
                    raise AssertionError(f"filter not implemented by the stub: {c}")
            return True

        recorded = fixture("get_prompts_200.json")
        metas = []
        for name in sorted(self.rows):
            rows = [r for r in self.rows[name] if keep(r)]
            if not rows:
                continue
            metas.append(
                _filled(
                    recorded["data"][0],
                    name=name,
                    type=rows[-1]["type"],
                    versions=[r["version"] for r in rows],
                    labels=sorted({x for r in rows for x in r["labels"]}),
                    tags=rows[-1]["tags"],
                    lastUpdatedAt=max(r["updatedAt"] for r in rows),
                    lastConfig=rows[-1]["config"],
                )
            )
        total = len(metas)
        meta = _filled(
            recorded["meta"],
            page=page,
            limit=limit,
            totalItems=total,
            totalPages=-(-total // limit),
        )
        return 200, {"data": metas[(page - 1) * limit : page * limit], "meta": meta}


@pytest.fixture
def stub() -> Iterator[LangfuseStub]:
    s = LangfuseStub()
    s.thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


# the repository --------------------------------------------------------------------------------

GREET = """\
name: greet
description: "Greets"
model: smollm2-135m-instruct
params: {{temperature: 0.2}}
variables:
  who: {{type: string}}
messages:
  - role: system
    content: "Be brief."
  - role: user
    content: "{content} {{{{ who }}}}"
"""


@dataclass
class History:
    commits: list[str]  # c1, c2, c3
    greet: list[str]  # A, B (oldest first)
    farewell: list[str]  # X, Y


def three_commits(repo: Repo) -> History:
    """Two prompts, three commits: greet A->B, farewell X->Y, a canary label on greet A."""
    repo.write("prompts/greet.yaml", GREET.format(content="Hello"))
    repo.prompt("farewell", "Bye {{ who }}")
    c1 = repo.commit("add greet and farewell")
    repo.write("prompts/greet.yaml", GREET.format(content="Hi"))
    c2 = repo.commit("greet: shorter")
    reg = PromptRegistry.from_git(repo.path)
    a = reg.history("greet")[-1].version
    repo.prompt("farewell", "Goodbye {{ who }}")
    repo.write(
        "prompts/labels.yaml", f"labels:\n  canary: {{greet: {{version: {a}, weight: 0.1}}}}\n"
    )
    c3 = repo.commit("farewell: longer; canary on the old greet")
    reg = PromptRegistry.from_git(repo.path)
    greet = [v.version for v in reversed(reg.history("greet"))]
    farewell = [v.version for v in reversed(reg.history("farewell"))]
    return History([c1, c2, c3], greet, farewell)


def env(stub: LangfuseStub) -> dict[str, str | None]:
    return {
        "LANGFUSE_PUBLIC_KEY": PK,
        "LANGFUSE_SECRET_KEY": SK,
        "LANGFUSE_BASE_URL": stub.url,
        "LANGFUSE_HOST": None,
    }


def sync(repo: Repo, stub: LangfuseStub, *args: str) -> dict[str, Any]:
    res = runner.invoke(
        app, ["sync-langfuse", "--repo", str(repo.path), "--json", *args], env=env(stub)
    )
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def rows(result: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [
        (i["prompt"], i["git_version"], i["langfuse_version"], i["action"]) for i in result["items"]
    ]


# tests -----------------------------------------------------------------------------------------


def test_recorded_shapes_parse_with_the_sdk_models() -> None:
    from langfuse.api import Prompt, PromptMetaListResponse
    from langfuse.api.core.pydantic_utilities import parse_obj_as

    for name in ("post_prompts_201.json", "get_prompt_200.json", "patch_prompt_version_200.json"):
        p = parse_obj_as(Prompt, fixture(name))  # type: ignore[arg-type]
        assert p.type == "chat" and p.version == 1 and p.prompt[0].role == "system"
    listed = parse_obj_as(PromptMetaListResponse, fixture("get_prompts_200.json"))
    assert listed.data[0].versions == [1, 2] and listed.meta.total_pages == 1


def test_first_sync_creates_every_version_in_git_order(repo: Repo, stub: LangfuseStub) -> None:
    h = three_commits(repo)
    c1, c2, c3 = (c[:7] for c in h.commits)
    result = sync(repo, stub)
    assert result["dry_run"] is False and result["base_url"] == stub.url
    assert rows(result) == [
        ("farewell", h.farewell[0], 1, "created"),
        ("farewell", h.farewell[1], 2, "created"),
        ("greet", h.greet[0], 1, "created"),
        ("greet", h.greet[1], 2, "created"),
    ]
    posts = [s.body for s in stub.seen if s.method == "POST"]
    assert [(p["name"], p["config"]["git_version"]) for p in posts] == [
        ("farewell", h.farewell[0]),
        ("farewell", h.farewell[1]),
        ("greet", h.greet[0]),
        ("greet", h.greet[1]),
    ]
    a, b = stub.version("greet", 1), stub.version("greet", 2)
    assert set(a["labels"]) == {c1, "canary"}
    assert set(b["labels"]) == {c2, "production", "latest"}
    assert set(stub.version("farewell", 1)["labels"]) == {c1}
    assert set(stub.version("farewell", 2)["labels"]) == {c3, "production", "latest"}
    assert a["type"] == "chat"
    assert a["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello {{ who }}"},
    ]
    cfg = a["config"]
    assert cfg["git_version"] == h.greet[0] and cfg["git_commit"] == h.commits[0]
    assert cfg["git_path"] == "prompts/greet.yaml" and cfg["template_format"] == "jinja2"
    assert cfg["model"] == "smollm2-135m-instruct" and cfg["params"] == {"temperature": 0.2}
    assert cfg["variables"]["who"]["type"] == "string" and "examples" not in cfg
    assert a["commitMessage"] == "add greet and farewell"
    assert stub.version("farewell", 2)["config"]["git_commit"] == h.commits[2]


def test_second_sync_creates_nothing(repo: Repo, stub: LangfuseStub) -> None:
    three_commits(repo)
    sync(repo, stub)
    before = len(stub.writes())
    again = sync(repo, stub)
    assert {i["action"] for i in again["items"]} == {"unchanged"}
    assert [i["langfuse_version"] for i in again["items"]] == [1, 2, 1, 2]
    assert len(stub.writes()) == before
    assert again["counts"] == {"created": 0, "labels updated": 0, "unchanged": 4}


def test_moving_production_back_updates_labels_only(repo: Repo, stub: LangfuseStub) -> None:
    """A revert makes an old version production again: a label move, no new Langfuse version."""
    h = three_commits(repo)
    sync(repo, stub)
    posts = sum(s.method == "POST" for s in stub.seen)
    repo.write("prompts/greet.yaml", GREET.format(content="Hello"))
    c4 = repo.commit("revert greet")
    result = sync(repo, stub)
    assert rows(result) == [
        ("farewell", h.farewell[0], 1, "unchanged"),
        ("farewell", h.farewell[1], 2, "unchanged"),
        ("greet", h.greet[0], 1, "labels updated"),
        ("greet", h.greet[1], 2, "unchanged"),
    ]
    assert sum(s.method == "POST" for s in stub.seen) == posts
    patches = [s for s in stub.seen if s.method == "PATCH"]
    assert [s.path for s in patches] == ["/api/public/v2/prompts/greet/versions/1"]
    assert set(patches[0].body["newLabels"]) == {"production", c4[:7]}
    assert set(stub.version("greet", 1)["labels"]) == {
        h.commits[0][:7],
        c4[:7],
        "canary",
        "production",
    }
    assert "production" not in stub.version("greet", 2)["labels"]  # moved by Langfuse
    assert sync(repo, stub)["counts"]["labels updated"] == 0


def test_labels_file_change_updates_labels_only(repo: Repo, stub: LangfuseStub) -> None:
    h = three_commits(repo)
    sync(repo, stub)
    repo.write(
        "prompts/labels.yaml",
        f"labels:\n  canary: {{greet: {{version: {h.greet[0]}, weight: 0.1}}}}\n"
        f"  staging: {{farewell: {h.farewell[0]}}}\n",
    )
    repo.commit("pin staging")
    result = sync(repo, stub)
    assert result["counts"] == {"created": 0, "labels updated": 1, "unchanged": 3}
    assert ("farewell", h.farewell[0], 1, "labels updated") in rows(result)
    assert "staging" in stub.version("farewell", 1)["labels"]


def test_langfuse_prompt_versions_maps_git_versions(repo: Repo, stub: LangfuseStub) -> None:
    h = three_commits(repo)
    sync(repo, stub)
    # a version made by hand in Langfuse (no git version in its config) is not ours
    stub.handle(
        "POST",
        ["api", "public", "v2", "prompts"],
        {},
        {"name": "greet", "type": "chat", "prompt": [{"role": "user", "content": "x"}]},
    )
    expected = {
        ("farewell", h.farewell[0]): 1,
        ("farewell", h.farewell[1]): 2,
        ("greet", h.greet[0]): 1,
        ("greet", h.greet[1]): 2,
    }
    settings = LangfuseSettings(public_key=PK, secret_key=SK, base_url=stub.url)
    assert langfuse_prompt_versions(settings) == expected
    assert langfuse_prompt_versions(settings, ["greet"]) == {
        k: v for k, v in expected.items() if k[0] == "greet"
    }
    listed = [s for s in stub.seen if s.method == "GET" and s.path == "/api/public/v2/prompts"]
    assert '"key":"git_version"' in listed[-1].query["filter"]
    assert langfuse_prompt_versions(settings, []) == {}

    from langfuse import Langfuse

    client = Langfuse(
        public_key=PK, secret_key=SK, base_url=stub.url, tracing_enabled=False
    )  # the gateway's own client works too
    try:
        assert langfuse_prompt_versions(client) == expected
        reg = PromptRegistry.from_git(repo.path)
        again = sync_to_langfuse(reg, client)
        assert {i.action for i in again.items} == {"unchanged"}
    finally:
        client.shutdown()


def test_dry_run_sends_nothing(repo: Repo, stub: LangfuseStub) -> None:
    h = three_commits(repo)
    plan = sync(repo, stub, "--dry-run")
    assert plan["dry_run"] is True
    assert [i["langfuse_version"] for i in plan["items"]] == [1, 2, 1, 2]
    assert {i["action"] for i in plan["items"]} == {"created"}
    assert stub.writes() == [] and stub.rows == {}
    res = runner.invoke(
        app, ["sync-langfuse", "--repo", str(repo.path), "--dry-run"], env=env(stub)
    )
    assert res.exit_code == 0, res.output
    assert "dry run, nothing sent: 4 to create" in res.stdout
    assert f"greet     {h.greet[0]}  1         create" in res.stdout
    assert stub.writes() == []
    sync(repo, stub)
    repo.write("prompts/greet.yaml", GREET.format(content="Hello"))
    repo.commit("revert greet")
    writes = len(stub.writes())
    plan = sync(repo, stub, "--dry-run")
    assert plan["counts"] == {"created": 0, "labels updated": 1, "unchanged": 3}
    assert len(stub.writes()) == writes


def test_table_output(repo: Repo, stub: LangfuseStub) -> None:
    three_commits(repo)
    res = runner.invoke(app, ["sync-langfuse", "--repo", str(repo.path)], env=env(stub))
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["PROMPT", "GIT", "VERSION", "LANGFUSE", "ACTION", "LABELS"]
    assert len(lines) == 6 and lines[-1] == "4 created, 0 labels updated, 0 unchanged"


def test_missing_keys_exit_2_with_a_message(repo: Repo, stub: LangfuseStub) -> None:
    three_commits(repo)
    res = runner.invoke(
        app,
        ["sync-langfuse", "--repo", str(repo.path)],
        env={"LANGFUSE_PUBLIC_KEY": None, "LANGFUSE_SECRET_KEY": "", "LANGFUSE_BASE_URL": stub.url},
    )
    assert res.exit_code == 2
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY not set" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert stub.seen == []


def test_langfuse_errors_are_clear(repo: Repo, stub: LangfuseStub) -> None:
    three_commits(repo)
    res = runner.invoke(
        app,
        ["sync-langfuse", "--repo", str(repo.path)],
        env={**env(stub), "LANGFUSE_SECRET_KEY": "sk-wrong"},
    )
    assert res.exit_code == 1 and "Langfuse answered 401 to listing prompts" in res.output
    stub.handle(
        "POST",
        ["api", "public", "v2", "prompts"],
        {},
        {"name": "greet", "type": "text", "prompt": "Hello"},
    )
    res = runner.invoke(app, ["sync-langfuse", "--repo", str(repo.path)], env=env(stub))
    assert res.exit_code == 1 and "'greet' as a text prompt" in res.output
    assert stub.writes() == []
    stub.server.shutdown()
    stub.server.server_close()
    res = runner.invoke(app, ["sync-langfuse", "--repo", str(repo.path)], env=env(stub))
    assert res.exit_code == 1 and "cannot reach Langfuse" in res.output


def test_shallow_clone_is_refused(repo: Repo, stub: LangfuseStub, tmp_path: Path) -> None:
    three_commits(repo)
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)], check=True
    )
    res = runner.invoke(app, ["sync-langfuse", "--repo", str(clone)], env=env(stub))
    assert res.exit_code == 2 and "fetch --unshallow" in res.output
    assert stub.seen == []


def test_without_the_langfuse_package(
    repo: Repo, stub: LangfuseStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_commits(repo)
    monkeypatch.setitem(sys.modules, "langfuse.api", None)  # import fails as if not installed
    reg = PromptRegistry.from_git(repo.path)
    settings = LangfuseSettings(public_key=PK, secret_key=SK, base_url=stub.url)
    with pytest.raises(LangfuseUnavailable, match=r"llmops\[observability\]"):
        sync_to_langfuse(reg, settings)
    res = runner.invoke(app, ["sync-langfuse", "--repo", str(repo.path)], env=env(stub))
    assert res.exit_code == 2 and "pip install 'llmops[observability]'" in res.output


def test_importing_prompts_does_not_import_langfuse() -> None:
    code = "import sys, prompts, prompts.cli; assert 'langfuse' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_settings_from_env() -> None:
    s = LangfuseSettings.from_env(
        environ={
            "LANGFUSE_PUBLIC_KEY": "pk",
            "LANGFUSE_SECRET_KEY": "sk-secret",
            "LANGFUSE_HOST": "h/",
        }
    )
    assert (s.public_key, s.secret_key, s.base_url) == ("pk", "sk-secret", "h")
    assert "sk-secret" not in repr(s)
    s = LangfuseSettings.from_env(
        "http://x:3000",
        environ={
            "LANGFUSE_PUBLIC_KEY": "pk",
            "LANGFUSE_SECRET_KEY": "sk",
            "LANGFUSE_BASE_URL": "y",
        },
    )
    assert s.base_url == "http://x:3000"
    assert (
        LangfuseSettings.from_env(
            environ={"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}
        ).base_url
        == "http://127.0.0.1:3000"
    )
