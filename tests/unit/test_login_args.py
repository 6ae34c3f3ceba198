"""`tipctl login --timeout` takes a finite number of seconds, or says what is wrong (never `within nan s`)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tipd.cli.login import seconds


@pytest.mark.parametrize("text", ["nan", "-1", "0", "inf", "1e9", "soon", ""])
def test_a_timeout_that_is_not_a_sensible_number_of_seconds_is_refused(text):
    with pytest.raises(Exception) as e:
        seconds(text)
    assert "seconds" in str(e.value) or "number" in str(e.value)


def test_a_plain_number_of_seconds_is_taken():
    assert seconds("5") == 5.0 and seconds("90.5") == 90.5


def test_the_command_refuses_nan_with_a_usage_error_not_a_traceback():
    r = subprocess.run([sys.executable, "-m", "tipd.cli.main", "login", "--timeout", "nan"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--timeout" in r.stderr and "Traceback" not in r.stderr, r.stderr
