"""`tipctl accounts sync`'s plan and the config edit it makes (tipd/accountsync.py, tomledit.remove_table)."""
from __future__ import annotations

import pytest

from tipd.accountsync import Assignment, check_template, plan_sync, profile_name
from tipd.configure.tomledit import remove_table
from tipd.errors import ConfigError

PROD = Assignment("111111111111", "Prod Main", "prod@example.com", "AdministratorAccess")
DEV = Assignment("222222222222", "dev", "dev@example.com", "ReadOnly")


def table(account: str, role: str, synced: bool = True, source: str = "work") -> dict[str, object]:
    return {"source": source, "account_id": account, "role_name": role, "synced": synced}


def test_names_come_from_the_template_made_valid() -> None:
    assert profile_name("{account_name}-{role_name}", PROD) == "Prod-Main-AdministratorAccess"
    assert profile_name("{account_id}/{role_name}", DEV) == "222222222222-ReadOnly"
    assert profile_name("{account_email}", DEV) == "dev-example.com"
    assert len(profile_name("{role_name}" * 10, PROD)) == 64


@pytest.mark.parametrize("template", ["{account}", "plain", "{role_name", "{0}"])
def test_a_template_with_unknown_or_no_fields_is_a_sentence(template: str) -> None:
    with pytest.raises(ConfigError, match="--template"):
        check_template(template)


def test_sync_adds_the_new_keeps_what_is_there_and_removes_only_what_it_made() -> None:
    profiles = {"work": {"issuer": "x"},
                "old-synced": table("333333333333", "Gone"),
                "by-hand": table("444444444444", "Gone", synced=False),
                "prod": table(PROD.account_id, PROD.role_name, synced=False),  # already there, by another name
                "other-source": table("555555555555", "Gone", source="home")}
    plan = plan_sync(profiles, None, "work", [PROD, DEV])
    assert plan.added == {"dev-ReadOnly": table(DEV.account_id, DEV.role_name)}
    assert plan.unchanged == ["prod"] and plan.removed == ["old-synced"] and plan.kept == ["by-hand"]
    assert plan.skipped == []


def test_a_taken_name_and_the_default_profile_are_skipped_with_a_reason() -> None:
    profiles = {"work": {"issuer": "x"}, "dev-ReadOnly": {"issuer": "y"},
                "gone": table("333333333333", "Gone")}
    plan = plan_sync(profiles, "gone", "work", [DEV])
    assert plan.added == {} and plan.removed == []
    reasons = dict(plan.skipped)
    assert "the name is taken" in reasons["dev-ReadOnly"] and "default_profile" in reasons["gone"]


def test_an_empty_listing_removes_nothing_unless_allowed() -> None:
    profiles = {"work": {"issuer": "x"}, "old": table("333333333333", "Gone")}
    plan = plan_sync(profiles, None, "work", [])
    assert plan.removed == [] and "listed no accounts" in dict(plan.skipped)["old"]
    assert plan_sync(profiles, None, "work", [], allow_empty=True).removed == ["old"]


def test_two_roles_that_the_template_names_alike_add_one_and_skip_the_other() -> None:
    plan = plan_sync({"work": {}}, None, "work", [PROD, Assignment("999999999999", "x", "", PROD.role_name)],
                     template="{role_name}")
    assert list(plan.added) == ["AdministratorAccess"] and plan.skipped[0][0] == "AdministratorAccess"


def test_remove_table_takes_out_one_table_and_nothing_else() -> None:
    text = "# mine\n[server]\nport = 1\n\n[profiles.a]\nx = 1  # note\n\n[profiles.b]\ny = 2\n"
    assert remove_table(text, "a") == "# mine\n[server]\nport = 1\n\n[profiles.b]\ny = 2\n"
    assert remove_table(text, "b") == "# mine\n[server]\nport = 1\n\n[profiles.a]\nx = 1  # note\n"
    assert remove_table(text, "c") == text
    with pytest.raises(ConfigError, match="does not rewrite"):
        remove_table('profiles.a.x = 1\n', "a")


@pytest.mark.parametrize("template", ["{account_name:>99999999999999}", "{role_name:x<1000000000}",
                                      "{account_name!r}-{role_name}"])
def test_attack_a_template_with_a_format_spec_is_refused_before_it_allocates(template: str) -> None:
    """`--template '{account_name:>99999999999999}'`: a format spec pads to any width (unfixed: a MemoryError
    traceback after trying to allocate terabytes); a conversion (`!r`) quotes. The template takes plain fields."""
    with pytest.raises(ConfigError, match="plain"):
        check_template(template)
