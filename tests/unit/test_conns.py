"""The connection caps' choices (tipd/server/conns.py), with stand-in connections: who is refused, who is
closed to make room. The real thing under a real flood: tests/acceptance/test_exhaustion.py."""
from __future__ import annotations

from tipd.server.conns import Caps

OWNER, MALLORY, TRENT = 1000, 2000, 3000


class Conn:
    """A connection: its uid, whether a request is in progress, whether tipd closed it."""

    def __init__(self, uid: int, busy: bool = False) -> None:
        self.uid = uid
        self._current_request = object() if busy else None  # what conns._idle looks at
        self.closed = False

    def close(self) -> None:
        self.closed = True


# The stand-in connection plays aiohttp's RequestHandler and its transport both: Caps keys on the one and closes
# the other (the ignores below say so to mypy).
def caps(**kw) -> Caps:
    return Caps(lambda conn: conn.uid, owner=OWNER, **kw)  # type: ignore[attr-defined]  # a Conn, as admit passes


def admit(c: Caps, conn: Conn) -> bool:
    return c.admit(conn, conn)  # type: ignore[arg-type]  # the stand-in is its own handler and transport


def test_another_user_past_its_cap_loses_its_own_oldest_idle_connection():
    c = caps(total=100, per_uid=3, owner_reserve=10)
    first, *rest = [Conn(MALLORY) for _ in range(3)]
    assert all(admit(c, x) for x in [first, *rest])
    assert admit(c, Conn(MALLORY)) and first.closed and c.count == 3


def test_another_user_with_only_busy_connections_is_refused_past_its_cap():
    c = caps(total=100, per_uid=2, owner_reserve=10)
    assert admit(c, Conn(MALLORY, busy=True)) and admit(c, Conn(MALLORY, busy=True))
    assert not admit(c, Conn(MALLORY)) and c.refused == 1


def test_the_owner_reserve_is_never_taken_by_others():
    c = caps(total=10, per_uid=100, owner_reserve=4)
    held = [Conn(u, busy=True) for u in (MALLORY, TRENT) for _ in range(3)]
    assert all(admit(c, x) for x in held)
    assert not admit(c, Conn(MALLORY, busy=True))  # 6 = total - reserve: others are full
    assert all(admit(c, Conn(OWNER)) for _ in range(4))  # the reserve is the owner's


def test_at_the_total_the_owner_closes_the_biggest_other_holders_idle_connection_first():
    c = caps(total=6, per_uid=100, owner_reserve=1)
    mallory = [Conn(MALLORY) for _ in range(3)]
    trent = [Conn(TRENT) for _ in range(2)]
    mine = Conn(OWNER)
    for x in [*mallory, *trent, mine]:
        assert admit(c, x)
    assert admit(c, Conn(OWNER)) and mallory[0].closed and not mine.closed and not trent[0].closed


def test_the_owner_alone_at_the_total_recycles_its_own_oldest_idle_connection():
    c = caps(total=3, per_uid=100, owner_reserve=1)
    mine = [Conn(OWNER) for _ in range(3)]
    for x in mine:
        assert admit(c, x)
    assert admit(c, Conn(OWNER)) and mine[0].closed and c.count == 3


def test_released_connections_free_their_slots():
    c = caps(total=100, per_uid=1, owner_reserve=10)
    a = Conn(MALLORY, busy=True)
    assert admit(c, a) and not admit(c, Conn(MALLORY, busy=True))
    c.release(a)  # type: ignore[arg-type]  # the stand-in handler
    c.release(a)  # type: ignore[arg-type]  # twice (evicted, then lost): harmless
    assert admit(c, Conn(MALLORY, busy=True)) and c.count == 1
