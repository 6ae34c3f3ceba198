"""sd_notify: the datagram systemd reads, to a socket path or an abstract socket; silence outside systemd.
(The real daemon's READY=1 / STOPPING=1 timing is in tests/acceptance/test_service.py.)"""
import logging
import os
import socket
import tempfile

import pytest

from tipd.sdnotify import notify


@pytest.fixture
def receiver():
    """A bound datagram socket standing where systemd's notify socket would be."""
    d = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    yield path, s
    s.close()
    os.unlink(path)
    os.rmdir(d)


def test_sends_the_fields_as_one_newline_separated_datagram(receiver):
    path, s = receiver
    assert notify("READY=1", "STATUS=serving", environ={"NOTIFY_SOCKET": path}) is True
    assert s.recv(4096) == b"READY=1\nSTATUS=serving"


def test_reads_notify_socket_from_the_process_environment(receiver, monkeypatch):
    path, s = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("STOPPING=1") is True
    assert s.recv(4096) == b"STOPPING=1"


def test_abstract_socket_named_with_a_leading_at():
    name = f"tipd-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name}) is True
        assert s.recv(4096) == b"READY=1"
    # and the '@' form never touches the file system: no file named like it appeared
    assert not os.path.exists("@" + name) and not os.path.exists(name)


def test_without_notify_socket_it_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_a_socket_nobody_listens_on_is_logged_not_raised(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tipd.sdnotify"):
        assert notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert "could not notify the service manager" in caplog.text


def test_an_address_of_another_kind_is_refused(caplog):
    with caplog.at_level(logging.WARNING, logger="tipd.sdnotify"):
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert "neither a path nor an abstract socket" in caplog.text
