"""Account profiles (tipd/accounts.py): lazy, shared, renewed only while in use, dropped at sign-out."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.support.account_rig import SOURCE, AccountRig, account_id
from tipd import accounts as accounts_mod
from tipd.config import parse_config
from tipd.errors import ConfigError, LoginRequired, UpstreamError
from tipd.refresh import Verdict
from tipd.session import ServesFromMemory

HOUR = 3600


def test_an_account_profile_is_a_profile_table_with_a_source() -> None:
    cfg = parse_config({"default_profile": "prod", "profiles": {
        "work": SOURCE, "prod": {"source": "work", "account_id": "111122223333", "role_name": "ReadOnly",
                                  "region": "eu-central-1"}}}, "test")
    assert list(cfg.idp_profiles) == ["work"] and list(cfg.accounts) == ["prod"]
    assert cfg.accounts["prod"].role_name == "ReadOnly" and cfg.accounts["prod"].region == "eu-central-1"
    assert cfg.profile_name(None) == "prod" and cfg.endpoint().profiles == ("work", "prod")
    assert cfg.accounts_of("work") == {"prod": cfg.accounts["prod"]}


@pytest.mark.parametrize("table, says", [
    ({"source": "nope", "account_id": "111122223333", "role_name": "R"}, "'nope' is not a configured profile"),
    ({"source": "work", "account_id": "1111", "role_name": "R"}, "prod.account_id: does not look right"),
    ({"source": "work", "account_id": "111122223333", "role_name": "R/x"}, "prod.role_name: does not look right"),
    ({"source": "work", "account_id": "111122223333", "role_name": "R", "issuer": "x"}, "unknown key"),
])
def test_a_bad_account_profile_is_a_sentence_naming_the_key(table: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"profiles": {"work": SOURCE, "prod": table}}, "test")
    assert says in e.value.message


def test_the_source_must_be_a_sign_in_profile() -> None:
    a = {"source": "work", "account_id": "111122223333", "role_name": "R"}
    with pytest.raises(ConfigError, match="'a' is an account profile"):
        parse_config({"profiles": {"work": SOURCE, "a": a, "b": dict(a, source="a")}}, "test")


async def test_300_configured_account_profiles_cost_no_upstream_calls_until_used() -> None:
    rig = AccountRig(300)
    await rig.start()
    aws_before = dict(rig.aws.calls)
    await rig.run(2 * HOUR)
    assert sum(rig.portal.calls.values()) == 0
    assert all(a.state == "cold" and a.served is None for a in rig.accounts.values())
    # the source's own schedule goes on as before (2 renewals an hour per stage), nothing more
    assert rig.aws.calls["CreateTokenWithIAM"] - aws_before["CreateTokenWithIAM"] == 4
    await rig.stop()


async def test_first_use_fetches_and_later_requests_are_served_from_memory() -> None:
    rig = AccountRig(2)
    await rig.start()
    a0, a1 = rig.accounts["acct0"], rig.accounts["acct1"]
    assert a0.cached_body() is None
    first = await a0.credentials()
    assert rig.portal.calls == {account_id(0): 1}
    assert a0.cached_body() == first.body and (await a0.credentials()) is first
    second = await a1.credentials()  # the other profile: other credentials, the same Identity Center token
    assert second.creds.access_key_id != first.creds.access_key_id
    assert second.creds.account_id == account_id(1)
    assert rig.portal.tokens_seen == ["idc-at", "idc-at"]
    assert rig.portal.calls == {account_id(0): 1, account_id(1): 1}
    assert a0.state == "fresh" and a0.status()["in_use"] is True
    await rig.stop()


async def test_only_the_profiles_in_use_are_renewed_and_they_share_one_identity_center_token() -> None:
    rig = AccountRig(300)
    await rig.start()
    for name in ("acct1", "acct2", "acct3"):
        rig.use(name, every=300)
    idc_before = rig.aws.calls["CreateTokenWithIAM"]
    await rig.run(4 * HOUR)
    assert not rig.failures
    assert set(rig.portal.calls) == {account_id(1), account_id(2), account_id(3)}
    # 1 h credentials renewed with 30 min left: 2 calls an hour each (+ the first fetch)
    assert all(2 * 4 - 1 <= n <= 2 * 4 + 1 for n in rig.portal.calls.values()), rig.portal.calls
    # renewed ahead: only each profile's first request waited for a fetch
    assert sorted(name for _, name in rig.waited) == ["acct1", "acct2", "acct3"]
    assert min(r for _, _, r in rig.handed) >= rig.refresh.min_remaining
    # the source's token is renewed on its own schedule, not once per account profile
    assert rig.aws.calls["CreateTokenWithIAM"] - idc_before == 8
    await rig.stop()


async def test_a_profile_no_longer_used_stops_being_renewed() -> None:
    rig = AccountRig(1)
    await rig.start()
    rig.use("acct0", every=300, stop_after=2 * HOUR)
    await rig.run(2 * HOUR)
    during = rig.portal.calls[account_id(0)]
    await rig.run(3 * HOUR)
    # what the client last held expires within the hour: at most one renewal after that, then none
    assert rig.portal.calls[account_id(0)] <= during + 1
    assert rig.accounts["acct0"].state in ("cold", "idle")
    await rig.stop()


async def test_logout_of_the_source_drops_the_account_credentials_at_once() -> None:
    rig = AccountRig(2)
    await rig.start()
    a0 = rig.accounts["acct0"]
    await a0.credentials()
    await rig.source.logout()
    assert a0.served is None and a0.cached_body() is None and a0.stage.held is None
    assert a0.state == "signed-out"
    with pytest.raises(LoginRequired, match="run `tipctl login work`"):
        await a0.credentials()
    await rig.stop()


async def test_a_sign_in_as_another_person_drops_the_account_credentials() -> None:
    rig = AccountRig(1)
    await rig.start()
    a0 = rig.accounts["acct0"]
    await a0.credentials()
    rig.idp.n += 1  # a new id_token (Identity Center takes each one once)
    tokens = rig.idp.tokens()
    rig.source.user = "someone-else@example.com"  # the sign-in being replaced was someone else's
    await rig.source.login(tokens)
    assert a0.served is None
    await rig.stop()


async def test_a_cold_fetch_that_hangs_ends_in_a_sentence_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts_mod, "FETCH_TIMEOUT", 0.2)
    rig = AccountRig(1)
    await rig.start()
    rig.portal.hold = asyncio.Event()
    with pytest.raises(UpstreamError) as e:
        await rig.accounts["acct0"].credentials()
    assert e.value.code == "PortalTimeout" and e.value.status == 504
    assert "did not hand out the role credentials within" in e.value.message
    rig.portal.hold.set()
    await rig.stop()


async def test_a_refusal_is_the_portal_sentence_and_is_not_retried_by_the_schedule() -> None:
    rig = AccountRig(1)
    await rig.start()
    rig.portal.fail = UpstreamError("GetRoleCredentials failed: ForbiddenException - you are not assigned",
                                    code="ForbiddenException", permanent=True, status=403)
    rig.use("acct0")
    await rig.run(HOUR)
    assert {code for _, code in rig.failures} == {"ForbiddenException"}
    assert rig.accounts["acct0"].state == "degraded"
    assert "not assigned" in (rig.accounts["acct0"].status()["last_error"] or "")
    await rig.stop()


async def test_an_unauthorized_token_is_renewed_once_and_the_fetch_tried_again() -> None:
    rig = AccountRig(1)
    await rig.start()
    real = rig.portal.get_role_credentials
    refused: list[int] = []

    async def once_unauthorized(**kw):
        if not refused:
            refused.append(1)
            raise UpstreamError("expired", code="UnauthorizedException", permanent=True)
        return await real(**kw)

    rig.portal.get_role_credentials = once_unauthorized  # type: ignore[method-assign]  # wrapped for this test
    idc = rig.aws.calls["CreateTokenWithIAM"]
    assert (await rig.accounts["acct0"].credentials()).creds.account_id == account_id(0)
    assert rig.aws.calls["CreateTokenWithIAM"] == idc + 1
    await rig.stop()


async def test_credentials_fetched_while_the_source_signs_out_are_thrown_away() -> None:
    rig = AccountRig(1)
    await rig.start()
    a0 = rig.accounts["acct0"]
    rig.portal.hold = asyncio.Event()
    fetch = asyncio.create_task(a0.credentials())
    while not rig.portal.calls:  # the portal call is under way
        await asyncio.sleep(0)
    await rig.source.logout()
    rig.portal.hold.set()
    with pytest.raises(LoginRequired, match="which signed out: run `tipctl login work`"):
        await fetch
    assert a0.served is None and a0.cached_body() is None
    await rig.stop()


async def test_account_and_sign_in_profiles_serve_through_the_one_shared_check() -> None:
    """One serving check (ServesFromMemory): both kinds of profile stop answering from memory at the same point,
    `min_remaining` before expiry."""
    rig = AccountRig(1)
    await rig.start()
    account, source = rig.accounts["acct0"], rig.source
    assert isinstance(account, ServesFromMemory) and isinstance(source, ServesFromMemory)
    await account.credentials()
    await source.credentials()
    for session in (account, source):
        s = session.served
        assert s is not None and session.fresh() is s and session.cached_body() == s.body
        left = s.creds.expires_at - rig.clock.time()
        session.served = dataclasses.replace(s, creds=dataclasses.replace(
            s.creds, expires_at=s.creds.expires_at - (left - rig.refresh.min_remaining) - 1))
        assert session.fresh() is None and session.cached_body() is None
        assert session.serving_verdict()[2] is not Verdict.SERVE
    await rig.stop()
