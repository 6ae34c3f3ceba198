"""id_token checks: the signature against the IdP's JWKS (PyJWT), then OpenID Connect's claim rules
(authlib's CodeIDToken: iss, aud with azp, exp, iat, nonce)."""
from __future__ import annotations

from typing import Any

import jwt

from ..errors import LoginError

#: asymmetric algorithms only: never "none", never a shared-secret HMAC a public client cannot check
ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
GOOGLE_ISSUER = "https://accounts.google.com"
#: the JWK key type each algorithm family needs (RS/PS: RSA, ES: EC, EdDSA: OKP)
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class UnknownSigningKey(LoginError):
    """The token names a `kid` the JWKS at hand lacks: after a key rotation, fetching the keys again helps."""


def accepted_issuers(issuer: str, provider: str = "oidc") -> list[str]:
    """The `iss` values an id_token may carry: the issuer, byte for byte (a trailing slash matters, as in
    AWS IAM's comparison). Google alone documents a second form: "The value of iss in the ID token is equal
    to accounts.google.com or https://accounts.google.com"
    (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken)."""
    if provider == "google" and issuer == GOOGLE_ISSUER:
        return [issuer, "accounts.google.com"]
    return [issuer]


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token that came straight from the IdP's token endpoint over TLS (for display
    and expiry only; Identity Center verifies what it is sent)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, RecursionError):
        raise LoginError("the IdP returned an id_token that is not a JWT") from None
    if not isinstance(claims, dict):
        raise LoginError("the IdP returned an id_token whose payload is not a JSON object")
    return claims


def _signed_claims(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a token whose signature verifies with one of the JWKS' keys."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise LoginError("the id_token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise LoginError(f"the id_token is signed with {str(alg)[:20]!r}, which tipd does not accept")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise LoginError("the IdP's JWKS holds no usable keys") from None
    kid = header.get("kid")
    kty = KEY_TYPES.get(alg[:2], "OKP")
    candidates = [k for k in keys if (kid is None or k.key_id == kid) and k.key_type == kty]
    if not candidates:
        raise UnknownSigningKey("the id_token is signed with a key the IdP does not publish")
    # signature only here: the claims follow OIDC's rules below
    options: jwt.types.Options = {"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                  "verify_iat": False, "verify_aud": False, "verify_iss": False}
    last: Exception | None = None
    for key in candidates:
        try:
            return header, jwt.decode(token, key.key, algorithms=[alg], options=options)
        except jwt.InvalidSignatureError as e:
            last = e
        except jwt.PyJWTError as e:
            raise LoginError(f"the id_token is not valid: {e}") from None
    raise LoginError("the id_token's signature does not verify against the IdP's keys") from last


def _claim_error(claim: str, missing: bool, issuers: list[str], client_id: str) -> LoginError:
    if claim == "nonce":
        return LoginError("the id_token's nonce does not match this sign-in (a replayed or injected token)")
    if claim == "aud":
        return LoginError(f"the id_token is not meant for client {client_id!r} (aud mismatch)")
    if claim == "azp":
        return LoginError(f"the id_token has several audiences and its azp is not client {client_id!r} "
                          "(azp mismatch)")
    if claim == "iss":
        return LoginError(f"the id_token was not issued by {issuers[0]!r} (iss mismatch)")
    if missing:
        return LoginError(f"the id_token lacks the {claim!r} claim")
    if claim in ("iat", "nbf"):
        return LoginError(f"the id_token is not valid yet ({claim}); check this machine's clock")
    return LoginError(f"the id_token's {claim!r} claim is not valid")


def verify_id_token(token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str | None,
                    now: float | None = None, leeway: float = 60, issuers: list[str] | None = None) -> dict[str, Any]:
    """The id_token's claims once it passes OpenID Connect Core 3.1.3.7: signature, `iss` exactly one of
    `issuers` (default: `issuer`), `client_id` among `aud` (and `azp` naming it when there are several),
    not expired, issued in the past, and carrying `nonce` when one was sent."""
    from authlib.oidc.core import CodeIDToken
    from joserfc.errors import ExpiredTokenError, InvalidClaimError, MissingClaimError

    header, claims = _signed_claims(token, jwks)
    if not isinstance(claims, dict):
        raise LoginError("the id_token's payload is not a JSON object")
    issuers = issuers or [issuer]
    options = {"iss": {"essential": True, "values": issuers}, "aud": {"essential": True, "value": client_id},
               "sub": {"essential": True}}
    checks = CodeIDToken(claims, header, options=options, params={"nonce": nonce, "client_id": client_id})
    try:
        checks.validate(now=int(now) if now is not None else None, leeway=int(leeway))
    except ExpiredTokenError:
        raise LoginError("the id_token has expired; check this machine's clock and sign in again") from None
    except MissingClaimError as e:
        raise _claim_error(e.claim.split(",")[0], True, issuers, client_id) from None
    except InvalidClaimError as e:
        raise _claim_error(e.claim, False, issuers, client_id) from None
    return claims
