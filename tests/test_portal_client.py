"""tipd/portal.py against the AWS fake's portal API (real aiobotocore, moto behind): listing with its bounded
concurrency and cache, role credentials, and the one-sentence refusals."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.aws import ACCOUNT_ACCESS, AppConfig, FakeAWS, FakeConfig
from tests.support.harness import ALICE, ALICE_ID, APP, AUD, OTHER_APP, REGION, idc_token
from tipd.clock import Clock
from tipd.errors import TipdError, UpstreamError
from tipd.exchange import AwsChain, IdcToken
from tipd.portal import AccountAccessNotEnabled, Portal
from tipd.secret import Secret

APP_NO_SCOPE = OTHER_APP  # without sso:account:access
SCOPES = ["sts:identity_context", "openid", "aws", ACCOUNT_ACCESS]


@pytest.fixture
def fake(moto, issuer, monkeypatch):
    config = FakeConfig(applications={APP: AppConfig(issuer_url=issuer.url, audiences=[AUD], scopes=list(SCOPES)),
                                      APP_NO_SCOPE: AppConfig(issuer_url=issuer.url, audiences=[AUD])},
                        users={ALICE: ALICE_ID}, region=REGION)
    with FakeAWS(moto.url, config) as f:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f.url)
        yield f
    assert f.errors == []


def _token(fake, issuer, app=APP) -> IdcToken:
    r = idc_token(fake, issuer, app)
    return IdcToken(access_token=Secret(r["accessToken"]), refresh_token=None, identity_context=Secret("x"),
                    expires_at=time.time() + 3600, user_id=ALICE_ID, scopes=tuple(r.get("scope") or ()))


def _run(coro):
    return asyncio.run(coro)


def test_listing_100_accounts_concurrently_then_from_the_cache(fake, issuer):
    for i in range(100):
        fake.portal.assign(ALICE_ID, f"{100000000000 + i}", "ReadOnly", *(["Admin"] if i % 10 == 0 else []))
    token = _token(fake, issuer)
    portal = Portal(AwsChain(Clock()), concurrency=10)

    async def twice():
        started = time.monotonic()
        first = await portal.accounts(token, region=REGION, application_arn=APP)
        took = time.monotonic() - started
        second = await portal.accounts(token, region=REGION, application_arn=APP)
        return first, took, second

    first, took, second = _run(twice())
    assert len(first) == 100 and first == second
    assert first[0].account.account_id == "100000000000" and first[0].roles == ("Admin", "ReadOnly")
    assert first[1].roles == ("ReadOnly",)
    assert took < 10, f"listing 100 accounts took {took:.1f} s"
    assert fake.count("ListAccountRoles") == 100  # the second listing came from the cache
    assert fake.count("ListAccounts") == 1


def test_listing_concurrency_is_bounded(fake, issuer):
    for i in range(12):
        fake.portal.assign(ALICE_ID, f"{200000000000 + i}", "ReadOnly")
    token = _token(fake, issuer)
    fake.hold("ListAccountRoles")

    async def list_while_held():
        portal = Portal(AwsChain(Clock()), concurrency=3)
        task = asyncio.create_task(portal.accounts(token, region=REGION, application_arn=APP))
        await asyncio.get_running_loop().run_in_executor(None, lambda: fake.wait_until_held(count=3))
        held_at_most = 0
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:  # no condition to wait for: the bound must hold all along
            held_at_most = max(held_at_most, fake.held)
            await asyncio.sleep(0.05)
        fake.release()
        return held_at_most, await task

    held, listed = _run(list_while_held())
    assert held == 3 and len(listed) == 12


def test_role_credentials(fake, issuer):
    fake.portal.assign(ALICE_ID, "111111111111", "Developer")
    token = _token(fake, issuer)
    portal = Portal(AwsChain(Clock()))
    creds = _run(portal.get_role_credentials(region=REGION, access_token=token.access_token,
                                             account_id="111111111111", role_name="Developer",
                                             scopes=token.scopes, application_arn=APP))
    assert creds.account_id == "111111111111" and 3000 < creds.expires_at - time.time() <= 3600
    assert token.access_token.reveal() not in repr(creds)
    with pytest.raises(UpstreamError) as e:
        _run(portal.get_role_credentials(region=REGION, access_token=token.access_token, account_id="111111111111",
                                         role_name="Admin", scopes=token.scopes, application_arn=APP))
    assert e.value.permanent and "no role 'Admin' in account 111111111111" in e.value.message


def test_an_application_without_the_scope_is_one_sentence_before_any_call(fake, issuer):
    fake.portal.assign(ALICE_ID, "111111111111", "Developer")
    token = _token(fake, issuer, APP_NO_SCOPE)
    fake.clear_calls()
    portal = Portal(AwsChain(Clock()))
    with pytest.raises(AccountAccessNotEnabled) as e:
        _run(portal.accounts(token, region=REGION, application_arn=APP_NO_SCOPE))
    msg = e.value.message
    assert f"enable the {ACCOUNT_ACCESS} scope on application {APP_NO_SCOPE}" in msg
    assert "organization instance" in msg and msg.count(". ") == 0 and msg.endswith(".")
    assert fake.count("ListAccounts") == 0


@pytest.mark.parametrize("answer", ["UnauthorizedException", "ForbiddenException"])
def test_scopes_not_reported_still_name_the_scope(fake, issuer, answer):
    fake.portal.scope_error = answer
    token = _token(fake, issuer, APP_NO_SCOPE)
    unreported = IdcToken(access_token=token.access_token, refresh_token=None, identity_context=Secret("x"),
                          expires_at=token.expires_at)
    with pytest.raises(TipdError) as e:
        _run(Portal(AwsChain(Clock())).accounts(unreported, region=REGION, application_arn=APP_NO_SCOPE))
    assert e.value.code == answer and ACCOUNT_ACCESS in e.value.message
    assert token.access_token.reveal() not in e.value.message


def test_an_account_instance_is_the_same_sentence(fake, issuer):
    fake.config.instance_kind = "account"
    token = _token(fake, issuer)
    with pytest.raises(AccountAccessNotEnabled) as e:
        _run(Portal(AwsChain(Clock())).accounts(token, region=REGION, application_arn=APP))
    assert "an account instance cannot" in e.value.message


def test_console_signin_url_from_role_credentials(fake, issuer):
    import urllib.parse

    from tipd.console import signin_url

    fake.portal.assign(ALICE_ID, "111111111111", "Developer")
    token = _token(fake, issuer)
    creds = _run(Portal(AwsChain(Clock())).get_role_credentials(
        region=REGION, access_token=token.access_token, account_id="111111111111", role_name="Developer"))
    url = signin_url(creds.container_json(), region="eu-west-1", service="s3", federation=fake.url + "/federation")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url.reveal()).query))
    assert q["SigninToken"] in fake.portal.issued_signin_tokens
    assert q["Destination"] == "https://console.aws.amazon.com/s3/home?region=eu-west-1"
    assert q["SigninToken"] not in repr(url) and q["SigninToken"] not in str(url)
    bad = dict(creds.container_json(), SecretAccessKey="wrong")
    with pytest.raises(TipdError) as e:
        signin_url(bad, region="eu-west-1", federation=fake.url + "/federation")
    assert "refused these credentials (HTTP 400)" in e.value.message
    for region, service in (("nowhere", None), ("eu-west-1", "s3/../../evil")):
        with pytest.raises(TipdError):
            signin_url(creds.container_json(), region=region, service=service, federation=fake.url + "/federation")


def test_the_browser_gets_a_private_page_not_the_url(tmp_path):
    """BROWSER is handed a file:// path to a 0600 page that redirects; the sign-in URL is on no command line."""
    import os
    import stat
    import subprocess
    import sys
    import textwrap

    seen = tmp_path / "argv"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    browser.chmod(0o700)
    secret_url = "https://signin.aws.amazon.com/federation?Action=login&SigninToken=SECRET-TOKEN-123"
    code = textwrap.dedent(f"""
        from pathlib import Path
        from tipd.cli.console import _open
        from tipd.console import redirect_page
        from tipd.secret import Secret
        raise SystemExit(_open(Secret({secret_url!r}), Path({str(tmp_path / 'pages')!r}), redirect_page))
    """)
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, BROWSER=str(browser)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    arg = seen.read_text()
    assert arg.startswith("file://") and "SECRET-TOKEN" not in arg and "SECRET-TOKEN" not in r.stdout
    page = tmp_path / "pages" / arg.rsplit("/", 1)[1]
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pages").stat().st_mode) == 0o700
    assert "SigninToken=SECRET-TOKEN-123" in page.read_text()


def test_throttling_is_retried_then_a_sentence(fake, issuer):
    fake.portal.assign(ALICE_ID, "111111111111", "Developer")
    token = _token(fake, issuer)
    fake.inject("ListAccountRoles", "TooManyRequestsException", count=1, status=429)
    listed = _run(Portal(AwsChain(Clock())).accounts(token, region=REGION, application_arn=APP))
    assert [a.roles for a in listed] == [("Developer",)]  # botocore's standard retry took the 429
    fake.inject("ListAccounts", "TooManyRequestsException", count=-1, status=429)
    with pytest.raises(UpstreamError) as e:
        _run(Portal(AwsChain(Clock())).accounts(token, region=REGION, application_arn=APP))
    assert "throttling" in e.value.message and not e.value.permanent
    fake.clear_faults()


def test_attack_hostile_portal_answers_are_bounded_and_checked(fake, issuer):
    """A hostile (or broken) portal: an account id that is not one (its ListAccountRoles would be a 400 that sank
    the whole listing), a 100 KB account name opening with a terminal escape sequence (OSC 52: the clipboard), a
    role name carrying a newline and an INI section (it would reach profile names and ~/.aws/config), one with a
    look-alike letter, then 10,001 accounts in pages of 5,000 whatever maxResults asked (each would cost a
    ListAccountRoles call)."""
    fake.portal.assign(ALICE_ID, "300000000000", "ReadOnly", "Admin\n[profile evil]", "x" * 65,
                       "\u0410dmin")  # a Cyrillic A: looks like Admin
    fake.portal.account("12345", name="not-an-account")
    fake.portal.assign(ALICE_ID, "12345", "ReadOnly")
    fake.portal.account("300000000001", name="\x1b]52;c;ZXZpbA==\x07" + "n" * 100_000)
    fake.portal.assign(ALICE_ID, "300000000001", "ReadOnly")
    token = _token(fake, issuer)
    listed = _run(Portal(AwsChain(Clock())).accounts(token, region=REGION, application_arn=APP))
    assert sorted(a.account.account_id for a in listed) == ["300000000000", "300000000001"]
    for a in listed:
        assert a.roles == ("ReadOnly",)
        assert len(a.account.name) <= 256 and a.account.name.isprintable()  # no escape sequence for a terminal
    assert fake.count("ListAccountRoles") == 2  # never asked about "12345"

    fake.portal.clear()
    for i in range(10_001):
        fake.portal.assign(ALICE_ID, f"{400000000000 + i}", "ReadOnly")
    fake.portal.forced_page_size = 5_000  # under the 1 MiB answer bound: 3 pages
    calls = fake.count("ListAccountRoles")
    with pytest.raises(TipdError, match="more than 10000 accounts"):
        _run(Portal(AwsChain(Clock())).accounts(token, region=REGION, application_arn=APP))
    assert fake.count("ListAccountRoles") == calls
