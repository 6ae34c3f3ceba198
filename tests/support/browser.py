#!/usr/bin/env python3
"""A headless "browser" for the test IdP's sign-in pages (stdlib only).

Usable as the BROWSER environment variable for Python's webbrowser module, which runs
``$BROWSER <url>`` and waits for the process to exit (``webbrowser.open`` returns True iff the
exit status is 0)::

    BROWSER=/abs/path/tests/support/browser.py      # executable, #!/usr/bin/env python3

webbrowser does NOT split BROWSER into words (Python 3.11-3.13 treat the whole value as one
executable path; it only splits on os.pathsep), so "python /abs/path/browser.py" does not work
as BROWSER: point it at this file, which is executable. ``python browser.py <url>`` also works
when running it by hand.

It drives oidc-provider's devInteractions: GET the authorize URL, follow the redirects to the
interaction pages, POST the login form and the consent form, and when the IdP redirects to the
loopback redirect_uri, GET that URL (the CLI's loopback receiver) and exit 0.

Environment:
  TIPD_TEST_LOGIN         login name (default alice; the IdP accepts any name and password)
  TIPD_TEST_BROWSER_MODE  login (default) | deny | bad-state | favicon-first | nothing | linger
      login          sign in and consent, then deliver the callback
      deny           sign in, then abort at the consent page: callback gets error=access_denied
      bad-state      sign in, but deliver the callback with a different `state` value
      favicon-first  GET /favicon.ico on the callback host first, then the real callback
      nothing        do nothing and exit 0 (for timeout tests)
      linger         like login, then stay running for TIPD_TEST_BROWSER_LINGER seconds (default 120),
                     like a browser command that returns only when its window is closed
  TIPD_TEST_BROWSER_LOG   append one JSON line per run describing what was done (URL paths
                          only: never codes, tokens or query strings)

In-process use: ``complete_login(url, login="alice", mode="login")`` (blocking; call it from a
thread, e.g. ``await asyncio.to_thread(complete_login, url)``, when the receiver runs in the
same event loop).
"""
from __future__ import annotations

import email.message
import http.client
import http.cookiejar
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from typing import IO, Any

MODES = ("login", "deny", "bad-state", "favicon-first", "nothing", "linger")
MAX_STEPS = 30
HTTP_TIMEOUT = 30.0


class BrowserError(RuntimeError):
    """The sign-in could not be driven (IdP error page, unexpected response, ...)."""


# ----- HTML forms ---------------------------------------------------------------------------
class _Form:
    def __init__(self, action: str | None, method: str, form_id: str | None):
        self.action = action
        self.method = method
        self.id = form_id
        self.fields: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<form id={self.id!r} action={self.action!r} fields={sorted(self.fields)}>"


class _PageParser(HTMLParser):
    """Collects forms (with their inputs), buttons that submit a form by id, and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[str] = []
        self.buttons: list[dict[str, str]] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = _Form(a.get("action"), a.get("method", "get").lower(), a.get("id"))
            self.forms.append(self._current)
        elif tag == "input" and a.get("name"):
            form = self._form_for(a)
            if form is not None and a.get("type", "text").lower() not in ("submit", "button"):
                form.fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons.append(a)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def _form_for(self, a: dict[str, str]) -> _Form | None:
        if a.get("form"):
            return next((f for f in self.forms if f.id == a["form"]), None)
        return self._current


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


# ----- HTTP ---------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,  # noqa: D401
                         headers: http.client.HTTPMessage, newurl: str) -> None:
        return None  # we walk redirects ourselves, to stop at the loopback redirect_uri


class Response:
    def __init__(self, url: str, status: int, headers: email.message.Message, body: bytes) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str | None:
        loc = self.headers.get("Location")
        return urllib.parse.urljoin(self.url, loc) if loc else None


class Session:
    """A cookie-keeping HTTP client that never follows redirects and ignores proxy settings."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.timeout = timeout
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(),
        )

    def request(self, url: str, data: dict[str, str] | None = None) -> Response:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        req.add_header("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return Response(url, resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx
            with err:
                return Response(url, err.code, err.headers, err.read())

    def get(self, url: str) -> Response:
        return self.request(url)

    def post(self, url: str, data: dict[str, str]) -> Response:
        return self.request(url, data)


def _is_redirect(resp: Response) -> bool:
    return resp.status in (301, 302, 303, 307, 308) and resp.location is not None


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def describe(resp: Response) -> str:
    snippet = " ".join(resp.text.split())[:400]
    return f"{resp.status} from {_path(resp.url)}: {snippet}"


def form_with(page: _PageParser, field: str, value: str | None = None) -> _Form | None:
    for form in page.forms:
        if field in form.fields and (value is None or form.fields[field] == value):
            return form
    return None


def drive_interactions(session: Session, resp: Response, login: str, *,
                       deny: bool = False,
                       stop_at: Callable[[str], bool] | None = None) -> tuple[Response, list[str]]:
    """Walk redirects and answer devInteractions pages until ``stop_at(url)`` is true for a
    redirect target (that URL is then returned un-fetched as ``resp.location``) or a page that
    is not an interaction page is reached. Returns (last response, steps taken)."""
    steps: list[str] = []
    for _ in range(MAX_STEPS):
        if _is_redirect(resp):
            target = resp.location
            assert target is not None  # a redirect has a Location
            if stop_at is not None and stop_at(target):
                return resp, steps
            steps.append(f"GET {_path(target)}")
            resp = session.get(target)
            continue
        if resp.status != 200:
            raise BrowserError(f"unexpected response {describe(resp)}")
        page = parse_page(resp.text)
        login_form = form_with(page, "prompt", "login")
        consent_form = form_with(page, "prompt", "consent")
        if login_form is not None:
            fields = dict(login_form.fields)
            fields.update(login=login, password="any-password")
            action = urllib.parse.urljoin(resp.url, login_form.action or resp.url)
            steps.append(f"POST {_path(action)} (login)")
            resp = session.post(action, fields)
        elif consent_form is not None and deny:
            abort = next((link for link in page.links if link.rstrip("/").endswith("/abort")), None)
            if abort is None:
                raise BrowserError(f"no abort link on consent page {_path(resp.url)}")
            abort = urllib.parse.urljoin(resp.url, abort)
            steps.append(f"GET {_path(abort)} (abort)")
            resp = session.get(abort)
        elif consent_form is not None:
            action = urllib.parse.urljoin(resp.url, consent_form.action or resp.url)
            steps.append(f"POST {_path(action)} (consent)")
            resp = session.post(action, dict(consent_form.fields))
        else:
            return resp, steps
    raise BrowserError(f"sign-in did not finish within {MAX_STEPS} steps: {steps}")


def _same_endpoint(url: str, redirect_uri: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(redirect_uri)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def _replace_state(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, f"tampered-{secrets.token_urlsafe(12)}" if k == "state" else v) for k, v in query]
    if not any(k == "state" for k, _ in query):
        query.append(("state", f"tampered-{secrets.token_urlsafe(12)}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _log(record: dict[str, Any]) -> None:
    path = os.environ.get("TIPD_TEST_BROWSER_LOG")
    if not path:
        return
    line = json.dumps(record, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def complete_login(url: str, login: str = "alice", mode: str = "login") -> None:
    """Complete the sign-in that the authorize ``url`` starts and deliver the callback.

    Raises BrowserError if the IdP does not lead to the redirect_uri. The callback's own HTTP
    status (the receiver may answer 400 for bad-state, say) is logged, not raised."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    started = time.monotonic()
    record: dict[str, Any] = {"mode": mode, "login": login, "authorize_path": _path(url), "pid": os.getpid()}
    try:
        if mode == "nothing":
            record["outcome"] = "nothing"
            return
        redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("redirect_uri")
        if not redirect_uri:
            raise BrowserError("authorize URL has no redirect_uri parameter")
        session = Session()
        resp = session.get(url)
        resp, steps = drive_interactions(
            session, resp, login, deny=(mode == "deny"),
            stop_at=lambda target: _same_endpoint(target, redirect_uri),
        )
        record["steps"] = steps
        callback = resp.location if _is_redirect(resp) else None
        if callback is None or not _same_endpoint(callback, redirect_uri):
            raise BrowserError(f"IdP did not redirect to the redirect_uri: {describe(resp)}")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
        record["callback_path"] = _path(callback)
        record["callback_params"] = sorted(query)  # names only, never values
        if "error" in query:
            record["idp_error"] = query["error"]
        if mode == "bad-state":
            callback = _replace_state(callback)
        receiver = Session()
        if mode == "favicon-first":
            parts = urllib.parse.urlsplit(callback)
            favicon = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/favicon.ico", "", ""))
            try:
                record["favicon_status"] = receiver.get(favicon).status
            except OSError as err:
                record["favicon_status"] = f"error: {type(err).__name__}"
        record["callback_status"] = receiver.get(callback).status
        record["outcome"] = "delivered"
    except Exception as err:
        record["outcome"] = "error"
        record["error"] = f"{type(err).__name__}: {err}"[:300]
        raise
    finally:
        record["seconds"] = round(time.monotonic() - started, 3)
        _log(record)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: browser.py <authorize-url>", file=sys.stderr)
        return 2
    login = os.environ.get("TIPD_TEST_LOGIN") or "alice"
    mode = os.environ.get("TIPD_TEST_BROWSER_MODE") or "login"
    try:
        complete_login(argv[1], login=login, mode=mode)
    except (BrowserError, OSError, ValueError) as err:
        print(f"browser.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if mode == "linger":  # a browser window left open, not a synchronisation
        time.sleep(float(os.environ.get("TIPD_TEST_BROWSER_LINGER") or 120))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
