import time

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
    args = dict(issuer=ISS, client_id=AUD, nonce="n1")
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
    tok = jwt.encode({"iss": ISS, "aud": AUD, "sub": "x"}, None, algorithm="none")
    with pytest.raises(LoginError):
        check(tok)
