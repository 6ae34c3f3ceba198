"""Profiles for unit tests: a valid config.Profile with the fields a test names, a profile table for
parse_config, and a whole valid config file."""
from __future__ import annotations

from typing import Any

from tipd.config import Profile

BASE = dict(issuer="http://127.0.0.1:1", client_id="cid", scopes=["openid", "email", "offline_access"],
            application_arn="arn:aws:sso::123456789012:application/ssoins-0123456789abcdef/apl-0123456789abcdef",
            oidc_role_arn="arn:aws:iam::123456789012:role/oidc",
            identity_enhanced_role_arn="arn:aws:iam::123456789012:role/enhanced", region="eu-west-1")


# the [profiles.work] table of a config, for parse_config({"profiles": {"work": PROFILE}}, ...)
PROFILE = {
    "issuer": "http://127.0.0.1:1", "client_id": "cid",
    "application_arn": "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd",
    "oidc_role_arn": "arn:aws:iam::111122223333:role/a",
    "identity_enhanced_role_arn": "arn:aws:iam::111122223333:role/b",
    "region": "eu-west-1",
}

# a whole valid config file
GOOD_CONFIG = """
[server]
port = 9911
[profiles.work]
issuer = "https://dev-123.okta.com/oauth2/default"
client_id = "0oa1"
application_arn = "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
oidc_role_arn = "arn:aws:iam::111122223333:role/tip-oidc"
identity_enhanced_role_arn = "arn:aws:iam::111122223333:role/tip-enhanced"
region = "eu-west-1"
"""


def profile(**over: Any) -> Profile:
    """A Profile; settings Profile does not know yet (before the config grows them) are set as attributes."""
    known = {k: v for k, v in over.items() if k in Profile.model_fields}
    p = Profile.model_validate({**BASE, **known})
    extra = {k: v for k, v in over.items() if k not in Profile.model_fields}
    if extra:
        p = _WithExtra(p, extra)  # type: ignore[assignment]  # a stand-in: Profile's attributes plus `extra`
    return p


class _WithExtra:
    def __init__(self, base: Profile, extra: dict[str, Any]) -> None:
        self._base, self._extra = base, extra

    def __getattr__(self, name: str) -> Any:
        return self._extra[name] if name in self._extra else getattr(self._base, name)
