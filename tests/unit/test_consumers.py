"""Consumer tokens' registry (tipd/consumers.py): ttl parsing, name bounds, the cap, expiry on an injected clock,
revocation and rotation at once, and only hashes at rest."""
from __future__ import annotations

import json
import stat

import pytest

from tipd import consumers
from tipd.consumers import Consumers, GrantError, check_name, parse_ttl


class Now:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def reg(tmp_path):
    now = Now()
    return Consumers(tmp_path / "grants.json", now), now


@pytest.mark.parametrize(("text", "seconds"), [("60", 60), ("90s", 90), ("30m", 1800), ("8h", 28800),
                                               ("7d", 604800), (" 2H ", 7200), ("90d", 90 * 86400)])
def test_ttl_parses(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "8x", "-5m", "1.5h", "59s", "91d", "99999999d", "8h30m", "1e3"])
def test_bad_ttl_is_a_sentence(text):
    with pytest.raises(GrantError) as e:
        parse_ttl(text)
    assert "duration" in e.value.message or "between" in e.value.message


@pytest.mark.parametrize("name", ["ci", "a", "dev-box_1.x", "x" * 63])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 64, "Upper", "-lead", ".hidden", "a/b", "../x", "a b", "é", "a\n"])
def test_bad_names(name):
    with pytest.raises(GrantError):
        check_name(name)


def test_match_expiry_revoke_rotate(reg):
    r, now = reg
    g, token = r.create("ci", ["work"], 3600)
    assert r.match(token.encode()) is g and g.uses == 0
    r.used(g)
    assert g.uses == 1 and g.last_used == now.t
    assert r.match(token[:-1].encode()) is None and r.match(b"x" * 43) is None
    now.t += 3599
    assert r.match(token.encode()) is g
    now.t += 1
    assert r.match(token.encode()) is None  # expired at its expiry instant
    g2, t2 = r.create("cd", ["work"], 600)
    _, t3 = r.rotate("cd")
    assert r.match(t2.encode()) is None and r.match(t3.encode()) is g2
    r.revoke("cd")
    assert r.match(t3.encode()) is None


def test_only_hashes_at_rest_0600_and_reload(reg, tmp_path):
    r, now = reg
    _, token = r.create("ci", ["work", "work", "other"], 3600)
    text = (tmp_path / "grants.json").read_text()
    assert token not in text and stat.S_IMODE((tmp_path / "grants.json").stat().st_mode) == 0o600
    again = Consumers(tmp_path / "grants.json", now)
    again.load()
    g = again.match(token.encode())
    assert g is not None and g.profiles == ("work", "other")


def test_a_damaged_file_loads_nothing_and_says_so(tmp_path, caplog):
    (tmp_path / "grants.json").write_text(json.dumps({"grants": [{"name": "x"}, "junk"]}))
    r = Consumers(tmp_path / "grants.json", Now())
    r.load()
    assert r.by_name == {}


def test_bounds_on_grants_and_profiles(reg, monkeypatch):
    r, now = reg
    monkeypatch.setattr(consumers, "MAX_GRANTS", 3)
    for i in range(3):
        r.create(f"g{i}", ["work"], 60)
    with pytest.raises(GrantError, match="revoke some"):
        r.create("g3", ["work"], 60)
    now.t += 61  # expired grants make room
    r.create("g3", ["work"], 60)
    with pytest.raises(GrantError, match="exists"):
        r.create("g3", ["work"], 60)
    with pytest.raises(GrantError, match="profiles"):
        r.create("many", [f"p{i}" for i in range(consumers.MAX_PROFILES + 1)], 60)
    with pytest.raises(GrantError, match="profiles"):
        r.create("none", [], 60)
    with pytest.raises(GrantError, match="between"):
        r.create("long", ["work"], consumers.MAX_TTL + 1)


def test_a_grants_token_directory_is_kept_across_a_restart_and_bounded(reg, tmp_path):
    """`tipctl grant --dir D`: tipd records D so that a rotation writes the new token where the container mounts
    it; only an absolute, bounded path without NUL is taken."""
    r, now = reg
    r.create("ci", ["work"], 3600, "/srv/ci/tipd")
    r.create("plain", ["work"], 3600)
    again = Consumers(tmp_path / "grants.json", now)
    again.load()
    assert again.get("ci").token_dir == "/srv/ci/tipd" and again.get("plain").token_dir is None
    assert {g["name"]: g["token_dir"] for g in again.listing()} == {"ci": "/srv/ci/tipd", "plain": None}
    for bad in ("relative/dir", "/a\0b", "/" + "x" * 4096):
        with pytest.raises(GrantError, match="token_dir"):
            r.create("bad", ["work"], 3600, bad)
