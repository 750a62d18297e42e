"""Git history to Langfuse prompt management, and Langfuse's version numbers back.

Langfuse numbers a prompt's versions 1, 2, 3...; this registry names them by content hash.
:func:`sync_to_langfuse` pushes every git version of every prompt as a chat prompt, oldest first
so the numbers follow git order, each with ``config`` holding the git version id
(``git_version``), the commit that introduced it (``git_commit``), its path and the template's
own settings (model, params, variables, response format, retrieval), and with labels:
``production`` on the served version, the labels file's labels, and the short sha of every commit
that introduced the content.

It is idempotent: what Langfuse holds is read back and matched on ``config.git_version``. A version
already there gets the labels it lacks with a PATCH (Langfuse versions are immutable apart from
their labels); nothing else is sent. Langfuse's API can move a label but never take one off, so a
label deleted from the labels file stays where it last was in Langfuse.

:func:`langfuse_prompt_versions` reads the mapping (prompt, git version) -> Langfuse number, for a
gateway to put Langfuse's numbers on its traces; it does network I/O, so call it off the request
path.

``langfuse`` is an optional dependency (the ``observability`` extra), imported inside functions.
Calls go through the SDK's REST client, ``langfuse.api.LangfuseAPI`` (the one behind
``Langfuse().api``, ``create_prompt`` and ``update_prompt``). From settings a fresh one is built
rather than a ``langfuse.Langfuse``: that class keeps one process-wide resource manager per public
key, whose base URL and tracing switch are fixed by whoever creates it first, so building one
here could silently reconfigure the gateway's tracing client. A ``Langfuse`` client passed in is
used through its ``.api``, and its prompt cache is cleared after a sync that changed something.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import HistoryUnavailable, PromptError
from ._registry import PromptRegistry, PromptVersion

Action = Literal["created", "labels updated", "unchanged"]

CONFIG_VERSION = "git_version"
CONFIG_COMMIT = "git_commit"
SHORT_SHA = 7
DEFAULT_BASE_URL = "http://127.0.0.1:3000"  # observability's default: the compose Langfuse
EXTRA_HINT = "pip install 'llmops[observability]'"

# Langfuse accepts labels of lowercase letters, digits, "_", "-", "." (at most 36 characters).
_LANGFUSE_LABEL = re.compile(r"^[a-z0-9_.-]{1,36}$")
_PAGE = 100  # the list endpoint's largest page
_COMMIT_MESSAGE_MAX = 500
_PLAN_WORDS = {"created": "create", "labels updated": "update labels", "unchanged": "unchanged"}


class LangfuseSyncError(PromptError):
    """Langfuse refused a request or could not be reached."""

    status = 502
    type = "server_error"
    code = "langfuse_sync_error"


class LangfuseUnavailable(LangfuseSyncError):
    """The ``langfuse`` package is not installed (the ``observability`` extra)."""

    status = 500
    code = "langfuse_unavailable"


class LangfuseNotConfigured(LangfuseSyncError):
    """No Langfuse API keys."""

    status = 500
    code = "langfuse_not_configured"


@dataclass(frozen=True, slots=True)
class LangfuseSettings:
    """Where Langfuse is and the project's API keys."""

    public_key: str
    secret_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 10.0

    @classmethod
    def from_env(
        cls, base_url: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> LangfuseSettings:
        """Keys from ``LANGFUSE_PUBLIC_KEY``/``LANGFUSE_SECRET_KEY``; the URL from ``base_url``,
        else ``LANGFUSE_BASE_URL``, else ``LANGFUSE_HOST``, else ``http://127.0.0.1:3000``.

        Raises :class:`LangfuseNotConfigured` naming the missing variables.
        """
        env = os.environ if environ is None else environ
        pk = env.get("LANGFUSE_PUBLIC_KEY", "").strip()
        sk = env.get("LANGFUSE_SECRET_KEY", "").strip()
        missing = [
            n for n, v in (("LANGFUSE_PUBLIC_KEY", pk), ("LANGFUSE_SECRET_KEY", sk)) if not v
        ]
        if missing:
            raise LangfuseNotConfigured(
                f"{' and '.join(missing)} not set: Langfuse's API keys are needed "
                "(Langfuse: project settings > API keys)"
            )
        url = (
            base_url or env.get("LANGFUSE_BASE_URL") or env.get("LANGFUSE_HOST") or DEFAULT_BASE_URL
        )
        return cls(public_key=pk, secret_key=sk, base_url=url.rstrip("/"))


@dataclass(frozen=True, slots=True)
class LangfuseSyncItem:
    """One git version of one prompt and what the sync did (or, on a dry run, would do)."""

    prompt: str
    git_version: str
    commit: str | None
    langfuse_version: int
    labels: tuple[str, ...]
    action: Action

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "git_version": self.git_version,
            "commit": self.commit,
            "langfuse_version": self.langfuse_version,
            "labels": list(self.labels),
            "action": self.action,
        }


@dataclass(frozen=True, slots=True)
class LangfuseSyncResult:
    """Every version in git order per prompt; on a dry run the Langfuse numbers are predicted."""

    items: tuple[LangfuseSyncItem, ...]
    dry_run: bool
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_PLAN_WORDS, 0)
        for item in self.items:
            out[item.action] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "items": [i.to_dict() for i in self.items],
            "counts": self.counts(),
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        """A plain table (one row per version) and a summary line."""
        rows = [("PROMPT", "GIT VERSION", "LANGFUSE", "ACTION", "LABELS")]
        for i in self.items:
            action = _PLAN_WORDS[i.action] if self.dry_run else i.action
            rows.append(
                (i.prompt, i.git_version, str(i.langfuse_version), action, ", ".join(i.labels))
            )
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        out = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
        c = self.counts()
        if self.dry_run:
            out.append(
                f"dry run, nothing sent: {c['created']} to create, "
                f"{c['labels updated']} to relabel, {c['unchanged']} unchanged"
            )
        else:
            out.append(
                f"{c['created']} created, {c['labels updated']} labels updated, "
                f"{c['unchanged']} unchanged"
            )
        return out


# the SDK ---------------------------------------------------------------------------------------


def _sdk() -> Any:
    try:
        import langfuse.api as sdk_api
    except ImportError:
        raise LangfuseUnavailable(
            f"the langfuse package is not installed; it comes with the observability extra: "
            f"{EXTRA_HINT}"
        ) from None
    return sdk_api


def _api_of(client_or_settings: Any) -> Any:
    """The SDK's REST client for settings, a ``langfuse.Langfuse`` or a ``LangfuseAPI``."""
    if isinstance(client_or_settings, LangfuseSettings):
        s = client_or_settings
        sdk_api = _sdk()
        from langfuse import __version__ as sdk_version

        return sdk_api.LangfuseAPI(
            base_url=s.base_url,
            username=s.public_key,
            password=s.secret_key,
            x_langfuse_sdk_name="python",
            x_langfuse_sdk_version=sdk_version,
            x_langfuse_public_key=s.public_key,
            timeout=s.timeout_s,
        )
    if hasattr(client_or_settings, "prompts") and hasattr(client_or_settings, "prompt_version"):
        return client_or_settings
    if isinstance(getattr(type(client_or_settings), "api", None), property):
        try:
            return client_or_settings.api
        except AttributeError:  # Langfuse() without keys leaves its API unset
            raise LangfuseNotConfigured(
                "the Langfuse client has no API (it was created without keys)"
            ) from None
    raise TypeError(
        "expected LangfuseSettings, a langfuse.Langfuse client or a langfuse.api.LangfuseAPI, "
        f"got {type(client_or_settings).__name__}"
    )


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the SDK; its HTTP errors and transport failures become :class:`LangfuseSyncError`."""
    from langfuse.api.core import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as e:
        body = e.body if isinstance(e.body, str) else json.dumps(e.body, default=str)
        raise LangfuseSyncError(
            f"Langfuse answered {e.status_code} to {what}: {body[:300]}"
        ) from None
    except Exception as e:
        if type(e).__module__.split(".")[0] != "httpx":
            raise
        raise LangfuseSyncError(
            f"cannot reach Langfuse ({what}): {type(e).__name__}: {e}"
        ) from None


def _quote(name: str) -> str:
    """A prompt name as a path segment, encoded as the SDK's own methods do."""
    return urllib.parse.quote(name, safe="")


# reading what Langfuse has ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Remote:
    """One Langfuse version: its number, labels and the git version id in its config (if any)."""

    version: int
    labels: frozenset[str]
    git_version: str | None


def _metas(api: Any, names: Iterable[str] | None, *, ours_only: bool) -> list[Any]:
    """Langfuse's prompt list (every page), narrowed to ``names`` and, with ``ours_only``, to
    versions whose config has a git version id.

    The narrowing is sent as the list endpoint's ``filter``; a server too old to know it returns
    more, which only costs reads: everything is checked again here and by the caller.
    """
    wanted = None if names is None else set(names)
    if wanted is not None and not wanted:
        return []
    conditions: list[dict[str, Any]] = []
    if wanted is not None:
        conditions.append(
            {
                "type": "stringOptions",
                "column": "name",
                "operator": "any of",
                "value": sorted(wanted),
            }
        )
    if ours_only:
        conditions.append(
            {
                "type": "stringObject",
                "column": "config",
                "key": CONFIG_VERSION,
                "operator": "is set",
                "value": "",
            }
        )
    flt = json.dumps(conditions, separators=(",", ":")) if conditions else None
    out: list[Any] = []
    page = 1
    while True:
        resp = _call("listing prompts", api.prompts.list, page=page, limit=_PAGE, filter=flt)
        out.extend(m for m in resp.data if wanted is None or m.name in wanted)
        if page >= resp.meta.total_pages or not resp.data:
            return out
        page += 1


def _remote_versions(api: Any, meta: Any) -> list[_Remote]:
    """Each version the list named, oldest first, read one by one (the list has no configs)."""
    out: list[_Remote] = []
    for number in sorted(set(meta.versions)):
        p = _call(
            f"reading {meta.name} version {number}",
            api.prompts.get,
            _quote(meta.name),
            version=number,
        )
        config = p.config if isinstance(p.config, dict) else {}
        gv = config.get(CONFIG_VERSION)
        out.append(_Remote(p.version, frozenset(p.labels), gv if isinstance(gv, str) else None))
    return out


def langfuse_prompt_versions(
    client_or_settings: Any, names: Iterable[str] | None = None
) -> dict[tuple[str, str], int]:
    """(prompt name, git version id) -> Langfuse version number, read from Langfuse's API.

    ``client_or_settings``: :class:`LangfuseSettings`, a ``langfuse.Langfuse`` client or a
    ``langfuse.api.LangfuseAPI``. ``names`` limits the prompts read (default: all that carry a
    git version id). One list request per 100 prompts and one read per version: call it off the
    request path. Where two Langfuse versions carry the same git version id, the older wins.
    """
    api = _api_of(client_or_settings)
    out: dict[tuple[str, str], int] = {}
    for meta in _metas(api, names, ours_only=True):
        for r in _remote_versions(api, meta):
            if r.git_version is not None:
                out.setdefault((meta.name, r.git_version), r.version)
    return out


# what git has ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Wanted:
    """One git version of a prompt: its first appearance, every commit that introduced it (a
    revert brings content back), and the labels it should carry in Langfuse."""

    pv: PromptVersion
    commits: list[str]
    labels: set[str]


def _wanted(reg: PromptRegistry, name: str, warnings: list[str]) -> list[_Wanted]:
    """The git versions of ``name``, oldest first, one per version id."""
    by_id: dict[str, _Wanted] = {}
    for pv in reversed(reg.history(name)):
        w = by_id.setdefault(pv.version, _Wanted(pv, [], set()))
        if pv.commit and pv.commit not in w.commits:
            w.commits.append(pv.commit)
            w.labels.add(pv.commit[:SHORT_SHA])
    by_id[reg.production(name).version].labels.add("production")
    for label, target in sorted(reg.labels_of(name).items()):
        if not isinstance(target, PromptVersion) or target.version not in by_id:
            continue
        if _LANGFUSE_LABEL.match(label):
            by_id[target.version].labels.add(label)
        else:
            warnings.append(
                f"label {label!r} of {name} not sent: Langfuse labels are lowercase letters, "
                "digits, '_', '-', '.', at most 36 characters"
            )
    return list(by_id.values())


def _config(w: _Wanted) -> dict[str, Any]:
    tpl = w.pv.template
    own = tpl.model_dump(mode="json", exclude={"name", "messages", "examples"})
    return {
        CONFIG_VERSION: w.pv.version,
        CONFIG_COMMIT: w.commits[0] if w.commits else None,
        "git_path": w.pv.path,
        "template_format": "jinja2",
        **own,
    }


def _create_request(name: str, w: _Wanted) -> Any:
    sdk_api = _sdk()
    message = (w.pv.message or "").strip()
    return sdk_api.CreateChatPromptRequest(
        name=name,
        type=sdk_api.CreateChatPromptType.CHAT,
        prompt=[{"role": m.role, "content": m.content} for m in w.pv.template.messages],
        labels=sorted(w.labels),
        config=_config(w),
        commit_message=message[:_COMMIT_MESSAGE_MAX] or None,
    )


# the sync --------------------------------------------------------------------------------------


def sync_to_langfuse(
    registry: PromptRegistry, client_or_settings: Any, *, dry_run: bool = False
) -> LangfuseSyncResult:
    """Push every git version of every prompt to Langfuse; see the module docstring.

    ``registry`` must carry its full git history (:meth:`PromptRegistry.from_git` on a full
    clone). ``dry_run`` reads Langfuse and plans, and sends nothing. Raises
    :class:`LangfuseSyncError` (and its subclasses) or :class:`HistoryUnavailable`.
    """
    if registry.shallow or not registry.has_history:
        why = "a shallow clone" if registry.shallow else "no git history"
        raise HistoryUnavailable(
            f"{registry.source} has {why}: Langfuse numbers versions in the order they are "
            "pushed, so the whole history is needed (git fetch --unshallow; in GitHub Actions "
            "actions/checkout with fetch-depth: 0)"
        )
    api = _api_of(client_or_settings)
    names = registry.names()
    warnings: list[str] = []
    wanted = {name: _wanted(registry, name, warnings) for name in names}
    metas = {m.name: m for m in _metas(api, names, ours_only=False)}
    for name, meta in sorted(metas.items()):
        kind = str(getattr(meta.type, "value", meta.type))
        if kind != "chat":
            raise LangfuseSyncError(
                f"Langfuse already has {name!r} as a {kind} prompt; these templates are "
                "chat prompts (rename or delete it in Langfuse)"
            )
    items: list[LangfuseSyncItem] = []
    changed = False
    for name in names:
        remote = _remote_versions(api, metas[name]) if name in metas else []
        known: dict[str, _Remote] = {}
        for r in remote:
            if r.git_version is not None:
                known.setdefault(r.git_version, r)
        next_number = max((r.version for r in remote), default=0) + 1
        for w in wanted[name]:
            action: Action
            existing = known.get(w.pv.version)
            if existing is None:
                action, number = "created", next_number
                if not dry_run:
                    created = _call(
                        f"creating {name} ({w.pv.version})",
                        api.prompts.create,
                        request=_create_request(name, w),
                        request_options={"max_retries": 0},  # a retried POST could duplicate
                    )
                    number = created.version
                    changed = True
                next_number = number + 1
            elif missing := w.labels - existing.labels:
                action, number = "labels updated", existing.version
                if not dry_run:
                    _call(
                        f"labelling {name} version {number}",
                        api.prompt_version.update,
                        _quote(name),
                        number,
                        new_labels=sorted(missing),
                    )
                    changed = True
            else:
                action, number = "unchanged", existing.version
            commit = w.commits[0] if w.commits else None
            items.append(
                LangfuseSyncItem(
                    name, w.pv.version, commit, number, tuple(sorted(w.labels)), action
                )
            )
    clear = getattr(client_or_settings, "clear_prompt_cache", None)
    if changed and callable(clear):
        clear()
    return LangfuseSyncResult(tuple(items), dry_run, tuple(warnings))


__all__ = [
    "CONFIG_COMMIT",
    "CONFIG_VERSION",
    "LangfuseNotConfigured",
    "LangfuseSettings",
    "LangfuseSyncError",
    "LangfuseSyncItem",
    "LangfuseSyncResult",
    "LangfuseUnavailable",
    "langfuse_prompt_versions",
    "sync_to_langfuse",
]
