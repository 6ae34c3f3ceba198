"""The thumbprint IAM wants for an OIDC provider: the SHA-1 of the top intermediate CA certificate that the
IdP's TLS servers present (IAM: "Obtain the thumbprint for an OpenID Connect identity provider").

IAM checks the JWKS host, and the discovery host too when it differs, so each host gets its own
thumbprint. The chain is the one the server sends (what `openssl s_client -showcerts` shows), read over a
verified connection so that a man in the middle cannot plant a thumbprint of their own."""
from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from dataclasses import dataclass

from .errors import TipdError
from .urls import split_url

TIMEOUT = 10.0
FALLBACK = "pass --thumbprint HEX instead"


class ThumbprintError(TipdError):
    code = "ThumbprintError"
    status = 502
    permanent = True


@dataclass(frozen=True)
class Thumbprint:
    host: str
    sha1: str
    #: the certificate the thumbprint is of, for the admin to check
    subject: str


def presented_chain(host: str, port: int, context: ssl.SSLContext, timeout: float = TIMEOUT) -> list[bytes]:
    """The DER certificates the server sends, leaf first."""
    where = f"{host}:{port}"
    try:
        with (socket.create_connection((host, port), timeout=timeout) as raw,
              context.wrap_socket(raw, server_hostname=host) as tls):
            return _unverified_chain(tls, where)
    except ssl.SSLCertVerificationError as e:
        raise ThumbprintError(f"the TLS certificate of {where} does not verify ({e.verify_message}): if the IdP uses "
                              f"a private CA, pass --ca-bundle FILE with it, or {FALLBACK}") from None
    except (OSError, ssl.SSLError) as e:
        raise ThumbprintError(f"cannot connect to {where} over TLS ({type(e).__name__}: {e}); {FALLBACK}") from None


def _unverified_chain(tls: ssl.SSLSocket, where: str) -> list[bytes]:
    public = getattr(tls, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        return [bytes(c) for c in public() or []]
    # Python 3.10-3.12 have the same call on the private _ssl object, returning certificate objects
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if private is None:
        raise ThumbprintError(f"this Python cannot read the certificate chain of {where}; {FALLBACK}")
    import _ssl

    return [c.public_bytes(_ssl.ENCODING_DER) for c in private() or []]


def top_intermediate(chain: list[bytes]) -> bytes:
    """The last certificate the server sends, skipping a self-signed root it may append: IAM asks for the
    top intermediate CA, not the root. A server that sends only its leaf leaves nothing else to take."""
    from cryptography import x509

    if not chain:
        raise ThumbprintError(f"the server sent no certificate; {FALLBACK}")
    certs = list(chain)
    while len(certs) > 1:
        last = x509.load_der_x509_certificate(certs[-1])
        if last.issuer != last.subject:
            break
        certs.pop()
    return certs[-1]


def thumbprint_of(host: str, port: int, context: ssl.SSLContext) -> Thumbprint:
    from cryptography import x509

    cert = top_intermediate(presented_chain(host, port, context))
    return Thumbprint(host=f"{host}:{port}", sha1=hashlib.sha1(cert).hexdigest(),
                      subject=x509.load_der_x509_certificate(cert).subject.rfc4514_string())


def _host_port(url: str) -> tuple[str, int]:
    try:
        parts = split_url(url)
    except ValueError as e:
        raise ThumbprintError(f"{url} is not a valid URL: {e}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ThumbprintError(f"{url} is not an https:// URL: IAM reaches OIDC providers only over https")
    return parts.hostname, parts.port or 443


def context(ca_bundle: str | None = None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as e:
        raise ThumbprintError(f"cannot load the CA bundle {ca_bundle}: {e}") from None


async def _jwks_uri(issuer: str, ctx: ssl.SSLContext) -> str:
    import aiohttp

    from .idp import oidc

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        try:
            return (await oidc.discover(http, issuer)).jwks_uri
        except TipdError as e:
            raise ThumbprintError(f"{e.message}; {FALLBACK}") from None


def fetch_thumbprints(issuer: str, ca_bundle: str | None = None) -> list[Thumbprint]:
    """One thumbprint per distinct host of the jwks_uri and of the issuer (discovery), JWKS host first."""
    ctx = context(ca_bundle)
    issuer_host = _host_port(issuer)
    # the issuer's host first: a TLS problem then gets its own clear sentence, not an HTTP client's
    issuer_print = thumbprint_of(*issuer_host, ctx)
    jwks_host = _host_port(asyncio.run(_jwks_uri(issuer, ctx)))
    if jwks_host == issuer_host:
        return [issuer_print]
    return [thumbprint_of(*jwks_host, ctx), issuer_print]
