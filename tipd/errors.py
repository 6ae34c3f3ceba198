"""Errors that carry a sentence a person can act on, a stable code, and an HTTP status.

Every message here is shown to users as is, so none may contain a secret."""
from __future__ import annotations


class TipdError(Exception):
    code = "TipdError"
    status = 500
    #: a permanent failure needs the user (a new login, a config fix); a transient one is retried
    permanent = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 permanent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if permanent is not None:
            self.permanent = permanent

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(TipdError):
    code = "ConfigError"
    status = 500
    permanent = True


class UnknownProfile(TipdError):
    code = "UnknownProfile"
    status = 404
    permanent = True


class LoginRequired(TipdError):
    code = "LoginRequired"
    status = 401
    permanent = True


class UpstreamError(TipdError):
    """A call to the IdP or AWS failed. `permanent` says whether retrying can help."""

    code = "UpstreamError"
    status = 502


class LoginError(TipdError):
    """The browser or device sign-in did not complete."""

    code = "LoginError"
    status = 400
    permanent = True
