import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tipd.errors import LoginError
from tipd.idp.verify import verify_id_token

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISS, AUD = "http://127.0.0.1:1", "cid"


def jwks(key=KEY, kid="k1"):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="RS256")
    return {"keys": [jwk]}


def token(key=KEY, kid="k1", alg="RS256", **over):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "nonce": "n1",
              "email": "alice@example.com"}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def check(tok, **kw):
    args: dict[str, Any] = dict(issuer=ISS, client_id=AUD, nonce="n1")
    args.update(kw)
    return verify_id_token(tok, jwks(), **args)


def test_valid_token_passes():
    assert check(token())["email"] == "alice@example.com"


@pytest.mark.parametrize("tok,words", [
    (lambda: token(nonce="other"), "nonce"),
    (lambda: token(nonce=None), "nonce"),
    (lambda: token(aud="someone-else"), "aud mismatch"),
    (lambda: token(iss="http://evil"), "iss mismatch"),
    (lambda: token(exp=int(time.time()) - 3600), "expired"),
    (lambda: token(key=OTHER), "signature"),
    (lambda: token(kid="unknown"), "key the IdP does not publish"),
    (lambda: jwt.encode({"iss": ISS, "aud": AUD, "sub": "x", "exp": 9e9, "iat": 1, "nonce": "n1"}, "s" * 32,
                        algorithm="HS256"), "does not accept"),
    (lambda: "not-a-jwt", "well-formed"),
])
def test_bad_tokens_are_refused_with_a_reason(tok, words):
    with pytest.raises(LoginError) as e:
        check(tok())
    assert words in e.value.message


def test_alg_none_is_refused():
    tok = jwt.encode({"iss": ISS, "aud": AUD, "sub": "x"}, None, algorithm="none")  # type: ignore[arg-type]  # no key for "none"
    with pytest.raises(LoginError):
        check(tok)


# -- what real IdPs put in their id_tokens (issue 10 section 1) --------------------------------------------
def test_aud_as_an_array_is_accepted_when_azp_names_this_client():
    """OIDC Core 2: with several audiences, azp names the client the token was issued to (Keycloak)."""
    assert check(token(aud=[AUD, "account"], azp=AUD))["aud"] == [AUD, "account"]
    assert check(token(aud=[AUD]))["sub"] == "alice"  # one audience: no azp needed


@pytest.mark.parametrize("claims,words", [
    ({"aud": [AUD, "account"]}, "azp"),                    # several audiences, no azp
    ({"aud": [AUD, "account"], "azp": "other"}, "azp mismatch"),
    ({"aud": ["account", "other"], "azp": AUD}, "aud mismatch"),
])
def test_aud_arrays_that_do_not_name_this_client_properly_are_refused(claims, words):
    with pytest.raises(LoginError) as e:
        check(token(**claims))
    assert words in e.value.message


def test_the_issuer_is_compared_byte_for_byte_trailing_slash_included():
    """AWS IAM and Identity Center compare iss exactly: Auth0's and JumpCloud's issuers end in '/'."""
    with pytest.raises(LoginError, match="iss mismatch"):
        check(token(iss=ISS + "/"))
    assert verify_id_token(token(iss=ISS + "/"), jwks(), issuer=ISS + "/", client_id=AUD, nonce="n1")
    with pytest.raises(LoginError, match="iss mismatch"):
        verify_id_token(token(), jwks(), issuer=ISS + "/", client_id=AUD, nonce="n1")


def test_no_jti_and_no_email_are_fine():
    """Entra has no jti (it has uti) and email only as an optional claim."""
    claims = check(token(email=None, uti="x"))
    assert "jti" not in claims and "email" not in claims


def test_es256_tokens_verify_against_an_ec_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    keys = {"keys": [dict(jwk, kid="e1", alg="ES256", use="sig"), jwks()["keys"][0]]}
    tok = token(key=key, kid="e1", alg="ES256")
    assert verify_id_token(tok, keys, issuer=ISS, client_id=AUD, nonce="n1")["sub"] == "alice"
    # an RS256 header with the EC key's kid: no key of that type under that kid
    with pytest.raises(LoginError):
        verify_id_token(token(kid="e1"), keys, issuer=ISS, client_id=AUD, nonce="n1")


def test_google_issuer_may_come_without_its_scheme():
    from tipd.idp.verify import accepted_issuers

    g = "https://accounts.google.com"
    assert accepted_issuers(g, "google") == [g, "accounts.google.com"]
    assert accepted_issuers(g, "oidc") == [g] and accepted_issuers(ISS, "google") == [ISS]
    tok = token(iss="accounts.google.com")
    assert verify_id_token(tok, jwks(), issuer=g, client_id=AUD, nonce="n1", issuers=accepted_issuers(g, "google"))


@pytest.mark.parametrize("exp", [1e400, "soon", None])
def test_an_exp_that_is_not_a_time_is_refused(exp):
    with pytest.raises(LoginError) as e:
        check(token(exp=exp))
    assert "exp" in e.value.message


# -- signing-key rotation: an unknown kid fetches the keys again, once, rate limited -----------------------
async def test_an_unknown_kid_refetches_the_jwks_once_and_not_again_at_once(aiohttp_server):
    import aiohttp
    from aiohttp import web

    from tests.support.profiles import profile
    from tipd.idp.oidc import JWKS_REFETCH_INTERVAL, IdpClient, ProviderMetadata

    published = {"keys": jwks()["keys"]}
    fetches = []

    async def serve(request):
        fetches.append(1)
        return web.json_response(published)

    app = web.Application()
    app.router.add_get("/jwks", serve)
    server = await aiohttp_server(app)
    meta = ProviderMetadata(ISS, ISS + "/a", ISS + "/t", str(server.make_url("/jwks")))
    now = [1000.0]
    async with aiohttp.ClientSession() as http:
        idp = IdpClient(http, profile(issuer=ISS, client_id=AUD), metadata=meta, monotonic=lambda: now[0])
        assert (await idp.verify_id_token(token(), "n1"))["sub"] == "alice" and len(fetches) == 1
        published["keys"] = published["keys"] + jwks(OTHER, kid="k2")["keys"]  # the IdP rotates
        assert (await idp.verify_id_token(token(key=OTHER, kid="k2"), "n1"))["sub"] == "alice"
        assert len(fetches) == 2
        with pytest.raises(LoginError, match="does not publish"):  # a kid nobody publishes: no fetch storm
            await idp.verify_id_token(token(kid="k3"), "n1")
        with pytest.raises(LoginError, match="does not publish"):
            await idp.verify_id_token(token(kid="k3"), "n1")
        assert len(fetches) == 2
        now[0] += JWKS_REFETCH_INTERVAL
        with pytest.raises(LoginError, match="does not publish"):
            await idp.verify_id_token(token(kid="k3"), "n1")
        assert len(fetches) == 3
