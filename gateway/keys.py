"""Client API keys: looked up by SHA-256 digest so the config never holds a usable secret."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.config import AuthConfig
from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name and the canonical model names it may use (None = all)."""

    name: str
    models: frozenset[str] | None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


class KeyStore:
    def __init__(self, auth: AuthConfig, canonical: dict[str, str]) -> None:
        self.enabled = auth.enabled
        self._by_digest: dict[bytes, Principal] = {}
        for k in auth.keys:
            models = None if k.models is None else frozenset(canonical[m] for m in k.models)
            self._by_digest[bytes.fromhex(k.sha256)] = Principal(k.name, models)

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
