"""Profiles for the IdP client's unit tests: a valid config.Profile with the fields a test names."""
from __future__ import annotations

from typing import Any

from tipd.config import Profile

BASE = dict(issuer="http://127.0.0.1:1", client_id="cid", scopes=["openid", "email", "offline_access"],
            application_arn="arn:aws:sso::123456789012:application/ssoins-0123456789abcdef/apl-0123456789abcdef",
            oidc_role_arn="arn:aws:iam::123456789012:role/oidc",
            identity_enhanced_role_arn="arn:aws:iam::123456789012:role/enhanced", region="eu-west-1")


def profile(**over: Any) -> Profile:
    """A Profile; settings Profile does not know yet (before the config grows them) are set as attributes."""
    known = {k: v for k, v in over.items() if k in Profile.model_fields}
    p = Profile.model_validate({**BASE, **known})
    extra = {k: v for k, v in over.items() if k not in Profile.model_fields}
    if extra:
        p = _WithExtra(p, extra)  # type: ignore[assignment]
    return p


class _WithExtra:
    def __init__(self, base: Profile, extra: dict[str, Any]) -> None:
        self._base, self._extra = base, extra

    def __getattr__(self, name: str) -> Any:
        return self._extra[name] if name in self._extra else getattr(self._base, name)
