"""User-given URLs that urlsplit only half-checks: one sentence each, never a ValueError traceback."""
from __future__ import annotations

import pytest

from tipd.cfn import TemplateError, check_issuer
from tipd.configure.presets import FieldError, cognito_domain, okta_org_url
from tipd.diag.facts import loose_url
from tipd.thumbprint import ThumbprintError, fetch_thumbprints
from tipd.urls import split_url

BAD = ["https://[::1", "https://idp.example.com:99999", "https://idp.example.com:port"]


@pytest.mark.parametrize("url", BAD)
def test_split_url_raises_value_error_naming_the_problem(url):
    with pytest.raises(ValueError):
        split_url(url)


@pytest.mark.parametrize("url", BAD)
def test_each_caller_turns_a_bad_url_into_its_own_sentence(url):
    with pytest.raises(TemplateError, match="not a valid URL"):
        check_issuer(url)
    with pytest.raises(ThumbprintError, match="not a valid URL"):
        fetch_thumbprints(url)  # refused before any connection
    with pytest.raises(FieldError):
        okta_org_url(url)
    with pytest.raises(FieldError):
        cognito_domain(url, "eu-west-1")
    assert loose_url("https://[::1") == "https://[::1"


def test_the_config_refuses_it_as_a_field_error(tmp_path):
    from tipd.config import parse_config
    from tipd.errors import ConfigError

    profile = dict(issuer="https://idp.example.com:99999", client_id="c", region="eu-west-1",
                   application_arn="arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd",
                   oidc_role_arn="arn:aws:iam::111122223333:role/a",
                   identity_enhanced_role_arn="arn:aws:iam::111122223333:role/b")
    with pytest.raises(ConfigError, match=r"profiles\.work\.issuer"):
        parse_config({"profiles": {"work": profile}}, "test")
