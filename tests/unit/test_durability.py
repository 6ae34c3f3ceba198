"""Faults that must never lose a sign-in or serve something expired, on virtual time (issue 11, items 3-5).
The same faults against the real daemon, IdP and AWS fake are in tests/acceptance/test_durability.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import jwt
import pytest

from tests.support.fakes import FakeClock
from tests.support.session_rig import HOUR, MemStore, Rig
from tipd.clock import local_expiry
from tipd.errors import UpstreamError
from tipd.exchange import AwsChain
from tipd.idp.oidc import TokenResponse
from tipd.refresh import MAX_PER_MINUTE, Stage
from tipd.secret import Secret
from tipd.session import State
from tipd.store import FileStore, Grant, StoreError

# -- 3: a failed sign-in never destroys a working one ---------------------------------------------


async def test_a_refused_sign_in_leaves_the_working_session_serving_and_its_stored_token():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(60)
    working = rig.session.served
    assert working is not None
    stored = rig.store.tokens["work"].refresh_token
    # a second sign-in (another account, or the same one) whose hand-off Identity Center refuses
    rig.aws.fail["CreateTokenWithIAM"] = UpstreamError("refused", code="AccessDeniedException", permanent=True)
    other = TokenResponse(Secret("at-x"), Secret(jwt.encode({"sub": "mallory", "iat": int(rig.clock.t),
                                                             "exp": int(rig.clock.t) + HOUR}, "k" * 32)),
                          Secret("rt-other"), HOUR)
    with pytest.raises(UpstreamError):
        await rig.session.login(other)
    del rig.aws.fail["CreateTokenWithIAM"]
    assert rig.store.tokens["work"].refresh_token == stored and rig.session.refresh_token == stored
    assert rig.session.served is working and rig.session.state == State.FRESH
    assert rig.session.cached_body() == working.body
    await rig.run(2 * HOUR)  # and it keeps renewing with the old, still valid, refresh token
    await rig.stop()
    assert not rig.failures and rig.session.user == "alice@example.com" and rig.session.state == State.FRESH


async def test_a_successful_sign_in_replaces_the_old_one_in_memory_and_in_the_store():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(60)
    old = rig.session.served
    await rig.session.login(rig.idp.tokens())
    assert rig.session.served is not old and rig.store.tokens["work"].refresh_token == Secret(rig.idp.live)
    await rig.run(HOUR)
    await rig.stop()
    assert not rig.failures and rig.session.state == State.FRESH


# -- 4: a store that refuses writes never costs the rotated token ---------------------------------


class FlakyStore(MemStore):
    """A store whose writes fail (disk full, read-only) while `broken` is set."""

    name = "flaky"

    def __init__(self):
        self.tokens, self.broken, self.attempts = {}, False, 0

    async def load(self, p):
        return self.tokens.get(p)

    async def save(self, p, t):
        self.attempts += 1
        if self.broken:
            raise StoreError("cannot save the sign-in of profile work in /state (No space left on device)")
        self.tokens[p] = t

    async def delete(self, p):
        self.tokens.pop(p, None)


async def test_a_full_disk_keeps_the_rotated_token_in_memory_renews_with_it_and_saves_it_when_space_returns():
    rig = Rig(idp_ttl=600)  # the IdP tokens rotate every few minutes
    store = FlakyStore()
    rig.store = rig.session.store = store
    await rig.start(fetch_every=5)
    store.broken = True
    await rig.run(2 * HOUR)  # hours of rotations, none of them saved
    st = rig.session.status()
    assert rig.session.state == State.DEGRADED and st["sign_in_saved"] is False
    assert "No space left on device" in st["last_error"] and "kept in memory" in st["last_error"]
    assert rig.idp.calls >= 3 and rig.session.refresh_token == Secret(rig.idp.live)  # renewing with the newest
    assert store.attempts < 2 * HOUR / 60 + 30  # retried with backoff (capped at a minute), no storm
    store.broken = False
    await rig.run(61)
    await rig.stop()
    assert rig.store.tokens["work"].refresh_token == Secret(rig.idp.live)
    assert rig.session.status()["sign_in_saved"] is True
    # (mypy kept the DEGRADED of the assertion above across the awaits that changed it)
    assert rig.session.state == State.FRESH and not rig.failures  # type: ignore[comparison-overlap]


def _write(path, token):
    path.write_text(Grant(Secret(token), "https://idp.example", "tipd").dumps())


async def _token(store, profile="work"):
    grant = await store.load(profile)
    return grant.refresh_token if grant else None


async def test_a_save_interrupted_by_kill_9_is_recovered_from_its_complete_temp_file(tmp_path):
    store = FileStore(tmp_path)
    _write(tmp_path / "work.json", "rt-old")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".work.json.{int(dead.stdout)}.tmp"  # written and synced, never renamed
    _write(leftover, "rt-new")
    partial = tmp_path / ".work.json.1999999999.tmp"  # a write cut short: not a record
    partial.write_text('{"refresh_tok')
    os.utime(partial)
    assert (await _token(store)) == Secret("rt-new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work.json"]
    assert json.loads((tmp_path / "work.json").read_text())["refresh_token"] == "rt-new"


async def test_recovery_leaves_the_temp_file_of_a_live_writer_alone(tmp_path):
    store = FileStore(tmp_path)
    _write(tmp_path / "work.json", "rt-1")
    busy = tmp_path / f".work.json.{os.getppid()}.tmp"  # a live process (another tipd) is writing it
    busy.write_text('{"refresh_to')
    assert (await _token(store)) == Secret("rt-1") and busy.exists()


async def test_a_full_disk_makes_a_save_a_clear_store_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    import errno


    store = FileStore(tmp_path)
    await store.save("work", Grant(Secret("rt-1"), "https://idp.example", "tipd"))

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("tipd.fsutil.os.fsync", full)
    with pytest.raises(StoreError, match=r"cannot save the sign-in of profile work in .* \(No space left on device\)"):
        await store.save("work", Grant(Secret("rt-2"), "https://idp.example", "tipd"))
    monkeypatch.undo()
    assert (await _token(store)) == Secret("rt-1") and sorted(p.name for p in tmp_path.iterdir()) == ["work.json"]


# -- 5: clock skew never floods the IdP, and nothing expired is served -----------------------------


def test_a_lifetime_is_the_servers_own_when_the_clocks_disagree():
    assert local_expiry(1000 + 3600, 1000, 1010) == 1000 + 3600  # clocks agree: the server's expiry
    assert local_expiry(1000 + 3600, 1000, 1000 + 7200) == 1000 + 7200 + 3600  # ours 2 h ahead
    assert local_expiry(1000 + 3600, 1000, 1000 - 7200) == 1000 - 7200 + 3600  # ours 2 h behind


@pytest.mark.parametrize("skew", [2 * HOUR, -2 * HOUR])
async def test_a_skewed_local_clock_does_not_flood_the_idp(skew):
    """The IdP's clock is `skew` behind ours: its id_tokens look expired (or 2 h too long) on arrival."""
    rig = Rig()
    rig.idp.skew = skew
    await rig.start(fetch_every=5)
    await rig.run(4 * HOUR)
    await rig.stop()
    assert rig.idp.calls <= 4 * 2 + 2  # about one refresh an hour (one per jwt-bearer exchange at most)
    assert not rig.failures and rig.session.state == State.FRESH
    assert rig.session.idp.held is not None and rig.session.idp.held.expires_at - rig.clock.t <= HOUR


async def test_a_stage_whose_values_expire_on_arrival_refreshes_a_bounded_number_of_times_a_minute():
    clock = FakeClock()
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        return "v", clock.t - 1  # expired already: due again at once

    st = Stage("s", fetch, clock, 1800)
    for _ in range(500):  # a scheduler refreshing whatever is due
        if (due := st.due_at()) is None or due <= clock.t:
            try:
                await st.refresh()
            except UpstreamError as e:
                assert e.code == "RefreshLoop"
        clock.t += 0.02  # 10 s in all
    assert calls == MAX_PER_MINUTE
    due = st.due_at()
    assert due is not None and due > clock.t
    assert st.last_error is not None and "clock" in st.last_error.message


async def test_sts_credentials_already_expired_are_never_served():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(60)
    good = rig.session.served
    rig.aws.sts_duration = -60  # an STS Expiration in the past
    rig.session.served = None  # nothing valid at hand: the request must refresh
    with pytest.raises(UpstreamError, match="valid for only"):
        await rig.session.credentials()
    assert rig.session.served is None
    rig.aws.sts_duration = None
    await rig.run(120)  # the scheduler retries after its backoff
    # (mypy kept the None of the assertion above across the run that served again)
    assert rig.session.served.creds.expires_at - rig.clock.t > HOUR - 180  # type: ignore[attr-defined]
    await rig.stop()
    assert good is not None and all(remaining > 0 for _, remaining in rig.served)


def _sts_answer(expiration: str, date: str | None) -> dict[str, Any]:
    headers = {"date": date} if date else {}
    return {"Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "s", "SessionToken": "t",
                            "Expiration": expiration}, "ResponseMetadata": {"HTTPHeaders": headers}}


def test_an_sts_expiration_before_its_own_date_is_refused_and_skew_is_corrected_from_the_date():
    clock = FakeClock(t=1_767_225_600.0 + 2 * HOUR)  # 2026-01-01T02:00Z locally; AWS says 00:00
    aws = AwsChain(clock, session=object())
    with pytest.raises(UpstreamError, match="already expired"):
        aws.credentials_from(_sts_answer("2025-12-31T23:59:00Z", "Thu, 01 Jan 2026 00:00:00 GMT"), "AssumeRole")
    creds = aws.credentials_from(_sts_answer("2026-01-01T01:00:00Z", "Thu, 01 Jan 2026 00:00:00 GMT"), "AssumeRole")
    assert creds.expires_at == clock.t + HOUR  # AWS's own hour, counted on our clock
    same = AwsChain(FakeClock(t=1_767_225_600.0), session=object())
    assert same.credentials_from(_sts_answer("2026-01-01T01:00:00Z", "Thu, 01 Jan 2026 00:00:00 GMT"),
                                 "x").expires_at == 1_767_225_600.0 + HOUR
