"""S3 Access Grants: request checks, grant scopes, the cache (single-flight, refusals, narrower paths) and its
schedule on a virtual clock, and the endpoint's guards. The upstream is a stand-in; tests/acceptance/test_s3ag.py
runs the real thing."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from tests.support.endpoint import TOKEN, headers
from tests.support.fakes import FakeAws, FakeIdp, VirtualClock
from tests.support.profiles import PROFILE
from tests.support.session_rig import MemStore
from tipd import s3ag
from tipd.broker import Broker
from tipd.config import parse_config
from tipd.errors import LoginRequired, TipdError, UpstreamError
from tipd.idp.oidc import TokenResponse
from tipd.s3ag import GrantCache, GrantKey, covers, parse_request
from tipd.secret import Secret
from tipd.server import container
from tipd.server.guards import Guard
from tipd.session import ProfileSession

HOUR = 3600


# -- the request ----------------------------------------------------------------------------------
def test_keys_are_normalised_so_equal_requests_share_an_entry():
    plain = parse_request([("target", "s3://b-1/p/"), ("permission", "READ")])
    assert plain == (GrantKey("s3://b-1/p/", "READ", "Default", ""), 3600)
    same = parse_request([("target", "S3://b-1/p/"), ("permission", "read"), ("privilege", "default")])
    assert same == plain
    key, duration = parse_request([("target", "s3://b-1/p/k"), ("permission", "readwrite"), ("privilege", "MINIMAL"),
                                   ("target_type", "object"), ("duration", "43200")])
    assert key == GrantKey("s3://b-1/p/k", "READWRITE", "Minimal", "Object") and duration == 43200
    # the key is case-sensitive where S3 is: object keys
    assert parse_request([("target", "s3://b-1/P/"), ("permission", "READ")])[0] != plain[0]


@pytest.mark.parametrize("pairs, says", [
    ([("permission", "READ")], "target parameter is required"),
    ([("target", "https://b/p"), ("permission", "READ")], "must be an S3 URL"),
    ([("target", "s3://My_Bucket/p"), ("permission", "READ")], "is not a bucket name"),
    ([("target", "s3://b/p")], "is not a bucket name"),  # two characters
    ([("target", "s3://bkt/p\n")], "control characters"),
    ([("target", "s3://bkt/" + "x" * 2000), ("permission", "READ")], "at most 2000"),
    ([("target", "s3://bkt/p")], "permission parameter is required"),
    ([("target", "s3://bkt/p"), ("permission", "ALL")], "permission must be one of READ, WRITE, READWRITE"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("privilege", "Max")], "privilege must be one of"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("target_type", "Prefix")],
     "target_type must be one of Object"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("duration", "899")], "from 900 to 43200"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("duration", "43201")], "from 900 to 43200"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("duration", "1h")], "from 900 to 43200"),
    ([("target", "s3://bkt/p"), ("permission", "READ"), ("permision", "READ")], "unknown parameter 'permision'"),
    ([("target", "s3://bkt/p"), ("target", "s3://bkt/q"), ("permission", "READ")], "given twice"),
])
def test_bad_requests_are_a_clear_400(pairs, says):
    with pytest.raises(TipdError) as e:
        parse_request(pairs)
    assert e.value.status == 400 and e.value.code == "BadRequest" and says in e.value.message


def test_grant_scopes_cover_exactly_the_paths_below_them():
    assert covers("s3://b/p/*", "s3://b/p/x") and covers("s3://b/p/*", "s3://b/p/sub/key")
    assert covers("s3://b/p/*", "s3://b/p/")
    assert not covers("s3://b/p/*", "s3://b/px")  # a sibling sharing the prefix's letters
    assert not covers("s3://b/p/*", "s3://b2/p/x") and not covers("s3://b/p/*", "s3://b/")
    assert covers("s3://b/*", "s3://b/anything") and not covers("s3://b/*", "s3://bb/x")
    assert covers("s3://*", "s3://any/thing")
    assert not covers("s3://b*", "s3://b2/x")  # a wildcard inside a bucket name is never assumed to span
    assert covers("s3://b/p/obj", "s3://b/p/obj") and not covers("s3://b/p/obj", "s3://b/p/obj2")


def test_the_account_label_is_dropped_only_where_it_cannot_resolve():
    from tipd.exchange import _no_account_label_on_ip

    def rewritten(url):
        params = {"url": url}
        _no_account_label_on_ip(params)
        return params["url"]

    path = "/v20180820/accessgrantsinstance/dataaccess?target=s3%3A%2F%2Fb%2F&permission=READ"
    assert rewritten(f"http://111122223333.127.0.0.1:4566{path}") == f"http://127.0.0.1:4566{path}"
    assert rewritten(f"http://111122223333.localhost:4566{path}") == f"http://localhost:4566{path}"
    for kept in (f"https://111122223333.s3-control.eu-west-1.amazonaws.com{path}",
                 f"https://111122223333.control.vpce-0a1b.s3.eu-west-1.vpce.amazonaws.com{path}"):
        assert rewritten(kept) == kept


# -- the cache ------------------------------------------------------------------------------------
class GrantsAws(FakeAws):
    """The chain's calls, plus GetDataAccess answering from `grants`: scope -> permission."""

    def __init__(self, clock):
        super().__init__(clock)
        self.calls["GetDataAccess"] = 0
        self.grants: dict[str, str] = {"s3://bkt/p/*": "READ"}
        self.asked: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None

    async def get_data_access(self, *, region, creds, account_id, target, permission, privilege=None,
                              target_type=None, duration=None):
        self._call("GetDataAccess")
        self.asked.append(dict(target=target, permission=permission, privilege=privilege, account=account_id,
                               duration=duration, caller=creds.arn))
        if self.gate is not None:
            await self.gate.wait()
        for scope, perm in self.grants.items():
            inside = target.startswith(scope[:-1]) if scope.endswith("*") else target == scope
            if inside and perm in (permission, "READWRITE"):
                return (self._creds(duration, "s3ag-location"),
                        scope if privilege == "Default" else target)
        raise UpstreamError(f"S3 Access Grants GetDataAccess ({permission} {target}) failed: AccessDenied - no "
                            "S3 Access Grant of yours covers this target", code="AccessDenied", permanent=True,
                            status=403)


class Rig:
    def __init__(self, profile_extra=None):
        self.clock = VirtualClock()
        self.idp = FakeIdp(self.clock)
        self.aws = GrantsAws(self.clock)
        cfg = parse_config({"profiles": {"work": dict(PROFILE, **(profile_extra or {}))}}, "test")
        self.config = cfg
        self.session = ProfileSession("work", cfg.idp_profile("work"), cfg.refresh, store=MemStore(), aws=self.aws,
                                      idp=self.idp, clock=self.clock)
        self.cache = GrantCache(self.session, self.aws, self.clock, cfg.refresh)
        self.tasks = []

    async def login(self):
        await self.session.login(self.idp.tokens())

    def start(self):
        self.tasks = [asyncio.create_task(self.session.run()), asyncio.create_task(self.cache.run())]

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def get(self, target, permission="READ", **kw):
        pairs = [("target", target), ("permission", permission)] + [(k, str(v)) for k, v in kw.items()]
        return await self.cache.fetch(pairs, "&".join(f"{k}={v}" for k, v in pairs))

    def calls(self):
        return self.aws.calls["GetDataAccess"]


async def test_a_grant_is_asked_once_with_the_enhanced_session_and_the_role_account():
    rig = Rig()
    await rig.login()
    served = await rig.get("s3://bkt/p/")
    body = json.loads(served.body)
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert body["AccountId"] == "111122223333"
    asked = rig.aws.asked[0]
    assert asked["caller"].endswith("assumed-role/enhanced/x") and asked["account"] == "111122223333"
    assert asked == dict(asked, target="s3://bkt/p/", permission="READ", privilege="Default", duration=3600)
    again = await rig.get("s3://bkt/p/")
    assert again is served and rig.calls() == 1


async def test_a_configured_account_id_is_the_one_asked():
    rig = Rig({"account_id": "444455556666"})
    await rig.login()
    await rig.get("s3://bkt/p/")
    assert rig.aws.asked[0]["account"] == "444455556666"


async def test_a_narrower_path_reuses_the_grant_that_covers_it_and_nothing_else_does():
    rig = Rig()
    rig.aws.grants = {"s3://bkt/p/*": "READWRITE", "s3://bkt/px/*": "READ"}
    await rig.login()
    wide = await rig.get("s3://bkt/p/")
    assert rig.calls() == 1
    assert await rig.get("s3://bkt/p/sub/key") is wide and await rig.get("s3://bkt/p/x") is wide
    assert rig.calls() == 1
    listing = rig.cache.listing()
    assert len(listing) == 1 and listing[0]["matched_grant_target"] == "s3://bkt/p/*"
    assert listing[0]["also_serves"] == ["s3://bkt/p/sub/key", "s3://bkt/p/x"]
    # outside the scope, another permission, another privilege, another target type: each its own call
    await rig.get("s3://bkt/px/y")
    await rig.get("s3://bkt/p/x", "READWRITE")  # READ credentials never stand in for more
    await rig.get("s3://bkt/p/x", privilege="Minimal")
    await rig.get("s3://bkt/p/x", target_type="Object")
    assert rig.calls() == 5
    # and READWRITE credentials do not stand in for READ either: a caller gets what it asked for
    rig.aws.grants = {"s3://bkt/q/*": "READWRITE"}
    await rig.get("s3://bkt/q/", "READWRITE")
    await rig.get("s3://bkt/q/a")
    assert rig.calls() == 7


async def test_minimal_credentials_are_reused_only_for_their_own_target():
    rig = Rig()
    await rig.login()
    await rig.get("s3://bkt/p/", privilege="Minimal")
    await rig.get("s3://bkt/p/", privilege="Minimal")
    await rig.get("s3://bkt/p/x", privilege="Minimal")
    assert rig.calls() == 2


async def test_fifty_concurrent_first_requests_make_one_call():
    rig = Rig()
    await rig.login()
    rig.aws.gate = asyncio.Event()
    waiting = [asyncio.create_task(rig.get("s3://bkt/p/")) for _ in range(50)]
    await rig.clock.settle()
    assert rig.calls() == 1
    rig.aws.gate.set()
    bodies = {s.body for s in await asyncio.gather(*waiting)}
    assert len(bodies) == 1 and rig.calls() == 1


async def test_a_refusal_is_a_403_sentence_remembered_briefly_then_asked_again():
    rig = Rig()
    await rig.login()
    with pytest.raises(TipdError) as e:
        await rig.get("s3://bkt/other/")
    assert e.value.status == 403 and e.value.code == "AccessDenied" and "no S3 Access Grant" in e.value.message
    with pytest.raises(TipdError):
        await rig.get("s3://bkt/other/")
    assert rig.calls() == 1  # a client retrying in a loop is answered from memory
    rig.aws.grants["s3://bkt/other/*"] = "READ"  # an administrator grants it
    rig.clock.jump(s3ag.REFUSAL_TTL + 1)
    await rig.get("s3://bkt/other/")
    assert rig.calls() == 2


async def test_a_failing_upstream_is_not_stormed():
    rig = Rig()
    await rig.login()
    rig.aws.fail["GetDataAccess"] = UpstreamError("Throttling", code="Throttling", permanent=False)
    for _ in range(5):
        with pytest.raises(UpstreamError):
            await rig.get("s3://bkt/p/")
    assert rig.calls() == 1  # backing off: answered at once
    del rig.aws.fail["GetDataAccess"]
    rig.clock.jump(2)  # past the first backoff (at most 1 s)
    await rig.get("s3://bkt/p/")
    assert rig.calls() == 2


async def test_the_hot_path_answers_a_known_query_from_memory():
    rig = Rig()
    await rig.login()
    assert rig.cache.cached_body("target=s3://bkt/p/&permission=READ") is None
    served = await rig.get("s3://bkt/p/")
    assert rig.cache.cached_body("target=s3://bkt/p/&permission=READ") == served.body
    await rig.get("s3://bkt/p/deep")  # a narrower path, through the covering grant
    assert rig.cache.cached_body("target=s3://bkt/p/deep&permission=READ") == served.body
    assert rig.cache.cached_body("target=s3://bkt/p/other&permission=READ") is None  # never asked: slow path
    assert rig.calls() == 1
    # below serve_min the hot path steps aside (the slow path renews, or serves while the scheduler does)
    rig.clock.jump(HOUR - 1000)
    assert rig.cache.cached_body("target=s3://bkt/p/&permission=READ") is None


async def test_signing_out_drops_the_grants_and_another_user_never_gets_them():
    rig = Rig()
    await rig.login()
    await rig.get("s3://bkt/p/")
    await rig.session.logout()
    assert rig.cache.cached_body("target=s3://bkt/p/&permission=READ") is None
    with pytest.raises(LoginRequired):
        await rig.get("s3://bkt/p/")
    assert rig.cache.listing() == []
    rig.clock.jump(1)  # a new sign-in: a new id_token
    await rig.login()
    await rig.get("s3://bkt/p/")
    assert rig.calls() == 2
    # bob signs in over alice's session: alice's grant is not his
    now = int(rig.clock.t)
    bob = jwt.encode({"sub": "bob", "email": "bob@example.com", "iat": now, "exp": now + HOUR}, "k" * 32,
                     algorithm="HS256")
    await rig.session.login(TokenResponse(Secret("at"), Secret(bob), Secret("rt-bob"), HOUR))
    assert rig.cache.cached_body("target=s3://bkt/p/&permission=READ") is None
    await rig.get("s3://bkt/p/")
    assert rig.calls() == 3


async def test_a_borrowed_grant_renewed_to_a_narrower_scope_is_not_served_for_what_it_no_longer_covers():
    rig = Rig()
    rig.aws.grants = {"s3://bkt/*": "READ"}
    await rig.login()
    await rig.get("s3://bkt/a/")
    await rig.get("s3://bkt/c/file")  # borrows the bucket-wide grant
    assert rig.calls() == 1
    rig.aws.grants = {"s3://bkt/a/*": "READ"}  # the wide grant is replaced by a narrower one
    rig.clock.t += 3598  # the borrowed grant is due: its renewal comes back matched to s3://bkt/a/*
    with pytest.raises(TipdError) as e:
        await rig.get("s3://bkt/c/file")  # asked on its own, and refused: no grant covers it any more
    assert e.value.status == 403
    assert [a["target"] for a in rig.aws.asked] == ["s3://bkt/a/", "s3://bkt/a/", "s3://bkt/c/file"]


async def test_a_revoked_grant_stops_being_served_at_the_next_renewal():
    rig = Rig()
    await rig.login()
    rig.start()
    await rig.get("s3://bkt/p/")
    del rig.aws.grants["s3://bkt/p/*"]
    # keep using it until the renewal (with 30 min left) is refused
    for _ in range(40):
        await rig.clock.run_until(rig.clock.t + 60)
        if rig.cache.cached_body("target=s3://bkt/p/&permission=READ") is None:
            break
    else:
        pytest.fail("still served an hour after the grant was revoked")
    with pytest.raises(TipdError) as e:
        await rig.get("s3://bkt/p/")
    assert e.value.status == 403
    await rig.stop()


async def test_grants_in_use_are_renewed_ahead_of_expiry_and_idle_ones_are_dropped():
    rig = Rig()
    await rig.login()
    rig.start()
    remaining = []  # seconds left on every credential handed out
    t0 = rig.clock.t
    while rig.clock.t < t0 + 6 * HOUR:  # a client fetching every 30 s
        query = "target=s3://bkt/p/&permission=READ"
        body = rig.cache.cached_body(query)
        if body is None:
            body = (await rig.cache.fetch([("target", "s3://bkt/p/"), ("permission", "READ")], query)).body
        exp = json.loads(body)["Expiration"]
        left = datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() - rig.clock.t
        remaining.append(left)
        await rig.clock.run_until(rig.clock.t + 30)
    used = rig.calls()
    # 1 h credentials renewed with 30 min left: one call at first, then two an hour
    assert 12 <= used <= 13, used
    assert min(remaining) >= 1200  # never below min_remaining, as for the identity-enhanced session
    # the client stops: the grant is renewed while an SDK could still hold it, then dropped
    await rig.clock.run_until(rig.clock.t + 5 * HOUR)
    assert rig.calls() - used <= 2 and rig.cache.listing() == []
    quiet = rig.calls()
    await rig.clock.run_until(rig.clock.t + 5 * HOUR)
    assert rig.calls() == quiet
    await rig.stop()


async def test_a_short_grant_is_served_while_renewed_behind():
    rig = Rig()
    await rig.login()
    rig.start()
    first = await rig.get("s3://bkt/p/", duration=900)
    assert rig.cache.listing()[0]["duration"] == 900
    rig.clock.jump(900 - 100)  # 100 s left: below serve_min (300), above the floor
    got = await rig.get("s3://bkt/p/", duration=900)
    assert got is first  # answered at once...
    await rig.clock.run_until(rig.clock.t + 1)
    assert rig.calls() == 2  # ...and renewed behind it
    assert (await rig.get("s3://bkt/p/")) is not first
    await rig.stop()


# -- the endpoint ---------------------------------------------------------------------------------
@pytest.fixture
async def endpoint(aiohttp_client):
    rig = Rig()
    broker = Broker(rig.config)
    broker.sessions["work"] = rig.session
    broker.grants["work"] = rig.cache
    client = await aiohttp_client(container.make_app(broker, Guard(TOKEN, 9911)), server_kwargs={"port": 0})
    client.rig = rig
    return client


async def test_the_endpoint_serves_grants_behind_the_same_guards(endpoint):
    rig = endpoint.rig
    url = "/v1/s3ag/work?target=s3%3A%2F%2Fbkt%2Fp%2F&permission=READ"
    r = await endpoint.get(url, headers=headers())
    assert r.status == 401 and (await r.json())["code"] == "LoginRequired"
    await rig.login()
    r = await endpoint.get(url, headers={"Host": "127.0.0.1:9911"})
    assert r.status == 401 and (await r.json())["code"] == "Unauthorized"
    r = await endpoint.get(url, headers=headers(Host="evil.example:9911"))
    assert r.status == 403
    r = await endpoint.get(url, headers=headers(Origin="https://evil.example"))
    assert r.status == 403
    assert rig.calls() == 0
    r = await endpoint.get(url, headers=headers())
    assert r.status == 200 and r.content_type == "application/json"
    assert (await r.json())["AccessKeyId"].startswith("ASIA")
    r = await endpoint.get(url, headers=headers())
    assert r.status == 200 and rig.calls() == 1
    r = await endpoint.get("/v1/s3ag/work?target=s3%3A%2F%2Fbkt%2Fp%2F&permission=ALL", headers=headers())
    assert r.status == 400 and "permission must be one of" in (await r.json())["message"]
    r = await endpoint.get("/v1/s3ag/nope?target=s3%3A%2F%2Fbkt%2Fp%2F&permission=READ", headers=headers())
    assert r.status == 404
    r = await endpoint.get("/v1/s3ag/work?target=s3%3A%2F%2Fbkt%2Fq%2F&permission=READ", headers=headers())
    assert r.status == 403 and (await r.json())["code"] == "AccessDenied"


async def test_requests_that_differ_only_in_escaping_are_not_confused(endpoint):
    rig = endpoint.rig
    await rig.login()
    # the target "s3://bkt/p/x&privilege=Minimal", escaped; unescaped, the same text is another request
    escaped = "/v1/s3ag/work?target=s3%3A%2F%2Fbkt%2Fp%2Fx%26privilege%3DMinimal&permission=READ"
    plain = "/v1/s3ag/work?target=s3://bkt/p/x&privilege=Minimal&permission=READ"
    for path in (escaped, plain):
        r = await endpoint.get(path, headers=headers())
        assert r.status == 200
    assert [(a["target"], a["privilege"]) for a in rig.aws.asked] == [
        ("s3://bkt/p/x&privilege=Minimal", "Default"), ("s3://bkt/p/x", "Minimal")]
