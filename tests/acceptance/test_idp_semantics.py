"""What real IdPs demand of the session, end to end: the real tipd and tipctl, the test IdP with the switches of
the IdPs that behave so (tests/idp/switches.mjs cites the vendor pages), moto and the Identity Center fake.

- a grant without offline_access (Keycloak, Ping) renews: the refresh leaves `scope` out, or sends exactly the
  granted scope to an IdP that requires one (Entra);
- a refresh without an id_token (PingFederate's default) ends, once AWS needs a new token, in the sentence that
  names the setting, and works with `exchange_token = "access_token"` where access tokens are JWTs;
- a restart resumes from the stored grant, with the Identity Center refresh token (no new jwt-bearer exchange);
- a config whose issuer was changed never receives the stored refresh token (issue 11 #7)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.idp_rig import BOTO3, REFRESH, Rig
from tests.support.stack import Tipd, in_tipd_env, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance

@pytest.fixture
def rigs(fake):
    made: list[Rig] = []

    def make(*a, **kw) -> Rig:
        r = Rig(fake, *a, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def renewed(rig: Rig, what: str = "idp-tokens", times: int = 1) -> None:
    """Wait until the stage has been renewed `times` more times with no sign-in, credentials still served."""
    start = rig.stage(what)["refreshes"]
    wait_for(lambda: rig.stage(what)["refreshes"] >= start + times, timeout=120, what=f"{what} renewed",
             proc=rig.tipd.proc if rig.tipd else None)
    s = status(rig.home)["profiles"][0]
    assert s["state"] in ("fresh", "refreshing", "degraded") and s["last_error"] is None, s


def the_profile(rig: Rig) -> dict[str, Any]:
    found: dict[str, Any] = status(rig.home)["profiles"][0]
    return found


def test_a_grant_without_offline_access_renews_and_survives_a_restart(rigs):
    """The issue's bug: the IdP left offline_access out of the grant and still issued a refresh token; the refresh
    re-sent the configured scopes and got `invalid_scope: refresh token missing requested scope`."""
    rig = rigs({"drop_scopes": ["offline_access"], "refresh_token_issue": "always", "refresh_scope": "subset"}).start()
    tipctl(rig.home, "login")
    renewed(rig)
    assert rig.whoami().endswith("/tip-9067e4a2-alice")
    rig.restart()
    wait_for(lambda: the_profile(rig)["state"] == "fresh", timeout=60, what="fresh after the restart")
    assert rig.whoami().endswith("/tip-9067e4a2-alice")


def test_an_idp_that_requires_a_refresh_scope_gets_exactly_the_granted_one(rigs):
    rig = rigs({"drop_scopes": ["offline_access"], "refresh_token_issue": "always", "refresh_scope": "required"},
               profile_extra='refresh_scope = "granted"').start()
    tipctl(rig.home, "login")
    renewed(rig)
    assert rig.whoami().endswith("/tip-9067e4a2-alice")


def test_without_id_tokens_on_refresh_the_sentence_names_the_setting_and_nothing_is_lost(rigs):
    rig = rigs({"refresh_id_token": False}).start()
    tipctl(rig.home, "login")
    first = rig.whoami()
    wait_for(lambda: the_profile(rig)["state"] == "login-required", timeout=120, what="the sentence")
    err = the_profile(rig)["last_error"]
    assert "'Return ID Token On Refresh Grant'" in err and 'exchange_token = "access_token"' in err, err
    assert "sign in again" not in err  # no sign-in would help: the IdP's setting must change
    assert first.endswith("/tip-9067e4a2-alice")


def test_the_access_token_is_exchanged_when_the_profile_says_so(rigs):
    rig = rigs({"refresh_id_token": False, "access_token_format": "jwt"},
               profile_extra='exchange_token = "access_token"', claim="sub").start()
    tipctl(rig.home, "login")
    # the IdP renews with no id_token at all: only its access tokens can have gone to AWS since (the fake
    # verifies each against the IdP's JWKS and maps its `sub`); the id_token setting ends in the sentence above
    renewed(rig)
    renewed(rig, "bootstrap-session", times=1)
    assert rig.whoami().endswith("/tip-9067e4a2-alice")


def test_a_restart_resumes_from_the_stored_grant_with_the_identity_center_refresh_token(rigs, fake):
    rig = rigs({}).start()
    tipctl(rig.home, "login")
    stored = json.loads((rig.home.state_dir / "tokens" / "work.json").read_text())
    assert stored["issuer"] == rig.idp.issuer and stored["client_id"] == rig.idp.client_id
    assert stored["idc_refresh_token"] and stored["idc_application"] == rig.app
    rig.tipd.stop()
    fake.clear_calls()
    rig.tipd = Tipd(rig.home).start()
    assert rig.whoami().endswith("/tip-9067e4a2-alice")  # no sign-in
    grants = [c.params["grantType"] for c in fake.calls if c.operation == "CreateTokenWithIAM"]
    assert grants[:1] == ["refresh_token"] and "urn:ietf:params:oauth:grant-type:jwt-bearer" not in grants


def test_a_changed_issuer_never_receives_the_stored_refresh_token(rigs):
    """Issue 11 #7: whoever can point a profile's issuer elsewhere must not get the stored token there."""
    rig = rigs({}).start()
    tipctl(rig.home, "login")
    rig.tipd.stop()
    other = rigs({})  # a listener of someone else's, speaking OIDC
    before = other.idp.stats().get("/token", 0)
    rig.home.write_config(other.idp.issuer, rig.idp.client_id, REFRESH)
    rig.tipd = Tipd(rig.home).start()
    s = the_profile(rig)
    assert s["state"] == "login-required" and "sign in again" in s["last_error"], s
    assert rig.idp.issuer in s["last_error"] and other.idp.issuer in s["last_error"]
    assert other.idp.stats().get("/token", 0) == before  # nothing was sent to it
    r = in_tipd_env(rig.home, BOTO3)
    assert r.returncode != 0

