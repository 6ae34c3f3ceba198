"""The session's IdP logic against fakes: a refresh never asks for more than the grant; a refresh without an
id_token signs no one out until AWS needs a new one, and then says what to change; the access token as the
exchanged JWT; a restart resumes from the stored grant (with the Identity Center refresh token); a stored token
goes only to the issuer and client it came from."""
from __future__ import annotations

import asyncio

import jwt
import pytest

from tests.support.fakes import FakeAws, FakeIdp, VirtualClock
from tests.support.profiles import PROFILE
from tests.support.session_rig import MemStore
from tipd.config import RefreshConfig, parse_config
from tipd.errors import ConfigError, LoginRequired, TipdError
from tipd.secret import Secret
from tipd.session import ProfileSession, State
from tipd.store import ClientSecret, FileStore, Grant

HOUR = 3600


class RecordingAws(FakeAws):
    """FakeAws that remembers which Identity Center grant each CreateTokenWithIAM used."""

    def __init__(self, clock, **kw):
        super().__init__(clock, **kw)
        self.idc_grants: list[str] = []
        self.web_identity: list[str] = []

    async def assume_role_with_web_identity(self, *, id_token, **kw):
        self.web_identity.append(id_token.reveal())
        return await super().assume_role_with_web_identity(id_token=id_token, **kw)

    async def create_token_with_iam(self, *, assertion=None, refresh_token=None, **kw):
        self.idc_grants.append("jwt-bearer" if assertion is not None else f"refresh:{refresh_token.reveal()}")
        return await super().create_token_with_iam(assertion=assertion, refresh_token=refresh_token, **kw)


class Rig:
    def __init__(self, *, store=None, clock=None, idp=None, **settings):
        self.clock = clock or VirtualClock()
        self.idp = idp or FakeIdp(self.clock, ttl=HOUR)
        self.aws = RecordingAws(self.clock)
        self.store = store or MemStore()
        cfg = parse_config({"profiles": {"work": {**PROFILE, **settings}}}, "test")
        self.profile = cfg.idp_profile("work")
        self.session = ProfileSession("work", self.profile, RefreshConfig(), store=self.store, aws=self.aws,
                                      idp=self.idp, clock=self.clock)
        self.task: asyncio.Task[None] | None = None

    async def run(self, seconds):
        if self.task is None:
            self.task = asyncio.create_task(self.session.run())
        await self.clock.run_until(self.clock.t + seconds)

    async def stop(self):
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


# -- the scope of a refresh -------------------------------------------------------------------------------
async def test_a_grant_without_offline_access_keeps_renewing():
    """The issue's bug: the IdP left offline_access out of the grant (and still issued a refresh token); the
    refresh re-sent the configured scopes and got invalid_scope at the first renewal."""
    rig = Rig()
    rig.idp.granted = "openid email"
    await rig.session.login(rig.idp.tokens())
    await rig.run(6 * HOUR)
    await rig.stop()
    assert rig.idp.calls >= 5 and set(rig.idp.scopes_sent) == {None}  # scope left out: the grant stays
    assert rig.session.state == State.FRESH and rig.session.login_required is None


async def test_an_idp_that_requires_a_scope_gets_exactly_the_granted_one():
    rig = Rig(refresh_scope="granted")
    rig.idp.granted = "openid email"
    rig.idp.scope_rule = "required"
    await rig.session.login(rig.idp.tokens())
    await rig.run(6 * HOUR)
    await rig.stop()
    assert rig.idp.calls >= 5 and set(rig.idp.scopes_sent) == {"openid email"}
    assert rig.session.state == State.FRESH
    assert rig.store.tokens["work"].scope == "openid email"  # remembered across restarts


@pytest.mark.parametrize("configured,rule,then", [("omit", "required", "openid email"), ("granted", "rejected", None)])
async def test_an_idp_that_wants_the_other_way_gets_it_after_one_refusal(configured, rule, then):
    rig = Rig(refresh_scope=configured)
    rig.idp.granted = "openid email"
    rig.idp.scope_rule = rule
    await rig.session.login(rig.idp.tokens())
    await rig.run(6 * HOUR)
    await rig.stop()
    assert rig.session.state == State.FRESH and rig.session.login_required is None
    first = rig.idp.scopes_sent[0]
    assert (first is None) == (configured == "omit")  # the profile's way first, refused once
    assert set(rig.idp.scopes_sent[1:]) == {then} and rig.idp.calls >= 5  # then the other way, kept


async def test_entra_keeps_offline_access_it_never_lists():
    rig = Rig(provider="entra")
    rig.idp.granted = "openid profile email User.Read"  # Entra's answer leaves offline_access out
    await rig.session.login(rig.idp.tokens())
    assert rig.session.granted_scope == "openid profile email User.Read offline_access"


# -- no id_token on a refresh ----------------------------------------------------------------------------
async def test_a_refresh_without_id_token_signs_no_one_out_until_aws_needs_one():
    rig = Rig()
    rig.idp.id_token_on_refresh = False  # PingFederate's default
    await rig.session.login(rig.idp.tokens())
    await rig.session.idp.refresh()  # a renewal that brings no id_token is no error by itself
    assert rig.session.idp.held is not None
    assert rig.session.login_required is None and rig.session.idp.held.value.assertion is not None
    await rig.run(25 * 60)
    assert rig.session.state == State.FRESH
    # the login's id_token expires at 1 h; the bootstrap session is renewed every 27 to 30 min (the renewal's random
    # head start): within 2 h one renewal needs a new JWT
    await rig.run(2 * HOUR)
    await rig.stop()
    err = rig.session.login_required
    assert err is not None and err.code == "NoIdTokenOnRefresh"
    assert "Return ID Token On Refresh Grant" in err.message and 'exchange_token = "access_token"' in err.message


async def test_the_access_token_is_exchanged_when_the_profile_says_so():
    rig = Rig(exchange_token="access_token")
    rig.idp.id_token_on_refresh = False
    rig.idp.jwt_access_tokens = True
    await rig.session.login(rig.idp.tokens())
    await rig.run(12 * HOUR)
    await rig.stop()
    assert rig.session.state == State.FRESH and rig.session.user == "alice@example.com"
    kinds = {jwt.decode(t, options={"verify_signature": False})["kind"] for t in rig.aws.web_identity}
    assert kinds == {"access"} and len(rig.aws.web_identity) >= 20


async def test_an_access_token_that_is_not_a_jwt_is_a_clear_error():
    rig = Rig(exchange_token="access_token")
    with pytest.raises(TipdError) as e:
        await rig.session.login(rig.idp.tokens())  # access tokens "at-0": opaque
    assert "not a JWT" in e.value.message and 'exchange_token = "id_token"' in e.value.message


# -- restart from the store ------------------------------------------------------------------------------
async def test_a_restart_resumes_with_the_stored_identity_center_refresh_token(tmp_path):
    store = FileStore(tmp_path)
    first = Rig(store=store)
    await first.session.login(first.idp.tokens())
    assert first.aws.idc_grants == ["jwt-bearer"]
    stored = await store.load("work")
    assert stored is not None
    assert stored.idc_refresh_token is not None and stored.idc_application == first.profile.application_arn

    second = Rig(store=store, clock=first.clock, idp=first.idp)  # a new daemon, the same IdP and store
    await second.session.start()
    await second.run(60)
    await second.stop()
    assert second.session.state == State.FRESH
    assert second.aws.idc_grants == [f"refresh:{stored.idc_refresh_token.reveal()}"]  # no new jwt-bearer


async def test_a_stored_token_is_never_sent_to_another_issuer(tmp_path):
    """Issue 11 #7: a config whose issuer was changed must not receive the stored refresh token."""
    store = FileStore(tmp_path)
    first = Rig(store=store)
    await first.session.login(first.idp.tokens())
    evil = Rig(store=store, issuer="https://evil.example.com")
    await evil.session.start()
    await evil.run(60)
    await evil.stop()
    assert evil.idp.calls == 0 and evil.session.state == State.LOGIN_REQUIRED
    assert evil.session.login_required is not None
    msg = evil.session.login_required.message
    assert "sign in again" in msg and "https://evil.example.com" in msg
    with pytest.raises(LoginRequired):
        await evil.session.credentials()
    kept = await store.load("work")
    assert kept is not None and kept.refresh_token == first.session.refresh_token  # kept for the right config


async def test_a_record_of_before_is_used_and_bound_at_its_first_renewal(tmp_path):
    (tmp_path / "work.json").write_text('{"refresh_token": "rt-0"}')
    rig = Rig(store=FileStore(tmp_path))
    await rig.session.start()
    await rig.run(60)
    await rig.stop()
    assert rig.session.state == State.FRESH
    grant = await FileStore(tmp_path).load("work")
    assert grant is not None
    assert grant.issuer == rig.profile.issuer and grant.client_id == rig.profile.client_id
    assert grant.refresh_token == Secret(rig.idp.live)


# -- the store's records ---------------------------------------------------------------------------------
def test_records_round_trip_and_never_show_secrets():
    g = Grant(Secret("rt"), "https://i", "c", "openid").with_idc(Secret("irt"), "arn:app")
    assert Grant.loads(g.dumps()) == g and "rt" not in repr(g).replace("idc", "")
    assert Grant.loads("bare-token-of-before").legacy  # the keyring's value before records
    assert g.idc_for("arn:app") == Secret("irt") and g.idc_for("arn:other") is None
    assert not g.bound_to("https://other", "c") and g.bound_to("https://i", "c")


async def test_a_damaged_record_reads_as_no_sign_in(tmp_path):
    for text in ("{not json", '{"refresh_token": 5}', "x" * 100_000, "bare"):
        (tmp_path / "work.json").write_text(text)
        assert await FileStore(tmp_path).load("work") is None


async def test_a_record_nested_thousands_deep_reads_as_damaged_not_a_recursion_error(tmp_path):
    """30,000 nested arrays fit in the 64 KiB record limit and made json raise RecursionError: for the client
    secret, a traceback at tipd's start."""
    deep = "[" * 30_000 + "]" * 30_000
    (tmp_path / "work.json").write_text('{"refresh_token": "r", "a": ' + deep + "}")
    (tmp_path / "work.client-secret").write_text('{"client_secret": "s", "issuer": "i", "client_id": "c", "a": '
                                                 + deep + "}")
    store = FileStore(tmp_path)
    assert await store.load("work") is None and await store.load_secret("work") is None
    with pytest.raises(ValueError):
        Grant.loads('{"refresh_token": "r", "a": ' + deep + "}")  # the keyring's records go through here too


async def test_a_slow_store_write_never_puts_back_a_rotated_token():
    """The Identity Center refresh token is saved with the sign-in; an IdP rotation meanwhile must not be undone
    by the slower write, nor lose the newer Identity Center token: the store ends with the newest of both."""
    class GatedStore(MemStore):
        def __init__(self):
            super().__init__()
            self.gate: asyncio.Event | None = None

        async def save(self, p, grant):
            gate, self.gate = self.gate, None
            if gate is not None:
                await gate.wait()  # this write is slow (a keyring call in a thread)
            await super().save(p, grant)

    store = GatedStore()
    rig = Rig(store=store)
    await rig.session.login(rig.idp.tokens())
    gate = store.gate = asyncio.Event()
    idc = asyncio.create_task(rig.session.idc.refresh())  # a new Identity Center token, saved slowly
    for _ in range(20):
        await asyncio.sleep(0)
    idp = asyncio.create_task(rig.session.idp.refresh())  # the IdP rotates its refresh token meanwhile
    for _ in range(20):
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(idc, idp)
    final = store.tokens["work"]
    assert final.refresh_token == Secret(rig.idp.live) == rig.session.refresh_token
    assert rig.session.idc.held is not None
    assert final.idc_refresh_token == rig.session.idc.held.value.refresh_token


async def test_a_sign_in_takes_the_client_secret_stored_since_tipd_started(tmp_path):
    store = FileStore(tmp_path)
    rig = Rig(store=store, client_auth="client_secret_post")
    rig.idp.client_secret = None  # tipd started before `tipctl configure --client-secret-stdin`
    with pytest.raises(ConfigError) as e:
        await rig.session.login(rig.idp.tokens())
    assert "--client-secret-stdin" in e.value.message
    await store.save_secret("work", ClientSecret(Secret("s3"), "https://other.example.com", rig.profile.client_id))
    with pytest.raises(ConfigError) as e:  # stored for another issuer: never sent here
        await rig.session.login(rig.idp.tokens())
    assert "not " + rig.profile.issuer in e.value.message
    await store.save_secret("work", ClientSecret(Secret("s3"), rig.profile.issuer, rig.profile.client_id))
    await rig.session.login(rig.idp.tokens())
    assert rig.idp.client_secret == Secret("s3") and rig.session.state == State.FRESH


async def test_no_refresh_token_says_what_makes_this_idp_issue_one():
    rig = Rig(provider="google", scopes=["openid", "email"], client_auth="client_secret_post")
    t = rig.idp.tokens()
    no_rt = type(t)(t.access_token, t.id_token, None, t.expires_in, t.scope)
    with pytest.raises(TipdError) as e:
        await rig.session.login(no_rt)
    assert "access_type=offline" in e.value.message


class MemKeyring:
    """An in-memory keyring backend (get/set/delete_password); `broken` makes every call fail."""

    def __init__(self):
        self.data: dict[tuple[str, str], str] = {}
        self.broken = False

    def _check(self):
        if self.broken:
            raise RuntimeError("locked")

    def get_password(self, service, user):
        self._check()
        return self.data.get((service, user))

    def set_password(self, service, user, value):
        self._check()
        self.data[(service, user)] = value

    def delete_password(self, service, user):
        self._check()
        self.data.pop((service, user), None)


async def test_the_keyring_holds_the_record_reads_the_bare_token_of_before_and_keeps_the_secret_apart(tmp_path):
    from tipd.store import FallbackStore, KeyringStore

    ring = MemKeyring()
    ring.data[("tipd", "work")] = "rt-of-before"  # what tipd kept in the keyring before records
    store = FallbackStore(KeyringStore(ring), FileStore(tmp_path))
    old = await store.load("work")
    assert old is not None
    assert old.refresh_token == Secret("rt-of-before") and old.legacy
    g = Grant(Secret("rt"), "https://i", "c", "openid").with_idc(Secret("irt"), "arn:app")
    await store.save("work", g)
    await store.save_secret("work", ClientSecret(Secret("s"), "https://i", "c"))
    assert await store.load("work") == g and set(ring.data) == {("tipd", "work"), ("tipd", "work#client-secret")}
    assert "s" not in ring.data[("tipd", "work")].split('"')  # the secret is not in the sign-in record
    ring.broken = True  # locked: both go to 0600 files, and are read back from there
    g2 = Grant(Secret("rt2"), "https://i", "c", "openid")
    await store.save("work", g2)
    await store.save_secret("work", ClientSecret(Secret("s2"), "https://i", "c"))
    secret = await store.load_secret("work")
    assert await store.load("work") == g2 and secret is not None and secret.secret == Secret("s2")
    assert oct((tmp_path / "work.client-secret").stat().st_mode & 0o777) == "0o600"
    from tipd.store import StoreError

    with pytest.raises(StoreError, match="keyring refused to delete"):  # the keyring's copy stays: said, not hidden
        await store.delete("work")  # a sign-out forgets the sign-in (its file here), not the app's secret
    assert await store.load("work") is None and await store.load_secret("work") is not None


async def test_the_client_secret_sentences_name_a_command_tipctl_accepts(tmp_path):
    """They said `tipctl configure work --client-secret-stdin`, which tipctl refuses (unrecognized arguments)."""
    import re
    import shlex

    from tipd.cli.main import parser
    from tipd.store import client_secret

    settings = parse_config({"profiles": {"work": {**PROFILE, "client_auth": "client_secret_post"}}},
                            "test").profiles["work"]
    store = FileStore(tmp_path)
    messages = []
    for prepare in ("none stored", "another issuer", "a directory"):
        if prepare == "another issuer":
            await store.save_secret("work", ClientSecret(Secret("s"), "https://other.example.com", "cid"))
        elif prepare == "a directory":
            await store.delete_secret("work")
            (tmp_path / "work.client-secret").mkdir()
        with pytest.raises(ConfigError) as e:
            await client_secret(store, "work", settings)
        messages.append(e.value.message)
    for message in messages:
        found = re.search(r"`(tipctl configure [^`]*)`", message)
        assert found is not None, message
        command = found.group(1)
        args = shlex.split(command)[1:]
        parser(args).parse_args(args)  # SystemExit (2) if tipctl would refuse it
