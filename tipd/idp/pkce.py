"""PKCE (RFC 7636, S256 only), state and nonce: unguessable values from the OS CSPRNG."""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class AuthRequest:
    """Everything one authorization request must remember until its callback arrives."""

    #: 48 random bytes: 64 characters of RFC 7636's unreserved set (43-128 allowed)
    verifier: str = field(default_factory=lambda: _b64(secrets.token_bytes(48)), repr=False)
    state: str = field(default_factory=lambda: _b64(secrets.token_bytes(24)), repr=False)
    nonce: str = field(default_factory=lambda: _b64(secrets.token_bytes(24)), repr=False)

    @property
    def challenge(self) -> str:
        return s256(self.verifier)

    def state_matches(self, received: str | None) -> bool:
        """Constant time, unlike authlib's response parser (which compares state with !=)."""
        return received is not None and secrets.compare_digest(received.encode(), self.state.encode())
