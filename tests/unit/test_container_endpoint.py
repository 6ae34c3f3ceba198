"""The credential endpoint's answers, with a session whose upstream is a stand-in (unit level)."""
import json

import pytest

from tests.support.endpoint import TOKEN, headers
from tests.support.fakes import FakeClock
from tests.support.profiles import PROFILE
from tipd.broker import Broker
from tipd.config import parse_config
from tipd.exchange import AwsCredentials
from tipd.secret import Secret
from tipd.server import container
from tipd.server.guards import Guard
from tipd.session import ProfileSession, Served


class NoStore:
    name = "none"

    async def load(self, p):
        return None


@pytest.fixture
def clock():
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def client(aiohttp_client, clock):
    cfg = parse_config({"profiles": {"work": PROFILE}}, "test")
    broker = Broker(cfg)
    # the tests set what the session serves: it never loads a sign-in nor calls AWS or the IdP
    broker.sessions["work"] = ProfileSession("work", cfg.idp_profile("work"), cfg.refresh,
                                             store=NoStore(), aws=None, idp=None,  # type: ignore[arg-type]
                                             clock=clock)
    c = await aiohttp_client(container.make_app(broker, Guard(TOKEN, 9911)), server_kwargs={"port": 0})
    c.broker = broker
    return c


def serve(session, clock, remaining):
    creds = AwsCredentials("ASIAEXAMPLE", Secret("sek"), Secret("tok"), clock.t + remaining, "111122223333")
    session.served = Served(creds, json.dumps(creds.container_json()).encode())


async def test_fresh_credentials_in_the_sdk_format(client, clock):
    serve(client.broker.sessions["work"], clock, 3000)
    for path in ("/v1/credentials/work", "/v1/credentials"):  # the default profile too
        r = await client.get(path, headers=headers())
        assert r.status == 200 and r.content_type == "application/json"
        body = await r.json()
        assert body == {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "sek", "Token": "tok",
                        "Expiration": "2023-11-14T23:03:20Z", "AccountId": "111122223333"}


async def test_not_signed_in_says_what_to_do(client):
    r = await client.get("/v1/credentials/work", headers=headers())
    assert r.status == 401
    assert await r.json() == {"code": "LoginRequired", "message": "not signed in: run `tipctl login work`"}


async def test_unknown_profile(client):
    r = await client.get("/v1/credentials/nope", headers=headers())
    assert r.status == 404 and (await r.json())["code"] == "UnknownProfile"


async def test_short_but_valid_credentials_are_served_without_waiting(client, clock):
    serve(client.broker.sessions["work"], clock, 300)  # below min_remaining, above the hard floor
    r = await client.get("/v1/credentials/work", headers=headers())
    assert r.status == 200 and client.broker.sessions["work"].schedule.woken


@pytest.mark.parametrize("hdrs,status", [
    ({"Authorization": None}, 401),
    ({"Authorization": "wrong"}, 401),
    ({"Authorization": TOKEN.decode()[:-1] + "X"}, 401),
    ({"Authorization": "Bearer " + TOKEN.decode()}, 401),
    ({"Host": "evil.example:9911"}, 403),
    ({"Host": "127.0.0.1:80"}, 403),
    ({"Origin": "https://evil.example"}, 403),
    ({"Sec-Fetch-Site": "cross-site"}, 403),
])
async def test_refusals_give_no_credentials_and_no_hint(client, clock, hdrs, status):
    serve(client.broker.sessions["work"], clock, 3000)
    h = headers()
    for k, v in hdrs.items():
        if v is None:
            h.pop(k)
        else:
            h[k] = v
    r = await client.get("/v1/credentials/work", headers=h)
    text = await r.text()
    assert r.status == status and "sek" not in text and "Access-Control-Allow-Origin" not in r.headers
    assert TOKEN.decode() not in text


def test_peer_lookup_by_netlink_agrees_with_proc_net_tcp():
    """The fast path (one netlink sock_diag query) and the fallback (a /proc/net/tcp scan) name the same
    owner and socket for a real loopback connection."""
    import os
    import socket

    from tipd.server.peer import netlink_peer, proc_net_tcp_peer, processes_of_inodes

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    conn, peer = srv.accept()
    try:
        local = conn.getsockname()
        a, b = netlink_peer(peer, local), proc_net_tcp_peer(peer, local)
        assert a is not None and b is not None
        assert (a.uid, a.inode) == (b.uid, b.inode) == (os.getuid(), os.fstat(cli.fileno()).st_ino)
        assert processes_of_inodes({a.inode})[a.inode].pid == os.getpid()
        assert netlink_peer(("127.0.0.1", 1), local) is None  # no such socket
    finally:
        cli.close()
        conn.close()
        srv.close()


def test_a_connection_s_peer_is_looked_up_once_and_forgotten_with_the_connection(monkeypatch):
    """The guard keeps each connection's client by its transport's id (a plain dict: every request looks it up):
    looked up once per connection, and forgotten when the transport is gone, so a new connection whose transport
    gets the freed one's id (CPython reuses memory) is looked up afresh, not taken for the old client."""
    import asyncio
    import gc

    import tipd.server.guards as guards
    from tipd.server.peer import Peer

    lookups: list[tuple[str, int]] = []

    def tcp_peer(peer, local):
        lookups.append(peer)
        return Peer(uid=len(lookups), inode=len(lookups))

    monkeypatch.setattr(guards, "tcp_peer", tcp_peer)
    monkeypatch.setattr(guards, "PEER_UID_SUPPORTED", True)
    monkeypatch.setattr(guards, "id", lambda obj: 7, raising=False)  # every transport gets the same id: reuse, at once

    class Transport(asyncio.Transport):
        def __init__(self, port: int) -> None:
            super().__init__({"peername": ("127.0.0.1", port), "sockname": ("127.0.0.1", 9911)})

    guard = Guard(TOKEN, 9911)
    first = Transport(50001)
    assert guard.uid_of(first) == 1 and guard.peer_of(first) is guard.peer_of(first)
    assert lookups == [("127.0.0.1", 50001)]  # once per connection
    del first
    gc.collect()
    second = Transport(50002)
    assert guard.uid_of(second) == 2 and lookups == [("127.0.0.1", 50001), ("127.0.0.1", 50002)]
