"""Fixtures of the real test stack: the npm oidc-provider IdP, moto in server mode, the project's AWS fake,
and an isolated home for the real tipd / tipctl processes."""
from __future__ import annotations

import pytest

from tests.support.stack import APP_ARN, Home, Tipd


@pytest.fixture(scope="session")
def idp():
    from tests.support.idp import IdP

    with IdP() as server:
        yield server


@pytest.fixture(scope="session")
def moto():
    from tests.support.aws import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def issuer():
    """An OIDC issuer in this process (discovery and JWKS on loopback) minting the JWTs a test hands to the AWS
    fake; one per module, so a module's key rotations stay its own."""
    from tests.support.aws import JwtIssuer

    with JwtIssuer() as server:
        yield server


@pytest.fixture(scope="session")
def fake(idp, moto):
    from tests.support.aws import AppConfig, FakeAWS, FakeConfig

    config = FakeConfig(
        applications={APP_ARN: AppConfig(issuer_url=idp.issuer, audiences=[idp.client_id], claim="email")},
        users={"alice@example.com": "9067e4a2-alice", "bob@example.com": "9067e4a2-bob"},
    )
    with FakeAWS(moto.url, config) as server:
        yield server


@pytest.fixture
def home(idp, fake):
    h = Home(idp.issuer, idp.client_id, fake.url)
    yield h
    h.cleanup()


@pytest.fixture
def tipd(home):
    d = Tipd(home).start()
    yield d
    d.stop()
