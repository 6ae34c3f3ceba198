"""id_token checks: signature against the IdP's JWKS, iss, aud, exp, nonce."""
from __future__ import annotations

from typing import Any

import jwt

from ..errors import LoginError

#: asymmetric algorithms only: never "none", never a shared-secret HMAC a public client cannot check
ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token that came straight from the IdP's token endpoint over TLS (for display
    and expiry only; Identity Center verifies what it is sent)."""
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise LoginError("the IdP returned an id_token that is not a JWT") from None


def verify_id_token(token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str | None,
                    now: float | None = None, leeway: float = 60) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise LoginError("the id_token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise LoginError(f"the id_token is signed with {alg!r}, which tipd does not accept")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWTError:
        raise LoginError("the IdP's JWKS holds no usable keys") from None
    kid = header.get("kid")
    candidates = [k for k in keys if kid is None or k.key_id == kid]
    if not candidates:
        raise LoginError("the id_token is signed with a key the IdP does not publish")
    options = {"require": ["exp", "iat", "iss", "aud", "sub"]}
    last: Exception | None = None
    for key in candidates:
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=client_id, issuer=issuer,
                                leeway=leeway, options=options)
            break
        except jwt.InvalidSignatureError as e:
            last = e
        except jwt.ExpiredSignatureError:
            raise LoginError("the id_token has expired; check this machine's clock and sign in again") from None
        except jwt.InvalidAudienceError:
            raise LoginError(f"the id_token is not meant for client {client_id!r} (aud mismatch)") from None
        except jwt.InvalidIssuerError:
            raise LoginError(f"the id_token was not issued by {issuer!r} (iss mismatch)") from None
        except jwt.PyJWTError as e:
            raise LoginError(f"the id_token is not valid: {e}") from None
    else:
        raise LoginError("the id_token's signature does not verify against the IdP's keys") from last
    if nonce is not None and claims.get("nonce") != nonce:
        raise LoginError("the id_token's nonce does not match this sign-in (a replayed or injected token)")
    return claims
