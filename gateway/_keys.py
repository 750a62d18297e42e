"""Client API keys: looked up by SHA-256 digest so the config never holds a usable secret."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from gateway._config import ApiKeyConfig, AuthConfig
from gateway._errors import GatewayError
from gateway._limits_config import LimitSpec


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name, the canonical model names it may use (None = all), its
    team and its own limits (None = the configured default)."""

    name: str
    models: frozenset[str] | None
    team: str | None = None
    limits: LimitSpec | None = field(default=None, compare=False, hash=False)
    origin: str = "config"

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


class KeyStore:
    """Keys from the config plus keys added at runtime through the admin API.

    Runtime keys and revocations live in this process only; they survive ``reload`` (which
    re-reads the config) but not a restart.
    """

    def __init__(self, auth: AuthConfig, canonical: dict[str, str]) -> None:
        self.enabled = auth.enabled
        self._by_digest: dict[bytes, Principal] = {}
        self._runtime: dict[bytes, Principal] = {}
        self._revoked: set[str] = set()
        self._admin: bytes | None = None
        self.load(auth, canonical)

    def load(self, auth: AuthConfig, canonical: dict[str, str]) -> None:
        """(Re)build the table from the config; runtime keys and revocations are kept."""
        table: dict[bytes, Principal] = {}
        for k in auth.keys:
            table[bytes.fromhex(k.sha256)] = _principal(k, canonical, "config")
        for digest, p in self._runtime.items():
            if digest not in table and not any(q.name == p.name for q in table.values()):
                table[digest] = p
        self.enabled = auth.enabled
        self._admin = bytes.fromhex(auth.admin_sha256) if auth.admin_sha256 else None
        self._by_digest = {d: p for d, p in table.items() if p.name not in self._revoked}

    def authenticate(self, authorization: str | None) -> Principal | None:
        """Return the caller, ``None`` when auth is off; raise 401 otherwise."""
        if not self.enabled:
            return None
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise GatewayError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key",
            )
        digest = hashlib.sha256(authorization[7:].strip().encode()).digest()
        # Lookup by digest: any timing difference depends on the hash, not on the secret's
        # prefix, so it leaks nothing an attacker can use to guess a key byte by byte.
        principal = self._by_digest.get(digest)
        if principal is None:
            raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
        return principal

    # --- admin ------------------------------------------------------------------------------
    @property
    def admin_enabled(self) -> bool:
        return self._admin is not None

    def is_admin(self, authorization: str | None) -> bool:
        """Constant-time comparison of the presented key's digest with the admin digest."""
        if self._admin is None or not authorization or authorization[:7].lower() != "bearer ":
            return False
        digest = hashlib.sha256(authorization[7:].strip().encode()).digest()
        return hmac.compare_digest(digest, self._admin)

    def principals(self) -> list[Principal]:
        return sorted(self._by_digest.values(), key=lambda p: p.name)

    def find(self, name: str) -> Principal | None:
        return next((p for p in self._by_digest.values() if p.name == name), None)

    def add(self, key: ApiKeyConfig, canonical: dict[str, str]) -> Principal:
        if self.find(key.name) is not None:
            raise GatewayError(409, f"A key named '{key.name}' exists.", code="key_exists")
        digest = bytes.fromhex(key.sha256)
        if digest in self._by_digest or (self._admin is not None and digest == self._admin):
            raise GatewayError(409, "This key is already in use.", code="key_exists")
        p = _principal(key, canonical, "runtime")
        self._revoked.discard(key.name)
        self._runtime[digest] = p
        self._by_digest[digest] = p
        return p

    def revoke(self, name: str) -> bool:
        found = [d for d, p in self._by_digest.items() if p.name == name]
        for d in found:
            del self._by_digest[d]
            self._runtime.pop(d, None)
        if found:
            self._revoked.add(name)
        return bool(found)


def _principal(k: ApiKeyConfig, canonical: dict[str, str], origin: str) -> Principal:
    unknown = [m for m in k.models or () if m not in canonical]
    if unknown:
        raise GatewayError(400, f"Key '{k.name}' names unknown model '{unknown[0]}'.")
    models = None if k.models is None else frozenset(canonical[m] for m in k.models)
    return Principal(k.name, models, k.team, k.limits, origin)
