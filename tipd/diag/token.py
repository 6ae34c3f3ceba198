"""The IdP token's own checks: signature (through tipd.idp.verify), iss, aud, lifetime, jti."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..clock import iso_utc
from ..config import is_loopback_host
from ..errors import TipdError
from ..secret import Secret
from .model import Check, Failure, Target, failure, ok, skipped, warning

if TYPE_CHECKING:
    import aiohttp

#: the signature check leaves time to the lifetime check (which uses the real skew and says more)
_ANY_TIME = 10 ** 10


@dataclass(frozen=True)
class TokenFacts:
    token: Secret
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def iss(self) -> str:
        return str(self.claims.get("iss") or "")

    @property
    def audiences(self) -> list[str]:
        aud = self.claims.get("aud")
        return [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]

    def __repr__(self) -> str:
        return f"TokenFacts(iss={self.iss!r}, sub={self.claims.get('sub')!r})"


def parse(token: Secret) -> TokenFacts | Failure:
    import jwt

    try:
        header = jwt.get_unverified_header(token.reveal())
        claims = jwt.decode(token.reveal(), options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError):
        return Failure("reading the token", "NotAJwt", "it is not a signed JWT (three base64url parts)")
    return TokenFacts(token, header, claims)


def fetchable_issuer(iss: str) -> bool:
    """Fetch keys only from an https issuer (or http on loopback, for local IdPs), as tipd's config demands."""
    p = urlsplit(iss)
    return (p.scheme == "https" and bool(p.hostname)) or (p.scheme == "http" and is_loopback_host(p.hostname))


async def fetch_jwks(http: aiohttp.ClientSession, iss: str) -> dict[str, Any] | Failure:
    """The issuer's published keys: OIDC discovery at `iss` (the profile's issuer, not whatever URL a token
    names), then its jwks_uri."""
    from ..idp import oidc

    if not fetchable_issuer(iss):
        return Failure("OIDC discovery", "NotHttps", f"the issuer {iss!r} is not an https:// URL")
    try:
        meta = await oidc.discover(http, iss)
        return await oidc.fetch_jwks(http, meta.jwks_uri)
    except TipdError as e:
        return Failure("OIDC discovery", e.code, e.message)


def check_token(target: Target, token: TokenFacts | Failure, jwks: dict[str, Any] | Failure | None, now: float,
                skew: float) -> list[Check]:
    if isinstance(token, Failure):
        fix = ("Sign in (`tipctl login`) and make sure tipd is running, or pass the token with --jwt."
               if token.call == "tipd" else "Pass the IdP's id_token itself (header.payload.signature).")
        return [failure("token.read", f"no token to check: {token.message}", fix)]
    return [_signature(target, token, jwks), _issuer(target, token), _audience(target, token),
            _lifetime(token, now, skew), _jti(token)]


def _signature(target: Target, t: TokenFacts, jwks: dict[str, Any] | Failure | None) -> Check:
    from ..errors import LoginError
    from ..idp.verify import verify_id_token

    if jwks is None:
        return skipped("token.signature", "the issuer's keys were not fetched")
    if isinstance(jwks, Failure):
        return failure("token.signature", f"cannot get the keys of the profile's issuer: {jwks.message}",
                       f"Make sure {target.issuer.rstrip('/')}/.well-known/openid-configuration and its jwks_uri "
                       "answer from here (Identity Center and STS fetch them the same way).")
    aud = target.client_id if target.client_id in t.audiences else (t.audiences or [""])[0]
    try:
        verify_id_token(t.token.reveal(), jwks, issuer=t.iss, client_id=aud, nonce=None, leeway=_ANY_TIME)
    except LoginError as e:
        return failure("token.signature", f"the token does not verify against the issuer's keys: {e.message}",
                       "Use a token exactly as the IdP issued it, signed with a key its JWKS publishes "
                       "(with an asymmetric algorithm such as RS256).")
    return ok("token.signature", f"the signature verifies against the issuer's published keys "
                                 f"({t.header.get('alg')}, kid {t.header.get('kid')!r})")


def _issuer(target: Target, t: TokenFacts) -> Check:
    if t.iss == target.issuer:
        return ok("token.iss", f"iss is the profile's issuer {t.iss}")
    return failure("token.iss", f"iss is {t.iss!r}, but profile {target.profile}'s issuer is {target.issuer!r}",
                   "Set the profile's `issuer` to exactly the value the IdP puts in iss, or check a token of "
                   "the profile's IdP.")


def _audience(target: Target, t: TokenFacts) -> Check:
    if target.client_id in t.audiences:
        return ok("token.aud", f"aud includes the profile's client_id {target.client_id}")
    if target.exchange_token == "access_token" and t.audiences:
        return ok("token.aud", f"aud is {json.dumps(t.claims.get('aud'))}: the profile exchanges its access token, "
                               "whose aud the IdP chooses; AWS must accept that audience (checked below)")
    return failure("token.aud", f"aud is {json.dumps(t.claims.get('aud'))}, which does not include the profile's "
                                f"client_id {target.client_id!r}",
                   "Check a token issued to the profile's client, or set `client_id` to the IdP application "
                   "the token was issued to.")


def _lifetime(t: TokenFacts, now: float, skew: float) -> Check:
    exp, nbf, iat = (t.claims.get(k) for k in ("exp", "nbf", "iat"))
    fix_clock = (f"Get a fresh token; if it was just issued, this machine's clock or the IdP's is off by more "
                 f"than the {skew:g} s allowed (check NTP).")
    if not isinstance(exp, (int, float)):
        return failure("token.lifetime", "the token has no exp (expiry) claim",
                       "Configure the IdP to issue id_tokens with exp; AWS refuses tokens without one.")
    if now > exp + skew:
        return failure("token.lifetime", f"the token expired at {iso_utc(exp)} ({int(now - exp)} s ago)", fix_clock)
    for name, value in (("nbf", nbf), ("iat", iat)):
        if isinstance(value, (int, float)) and value > now + skew:
            return failure("token.lifetime", f"the token's {name} is {iso_utc(value)}, {int(value - now)} s in "
                                             "the future", fix_clock)
    return ok("token.lifetime", f"valid until {iso_utc(exp)} ({int(exp - now)} s from now, "
                                f"clock skew allowed: {skew:g} s)")


def _jti(t: TokenFacts) -> Check:
    jti = t.claims.get("jti")
    if isinstance(jti, str) and jti:
        return ok("token.jti", "the token has a jti (unique token id)")
    return warning("token.jti", "the token has no usable jti (unique token id) claim",
                   "Configure the IdP to add a jti to its tokens: replay protection of JWT-bearer grants "
                   "(RFC 7523) keys on it, and a service may refuse tokens without one.")
