"""Headless approval / denial of a device-flow user code at the test IdP (stdlib only).

oidc-provider's verification page (``/device``) is a form with a per-session ``xsrf`` field and
``user_code``; submitting it renders a confirmation form (``xsrf``, ``user_code``,
``confirm=yes``; its "[ Abort ]" button sends ``abort=yes`` instead). Confirming leads to the
devInteractions login and consent pages, then to ``/device/<uid>`` which renders "Sign-in
Success".
"""
from __future__ import annotations

import urllib.parse

from .browser import BrowserError, Session, describe, drive_interactions, form_with, parse_page


def _confirm_page(session: Session, issuer: str, user_code: str) -> tuple[str, dict[str, str]]:
    verify = issuer.rstrip("/") + "/device"
    resp = session.get(verify)
    if resp.status != 200:
        raise BrowserError(f"device verification page: {describe(resp)}")
    form = form_with(parse_page(resp.text), "xsrf")
    if form is None:
        raise BrowserError(f"no xsrf form on the verification page: {describe(resp)}")
    action = urllib.parse.urljoin(resp.url, form.action or verify)
    resp = session.post(action, {**form.fields, "user_code": user_code})
    if resp.status != 200:
        raise BrowserError(f"submitting the user code: {describe(resp)}")
    page = parse_page(resp.text)
    confirm = form_with(page, "confirm", "yes")
    if confirm is None:
        raise BrowserError(f"user code {user_code!r} not accepted: {describe(resp)}")
    return urllib.parse.urljoin(resp.url, confirm.action or action), confirm.fields


def approve_device_code(issuer: str, user_code: str, login: str = "alice") -> None:
    """Enter ``user_code`` at the IdP's verification page, sign in as ``login`` and consent."""
    session = Session()
    action, fields = _confirm_page(session, issuer, user_code)
    resp = session.post(action, dict(fields))
    resp, _steps = drive_interactions(session, resp, login)
    if resp.status != 200 or "Sign-in Success" not in resp.text:
        raise BrowserError(f"device approval did not succeed: {describe(resp)}")


def deny_device_code(issuer: str, user_code: str, login: str = "alice") -> None:
    """Enter ``user_code`` and press "Abort" on the confirmation page: the device's token
    polling then gets ``access_denied``. (``login`` is accepted for symmetry; no sign-in
    happens before the abort.)"""
    del login
    session = Session()
    action, fields = _confirm_page(session, issuer, user_code)
    fields = {k: v for k, v in fields.items() if k != "confirm"}
    fields["abort"] = "yes"
    resp = session.post(action, fields)
    if resp.status != 200 or "interrupted" not in resp.text:
        raise BrowserError(f"device denial did not take: {describe(resp)}")
