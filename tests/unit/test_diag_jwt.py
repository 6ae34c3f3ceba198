"""`tipctl diag`'s token checks: each problem of an IdP token gets its own line, on an injected clock."""
import time

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.aws import JwtIssuer
from tipd.diag.model import Failure, Status, Target
from tipd.diag.token import check_token, fetch_jwks, parse
from tipd.secret import Secret

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISS, AUD = "https://idp.example.com", "cid"
NOW = 1_800_000_000
TARGET = Target("work", ISS, AUD, "arn:aws:sso::123456789012:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd",
                "arn:aws:iam::123456789012:role/tip-oidc", "arn:aws:iam::123456789012:role/tip-enhanced", "us-east-1")


def jwks(key=KEY, kid="k1"):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="RS256")
    return {"keys": [jwk]}


def token(key=KEY, kid="k1", **over):
    claims = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW, "exp": NOW + 3600, "jti": "j-1",
              "email": "alice@example.com"}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    return Secret(jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid}))


def run(tok, keys=None, now=NOW, skew=60.0):
    checks = check_token(TARGET, parse(tok), jwks() if keys is None else keys, now, skew)
    return {c.id: c for c in checks}


def only_problem(checks, cid, status=Status.FAILURE):
    assert checks[cid].status == status, checks[cid]
    assert checks[cid].fix
    others = {k: c.status for k, c in checks.items() if k != cid}
    assert set(others.values()) == {Status.OK}, others
    return checks[cid]


def test_a_good_token_passes_every_check():
    checks = run(token())
    assert [c.id for c in checks.values()] == ["token.signature", "token.iss", "token.aud", "token.lifetime",
                                              "token.jti"]
    assert all(c.status == Status.OK and not c.fix for c in checks.values())
    assert "RS256" in checks["token.signature"].detail and "'k1'" in checks["token.signature"].detail


def test_expired_beyond_the_skew():
    c = only_problem(run(token(exp=NOW - 61)), "token.lifetime")
    assert "expired" in c.detail and "61 s ago" in c.detail and "clock" in c.fix


def test_expired_within_the_skew_is_fine_and_the_skew_is_configurable():
    assert run(token(exp=NOW - 30))["token.lifetime"].status == Status.OK
    assert run(token(exp=NOW - 30), skew=10)["token.lifetime"].status == Status.FAILURE


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(claim):
    c = only_problem(run(token(**{claim: NOW + 600})), "token.lifetime")
    assert claim in c.detail and "600 s in the future" in c.detail


def test_no_exp():
    # verify_id_token requires exp, so the signature line cannot pass either; the lifetime line says why
    checks = run(token(exp=None))
    assert checks["token.lifetime"].status == Status.FAILURE and "no exp" in checks["token.lifetime"].detail


def test_wrong_audience_is_one_failure():
    c = only_problem(run(token(aud="someone-else")), "token.aud")
    assert "someone-else" in c.detail and "'cid'" in c.detail and "client_id" in c.fix


def test_aud_may_be_a_list():
    assert run(token(aud=["other", AUD]))["token.aud"].status == Status.OK


def test_wrong_issuer_is_one_failure():
    c = only_problem(run(token(iss=ISS + "/")), "token.iss")
    assert repr(ISS + "/") in c.detail and "issuer" in c.fix


def test_a_signature_by_another_key_fails():
    c = only_problem(run(token(key=OTHER)), "token.signature")
    assert "signature" in c.detail


def test_a_key_the_issuer_does_not_publish_fails():
    c = only_problem(run(token(kid="unknown")), "token.signature")
    assert "does not publish" in c.detail


def test_the_signature_check_leaves_time_to_the_lifetime_check():
    checks = run(token(exp=NOW - 86400 * 365))
    assert checks["token.signature"].status == Status.OK
    assert checks["token.lifetime"].status == Status.FAILURE


@pytest.mark.parametrize("jti", [None, ""])
def test_a_missing_jti_is_a_warning(jti):
    c = only_problem(run(token(jti=jti)), "token.jti", Status.WARNING)
    assert "jti" in c.detail and "jti" in c.fix


def test_the_keys_cannot_be_fetched():
    checks = run(token(), keys=Failure("OIDC discovery", "IdPUnreachable", "cannot reach the IdP"))
    c = only_problem(checks, "token.signature")
    assert "cannot reach the IdP" in c.detail and ".well-known/openid-configuration" in c.fix


def test_not_a_jwt():
    checks = check_token(TARGET, parse(Secret("not.a-jwt")), None, NOW, 60)
    assert [(c.id, c.status) for c in checks] == [("token.read", Status.FAILURE)]
    assert "not a signed JWT" in checks[0].detail


def test_no_token_from_tipd():
    checks = check_token(TARGET, Failure("tipd", "DaemonNotRunning", "tipd is not running"), None, NOW, 60)
    assert checks[0].status == Status.FAILURE and "tipd is not running" in checks[0].detail
    assert "--jwt" in checks[0].fix


def test_the_token_never_shows_in_checks():
    tok = token(aud="someone-else", exp=NOW - 600)
    checks = run(tok, keys=jwks(OTHER))
    assert all(tok.reveal() not in f"{c.detail} {c.fix}" for c in checks.values())
    assert tok.reveal().split(".")[2] not in repr(parse(tok))


async def test_keys_come_from_the_issuers_discovery_document():
    with JwtIssuer() as issuer:
        async with aiohttp.ClientSession() as http:
            keys = await fetch_jwks(http, issuer.url)
        tok = Secret(issuer.token(aud=AUD, email="alice@example.com"))
        target = Target("work", issuer.url, AUD, TARGET.application_arn, TARGET.oidc_role_arn,
                        TARGET.enhanced_role_arn, "us-east-1")
        checks = check_token(target, parse(tok), keys, time.time(), 60)
    assert {c.status for c in checks} == {Status.OK}


async def test_keys_are_fetched_only_from_https_or_loopback():
    async with aiohttp.ClientSession() as http:
        f = await fetch_jwks(http, "http://idp.example.com")
    assert isinstance(f, Failure) and f.code == "NotHttps"


def test_a_jwt_file_of_megabytes_is_refused_without_reading_it_all(tmp_path):
    """`tipctl diag --jwt @/dev/zero` read until memory ran out (a MemoryError traceback)."""
    from tipd.cli.diag import MAX_JWT, _read_jwt
    from tipd.errors import ConfigError

    big = tmp_path / "big"
    big.write_text("a" * (2 * MAX_JWT))
    with pytest.raises(ConfigError, match="longer than"):
        _read_jwt(f"@{big}")
