"""tipd-relay's request parsing (tipd/relay.py) and its independence from the rest of tipd (it is copied into
images), and the docker flags `tipctl grant docker-flags` prints."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tipd import relay
from tipd.cli.grant import compose_snippet, docker_flags
from tipd.relay import Refused, Relay


def parse(head: str, port: int = 9911, host: str = "127.0.0.1") -> tuple[str, str | None, bool]:
    return Relay(host, port, "/nowhere").parse(head.encode("latin-1"))


def test_an_sdk_request_parses():
    assert parse("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nAuthorization: abc\r\n\r\n") == \
        ("/v1/credentials/work", "abc", True)
    assert parse("GET /v1/credentials/work HTTP/1.0\r\nHost: localhost:9911\r\n\r\n")[1:] == (None, False)
    assert parse("GET /v1/credentials/w HTTP/1.1\r\nHost: 169.254.170.2\r\n\r\n", port=80,
                 host="169.254.170.2")[0] == "/v1/credentials/w"


@pytest.mark.parametrize(("head", "status"), [
    ("POST /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\n\r\n", 405),
    ("GET /v1/credentials/../x HTTP/1.1\r\nHost: 127.0.0.1:9911\r\n\r\n", 404),
    ("GET /v1/credentials/%2e%2e HTTP/1.1\r\nHost: 127.0.0.1:9911\r\n\r\n", 404),
    ("GET /v1/credentials/work?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9911\r\n\r\n", 404),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),
    ("GET /v1/credentials/work HTTP/1.1\r\n\r\n", 403),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nOrigin: https://x\r\n\r\n", 403),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nContent-Length: 3\r\n\r\n", 413),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nHost: 127.0.0.1:9911\r\n\r\n", 400),
    ("GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nAuthorization: " + "a" * 300 + "\r\n\r\n", 401),
    ("GET /v1/credentials/work\r\n\r\n", 400),
    ("GET /v1/credentials/work HTTP/1.1\r\nno colon\r\n\r\n", 400),
])
def test_bad_requests_are_refused_before_tipd(head, status):
    with pytest.raises(Refused) as e:
        parse(head)
    assert e.value.status == status


def test_the_relay_runs_alone_from_a_copy_with_the_standard_library_only(tmp_path):
    copy = tmp_path / "relay.py"
    shutil.copy(relay.__file__, copy)
    r = subprocess.run([sys.executable, "-I", "-S", str(copy), "--help"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and "tipd-relay" in r.stdout, r.stderr
    text = Path(relay.__file__).read_text()
    assert "from ." not in text and "import tipd" not in text and "from tipd" not in text


def test_docker_flags_mount_directories_and_set_the_sdk_variables(tmp_path):
    out = docker_flags("box", ["work"], tmp_path / "box", 9911)
    assert f"-v {tmp_path / 'box'}:/run/tipd:ro" in out
    assert "/run/tipd-relay" in out and "relay/credentials.sock" not in out.split("/run/tipd-relay")[0]
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/v1/credentials/work" in out
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/tipd/token" in out
    assert "control.sock" not in out


def test_compose_snippet_is_yaml_with_the_sidecar_and_the_sdk_variables(tmp_path):
    import yaml

    doc = yaml.safe_load(compose_snippet("box", ["work"], tmp_path / "box", 9911))
    relay, app = doc["services"]["tipd-relay"], doc["services"]["app"]
    assert app["network_mode"] == "service:tipd-relay" and f"{tmp_path / 'box'}:/run/tipd:ro" in app["volumes"]
    assert app["environment"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:9911/v1/credentials/work"
    assert app["environment"]["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == "/run/tipd/token"
    assert any(v.endswith(":/run/tipd-relay:ro") for v in relay["volumes"])  # read-only: no container replaces it
