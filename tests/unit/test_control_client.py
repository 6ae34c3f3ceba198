"""The stdlib control client: a socket it cannot use is one sentence, never a traceback."""
from __future__ import annotations

import pytest

from tipd.cli.control import ControlClient, DaemonNotRunning
from tipd.errors import TipdError


def test_a_socket_path_too_long_is_a_sentence(tmp_path):
    ctl = ControlClient(tmp_path / ("r" * 120) / "control.sock", timeout=2)
    with pytest.raises(TipdError) as e:
        ctl.request("GET", "/v1/status")
    assert not isinstance(e.value, DaemonNotRunning) and "control socket" in e.value.message
    with pytest.raises(TipdError) as e:
        next(ctl.events("/v1/events"))
    assert "control socket" in e.value.message


def test_no_socket_means_not_running(tmp_path):
    with pytest.raises(DaemonNotRunning):
        ControlClient(tmp_path / "control.sock", timeout=2).request("GET", "/v1/status")
