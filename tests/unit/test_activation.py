"""What can be tested of socket activation, the instance lock and the core-dump guard without a service
manager: sd_listen_fds' rules for LISTEN_PID/LISTEN_FDS, launchd's launch_activate_socket marshalling (through
a C-callable stand-in: the real one exists only on macOS, which this suite does not run on), the checks on an
inherited socket, the lock, and /proc/net/tcp parsing. The real thing is in tests/acceptance/test_lifecycle.py."""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys

import pytest

from tipd.activation import inherited_listener, launchd_fds, systemd_fds
from tipd.errors import ConfigError
from tipd.instance import AlreadyRunning, InstanceLock
from tipd.portowner import listener_uids

ACTIVATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
                            ctypes.POINTER(ctypes.c_size_t))


def test_systemd_fds_only_for_the_pid_they_were_meant_for_and_never_passed_on():
    env = {"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    assert systemd_fds(env, pid=4242) == [3, 4]
    assert env == {"OTHER": "x"}  # unset, as sd_listen_fds(1) does: a child must not take them for its own
    env = {"LISTEN_PID": "4242", "LISTEN_FDS": "1"}
    assert systemd_fds(env, pid=1111) == [] and env == {}  # inherited through a fork: not ours
    assert systemd_fds({}, pid=1) == []
    with pytest.raises(ConfigError):
        systemd_fds({"LISTEN_PID": "7", "LISTEN_FDS": "lots"}, pid=7)


def test_launchd_fds_marshals_launch_activate_socket_and_frees_the_array():
    keep = []
    freed: list[object] = []

    @ACTIVATE
    def activate(name, fds, count):
        assert name == b"Listeners"
        array = (ctypes.c_int * 2)(7, 9)
        keep.append(array)
        fds[0] = ctypes.cast(array, ctypes.POINTER(ctypes.c_int))
        count[0] = 2
        return 0

    assert launchd_fds(activate=activate, free=freed.append) == [7, 9]
    assert len(freed) == 1


@pytest.mark.parametrize("rc", [errno.ESRCH, errno.ENOENT])
def test_launchd_fds_is_empty_when_not_started_by_launchd(rc):
    @ACTIVATE
    def activate(name, fds, count):
        return rc

    assert launchd_fds(activate=activate) == []


def test_launchd_fds_elsewhere_is_empty():
    if sys.platform == "darwin":
        pytest.skip("on macOS the real launch_activate_socket answers")
    assert launchd_fds() == []


def listening(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((host, 0))
    s.listen()
    return s


def test_an_inherited_socket_is_used_when_it_is_loopback_and_the_configured_port():
    s = listening()
    port = s.getsockname()[1]
    got = inherited_listener(port, fds=[os.dup(s.fileno())])
    try:
        assert got is not None and got.getsockname() == ("127.0.0.1", port) and not got.get_inheritable()
    finally:
        if got is not None:
            got.close()
        s.close()
    assert inherited_listener(port, fds=[]) is None


def test_an_inherited_socket_on_another_port_or_address_is_refused():
    s = listening()
    with pytest.raises(ConfigError, match="but the config says 1"):
        inherited_listener(1, fds=[os.dup(s.fileno())])
    s.close()
    wild = listening("0.0.0.0")
    with pytest.raises(ConfigError, match="not on a loopback address"):
        inherited_listener(wild.getsockname()[1], fds=[os.dup(wild.fileno())])
    wild.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(ConfigError, match="no IPv4 stream socket"):
        inherited_listener(1, fds=[os.dup(udp.fileno())])
    udp.close()


def test_the_instance_lock_admits_one_and_names_the_holder(tmp_path):
    first = InstanceLock(tmp_path)
    first.acquire()
    # another process, as a second tipd would be (flock is per open file description)
    code = ("import sys; from pathlib import Path; from tipd.instance import InstanceLock, AlreadyRunning\n"
            "try:\n    InstanceLock(Path(sys.argv[1])).acquire()\nexcept AlreadyRunning as e:\n"
            "    print(e.message); sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and f"pid {os.getpid()}" in r.stdout
    first.release()
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert AlreadyRunning.code == "AlreadyRunning"


def test_a_lock_path_that_is_a_directory_is_a_sentence(tmp_path):
    (tmp_path / "tipd.lock").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        InstanceLock(tmp_path).acquire()


def test_core_dumps_are_forbidden_before_anything_else():
    code = ("import resource; from tipd.coredump import forbid_core_dumps, dumpable\n"
            "resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
            "print(forbid_core_dumps(), dumpable(), resource.getrlimit(resource.RLIMIT_CORE))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    expected_dumpable = "0" if sys.platform.startswith("linux") else "None"
    assert r.stdout.strip() == f"[] {expected_dumpable} (0, 0)"


def test_listener_uids_reads_proc_net_tcp(tmp_path):
    (tmp_path / "tcp").write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:26B7 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1\n"
        "   1: 00000000:26B7 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 2\n"
        "   2: 0100007F:26B7 0100007F:9999 01 00000000:00000000 00:00000000 00000000  1002        0 3\n"
        "   3: 0A00000A:26B7 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 4\n"
        "   4: 0100007F:26B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1004        0 5\n")
    (tmp_path / "tcp6").write_text(
        "  sl  local_address                         remote_address                        st ... uid\n"
        "   0: 00000000000000000000000000000000:26B7 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000  1005        0 6\n")
    # 9911 = 0x26B7: the loopback and wildcard listeners, not the connection (01), 10.0.0.10 or port 9912
    assert listener_uids(9911, tmp_path) == {65534, 1001, 1005}


def test_listener_uids_sees_a_real_listener():
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp")
    s = listening()
    try:
        assert os.getuid() in listener_uids(s.getsockname()[1])
    finally:
        s.close()
