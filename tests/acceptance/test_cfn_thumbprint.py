"""`tipctl cfn-template --fetch-thumbprint` against real TLS servers on 127.0.0.1 with a generated
root CA -> intermediate CA -> leaf chain, serving discovery and JWKS: the thumbprint is the intermediate's."""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.net import free_port
from tests.support.stack import BIN
from tipd.thumbprint import ThumbprintError, top_intermediate

pytestmark = pytest.mark.acceptance


@dataclass
class Cert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.der).hexdigest()


def issue(name: str, issuer: Cert | None, *, ca: bool) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    # self-signed: a Cert of no certificate yet lends its key
    return Cert(b.sign((issuer or Cert(None, key)).key, hashes.SHA256()), key)  # type: ignore[arg-type]


@dataclass
class Pki:
    root: Cert
    intermediate: Cert
    leaf: Cert


def pki(name: str) -> Pki:
    root = issue(f"{name} Root CA", None, ca=True)
    inter = issue(f"{name} Intermediate CA", root, ca=True)
    return Pki(root, inter, issue("localhost", inter, ca=False))


class IdPServer:
    """An https server answering discovery (naming `issuer` and `jwks_uri`) and a JWKS, presenting `chain`."""

    def __init__(self, tmp: Path, chain: list[Cert], *, jwks_uri: str | None = None) -> None:
        self.port = free_port()
        self.issuer = f"https://127.0.0.1:{self.port}"
        docs = {"/.well-known/openid-configuration": {
                    "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/auth",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": jwks_uri or f"{self.issuer}/jwks"},
                "/jwks": {"keys": []}}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps(docs.get(self.path)).encode()
                self.send_response(200 if self.path in docs else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        certfile, keyfile = tmp / f"chain-{self.port}.pem", tmp / f"key-{self.port}.pem"
        certfile.write_bytes(b"".join(c.pem for c in chain))
        keyfile.write_bytes(chain[0].key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> IdPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def tipctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIPD_", "SSL_CERT_"))}
    return subprocess.run([str(BIN / "tipctl"), "cfn-template", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def bundle(tmp: Path, *pkis: Pki) -> str:
    path = tmp / "roots.pem"
    path.write_bytes(b"".join(p.root.pem for p in pkis))
    return str(path)


def provider(out: str) -> dict[str, Any]:
    props: dict[str, Any] = yaml.safe_load(out)["Resources"]["OidcProvider"]["Properties"]
    return props


@pytest.mark.parametrize("send_root", [False, True], ids=["leaf+intermediate", "leaf+intermediate+root"])
def test_the_thumbprint_is_the_intermediate_not_the_leaf(tmp_path, send_root):
    p = pki("Corp")
    chain = [p.leaf, p.intermediate] + ([p.root] if send_root else [])
    with IdPServer(tmp_path, chain) as idp:
        r = tipctl(idp.issuer, "tipd-client", "--fetch-thumbprint", "--ca-bundle", bundle(tmp_path, p))
    assert r.returncode == 0, r.stderr
    assert provider(r.stdout) == {"Url": idp.issuer, "ClientIdList": ["tipd-client"],
                                  "ThumbprintList": [p.intermediate.sha1]}
    assert p.leaf.sha1 not in r.stdout and p.root.sha1 not in r.stdout
    assert f"thumbprint of 127.0.0.1:{idp.port}: {p.intermediate.sha1} (CN=Corp Intermediate CA)" in r.stderr


def test_a_jwks_host_of_its_own_gets_its_own_thumbprint(tmp_path):
    disc, keys = pki("Discovery"), pki("Keys")
    with IdPServer(tmp_path, [keys.leaf, keys.intermediate]) as jwks_host:
        # the JWKS on another host (localhost, not 127.0.0.1) with another CA: IAM checks both hosts
        jwks_uri = f"https://localhost:{jwks_host.port}/jwks"
        with IdPServer(tmp_path, [disc.leaf, disc.intermediate], jwks_uri=jwks_uri) as idp:
            r = tipctl(idp.issuer, "tipd-client", "--fetch-thumbprint", "--ca-bundle", bundle(tmp_path, disc, keys))
    assert r.returncode == 0, r.stderr
    assert provider(r.stdout)["ThumbprintList"] == [keys.intermediate.sha1, disc.intermediate.sha1]


def test_an_unreachable_host_is_a_clear_error():
    port = free_port()  # nothing listens there
    r = tipctl(f"https://127.0.0.1:{port}", "tipd-client", "--fetch-thumbprint")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"tipctl: cannot connect to 127.0.0.1:{port} over TLS (ConnectionRefusedError: [Errno 111] "
                        "Connection refused); pass --thumbprint HEX instead\n")


def test_an_untrusted_certificate_is_refused_not_fingerprinted(tmp_path):
    p = pki("Unknown")
    with IdPServer(tmp_path, [p.leaf, p.intermediate]) as idp:
        r = tipctl(idp.issuer, "tipd-client", "--fetch-thumbprint")  # the system CAs do not know this root
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"tipctl: the TLS certificate of 127.0.0.1:{idp.port} does not verify")
    assert "--ca-bundle FILE" in r.stderr and "--thumbprint HEX" in r.stderr and r.stderr.count("\n") == 1


def test_discovery_that_fails_is_a_clear_error(tmp_path):
    p = pki("Corp")
    with IdPServer(tmp_path, [p.leaf, p.intermediate]) as idp:
        r = tipctl(idp.issuer + "/tenant", "tipd-client", "--fetch-thumbprint", "--ca-bundle", bundle(tmp_path, p))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"tipctl: discovery at {idp.issuer}/tenant/.well-known/openid-configuration: "
                               "the IdP answered HTTP 404")
    assert r.stderr.rstrip().endswith("pass --thumbprint HEX instead")


def test_top_intermediate_of_the_chains_a_server_may_send():
    p = pki("Corp")
    assert top_intermediate([p.leaf.der, p.intermediate.der]) == p.intermediate.der
    assert top_intermediate([p.leaf.der, p.intermediate.der, p.root.der]) == p.intermediate.der
    # a server that sends only its leaf: that is the last (and only) certificate, as IAM's procedure reads it
    assert top_intermediate([p.leaf.der]) == p.leaf.der
    with pytest.raises(ThumbprintError, match="sent no certificate"):
        top_intermediate([])
