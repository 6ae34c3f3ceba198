"""Time claims that are no time, arriving from the IdP itself (a refresh or a sign-in), never break the
status: before, an id_token `exp` of 1e400 (JSON infinity) made every /v1/status a 500 until the next login."""
from __future__ import annotations

import contextlib
import json

import pytest

from tests.support.session_rig import Rig
from tipd.clock import numeric_date


@pytest.mark.parametrize("ttl", [float("inf"), 1e300, 10 ** 30])
async def test_an_idp_token_with_an_absurd_exp_keeps_the_status_working(ttl):
    rig = Rig(idp_ttl=ttl)
    with contextlib.suppress(Exception):  # the chain may refuse such a token; the status must still work
        await rig.session.login(rig.idp.tokens())
    st = rig.session.status()
    json.dumps(st)
    expires = st["stages"]["idp-tokens"]["expires"]
    assert expires is not None and expires < "2030"  # taken from expires_in (at most a day), not the claim


def test_numeric_date_believes_only_plausible_times():
    assert numeric_date(1_800_000_000) == 1_800_000_000.0
    for bad in (float("inf"), float("-inf"), float("nan"), 1e300, -5, 0, True, "soon", "1800000000", None, [1]):
        assert numeric_date(bad) is None, bad
