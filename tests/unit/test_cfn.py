"""`tipctl cfn-template`: every variant passes cfn-lint, and its policies, resolved the way CloudFormation
would resolve them, grant exactly what was asked."""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from cfnlint.api import lint

from tipd import cfn
from tipd.cli.main import main

ISSUER = "https://idp.example.com/oauth2/default"
AUD = "0oa-tipd-client"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
APP = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com/oauth2/default"
THUMB = "9E99A48A9960B14926BB7F3B02E22DA2B0AB7280"

# The specification: what the identity-enhanced role may do for each service, and on what.
ACTIONS = {
    "s3ag": {"s3:GetDataAccess", "s3:ListCallerAccessGrants", "s3:GetAccessGrantsInstanceForPrefix"},
    "athena": {"athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
               "athena:BatchGetQueryExecution", "athena:GetQueryResults", "athena:GetQueryResultsStream",
               "athena:GetQueryRuntimeStatistics", "athena:ListQueryExecutions", "athena:GetWorkGroup",
               "athena:GetDataCatalog", "athena:GetDatabase", "athena:ListDatabases", "athena:GetTableMetadata",
               "athena:ListTableMetadata", "athena:ListDataCatalogs"},
    "redshift-data": {"redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement",
                      "redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
                      "redshift-data:CancelStatement", "redshift-data:ListStatements"},
    "qbusiness": {"qbusiness:Chat", "qbusiness:ChatSync", "qbusiness:ListConversations", "qbusiness:ListMessages",
                  "qbusiness:DeleteConversation", "qbusiness:PutFeedback"},
    "lakeformation": {"lakeformation:GetDataAccess", "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable",
                      "glue:GetTables", "glue:GetTableVersions", "glue:GetPartition", "glue:GetPartitions",
                      "glue:BatchGetPartition"},
}
#: the AWS managed policy AWSIAMIdentityCenterAllowListForIdentityContext denies every other action in an
#: identity-enhanced session (redshift-data: the Data API's own trusted identity propagation support)
ALLOWED_IN_IDENTITY_CONTEXT = re.compile(
    r"^(athena|glue|lakeformation|qbusiness|redshift-data):|^s3:(GetDataAccess|ListCallerAccessGrants|"
    r"GetAccessGrantsInstanceForPrefix)$")


class Resolved:
    """The template as CloudFormation would deploy it: parameters, conditions and intrinsics evaluated."""

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.t = template
        self.params: dict[str, str] = {k: v.get("Default", "") for k, v in template["Parameters"].items()} | overrides
        for name, value in self.params.items():
            assert re.fullmatch(template["Parameters"][name]["AllowedPattern"], value), (name, value)
        self.pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
        self.conditions = {k: self.value(v) for k, v in template.get("Conditions", {}).items()}
        self.resources = {k: r for k, r in template["Resources"].items()
                          if "Condition" not in r or self.conditions[r["Condition"]]}

    def arn(self, logical: str) -> str:
        kind = self.t["Resources"][logical]["Type"]
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{self.value(self.t['Resources'][logical]['Properties']['RoleName'])}"
        assert kind == "AWS::IAM::OIDCProvider"
        url = self.t["Resources"][logical]["Properties"]["Url"]
        return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url.removeprefix('https://')}"

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        assert name in self.resources, f"Ref to {name}, which is not deployed"
        if self.t["Resources"][name]["Type"] == "AWS::IAM::OIDCProvider":
            return self.arn(name)
        return str(self.value(self.t["Resources"][name]["Properties"]["RoleName"]))  # Ref of a role: its name

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                return self.ref(a)
            if k == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self.ref(m.group(1)), a)
            if k == "Fn::GetAtt":
                assert a[1] == "Arn" and a[0] in self.resources
                return self.arn(a[0])
            if k == "Fn::If":
                return self.value(a[1] if self.conditions[a[0]] else a[2])
            if k == "Fn::Equals":
                return self.value(a[0]) == self.value(a[1])
            if k == "Fn::Not":
                return not self.value(a[0])
            assert not k.startswith("Fn::"), k
        return {k: self.value(x) for k, x in v.items()}

    def props(self, logical: str) -> dict[str, Any]:
        props: dict[str, Any] = self.value(self.resources[logical]["Properties"])
        return props

    def enhanced_statements(self) -> list[dict[str, Any]]:
        (policy,) = self.props("IdentityEnhancedRole")["Policies"]
        statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
        return statements

    def grants(self, statements: list[dict[str, Any]]) -> dict[str, set[str]]:
        """action -> the resources it is allowed on."""
        out: dict[str, set[str]] = {}
        for s in statements:
            assert s["Effect"] == "Allow" and s["Sid"] and set(s) == {"Sid", "Effect", "Action", "Resource"}
            for action in _list(s["Action"]):
                out.setdefault(action, set()).update(_list(s["Resource"]))
        return out


def _list(v) -> list[Any]:
    return v if isinstance(v, list) else [v]


def build(**kw) -> dict[str, Any]:
    return cfn.build_template(cfn.TemplateSpec(**{"issuer": ISSUER, "audience": AUD, **kw}))


def assert_lints_clean(text: str) -> None:
    problems = [m for m in lint(text, regions=[REGION]) if m.rule.id[0] in "EW"]
    assert problems == [], "\n".join(str(m) for m in problems)


SERVICE_SETS = [(s,) for s in cfn.SERVICES] + [cfn.SERVICES]
VARIANTS = [dict(services=s, thumbprints=t, existing_provider_arn=p, application_arn=a)
            for s, t, p, a in itertools.product(SERVICE_SETS, [(), (THUMB,)], ["", PROVIDER], ["", APP])]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(
    ["+".join(v["services"]) if len(v["services"]) < 5 else "all",
     "thumb" if v["thumbprints"] else "nothumb", "existing" if v["existing_provider_arn"] else "newprovider",
     "app" if v["application_arn"] else "anyapp"]))
def test_every_variant_lints_clean_and_grants_exactly_its_services(variant):
    template = build(**variant)
    text = cfn.render(template)
    assert yaml.safe_load(text) == json.loads(cfn.render(template, as_json=True)) == template
    flags = [bool(variant[k]) for k in ("thumbprints", "existing_provider_arn", "application_arn")]
    if len(variant["services"]) == len(cfn.SERVICES) or len(set(flags)) == 1:
        # a service's parts and the flags' parts never touch: linting every service with no flag and with
        # every flag, and all services with every combination, covers each pairing (cfn-lint takes ~0.5 s)
        assert_lints_clean(text)
    r = Resolved(template)
    granted = r.grants(r.enhanced_statements())
    assert set(granted) == set().union(*(ACTIONS[s] for s in variant["services"]))
    assert all(ALLOWED_IN_IDENTITY_CONTEXT.match(a) for a in granted)
    assert not any("*" in a for a in granted)
    # the provider exists exactly when none was named, with the thumbprint exactly when one was given
    assert ("OidcProvider" in r.resources) == (not variant["existing_provider_arn"])
    if "OidcProvider" in r.resources:
        assert r.props("OidcProvider") == {"Url": ISSUER, "ClientIdList": [AUD],
                                           **({"ThumbprintList": [THUMB.lower()]} if variant["thumbprints"] else {})}


def test_the_oidc_role_trusts_the_provider_for_the_audience_only():
    for existing, provider in (("", f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com/oauth2/default"),
                               (PROVIDER.replace("default", "other"), PROVIDER.replace("default", "other"))):
        r = Resolved(build(existing_provider_arn=existing))
        role = r.props("OidcRole")
        assert role["RoleName"] == "tipd-oidc"
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert trust["Principal"] == {"Federated": provider}
        assert trust["Condition"] == {"StringEquals": {"idp.example.com/oauth2/default:aud": AUD}}
        assert r.value(r.t["Outputs"]["OidcProviderArn"]["Value"]) == provider


def test_the_oidc_role_may_exchange_tokens_and_assume_the_enhanced_role_and_nothing_else():
    r = Resolved(build(services=cfn.SERVICES))
    policy = r.props("OidcRolePolicy")
    assert policy["RoleName"] == "tipd-oidc"
    enhanced = f"arn:aws:iam::{ACCOUNT}:role/tipd-identity-enhanced"
    assert r.grants(policy["PolicyDocument"]["Statement"]) == {
        "sso-oauth:CreateTokenWithIAM": {"arn:aws:sso::*:application/*"},
        "sts:AssumeRole": {enhanced}, "sts:SetContext": {enhanced}}
    # with an application, CreateTokenWithIAM is scoped to it: from the CLI's default or at deploy time
    for r in (Resolved(build(application_arn=APP)), Resolved(build(), IdentityCenterApplicationArn=APP)):
        grants = r.grants(r.props("OidcRolePolicy")["PolicyDocument"]["Statement"])
        assert grants["sso-oauth:CreateTokenWithIAM"] == {APP}


def test_the_enhanced_role_trusts_only_the_oidc_role_with_set_context_for_one_hour():
    r = Resolved(build(), OidcRoleName="corp-tip-oidc", IdentityEnhancedRoleName="corp-tip-user")
    role = r.props("IdentityEnhancedRole")
    assert role["RoleName"] == "corp-tip-user" and role["MaxSessionDuration"] == 3600
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow" and "Condition" not in trust
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/corp-tip-oidc"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:SetContext"]
    outputs = {k: r.value(v["Value"]) for k, v in r.t["Outputs"].items()}
    assert outputs["OidcRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/corp-tip-oidc"
    assert outputs["IdentityEnhancedRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/corp-tip-user"


@pytest.mark.parametrize("service, overrides, expected", [
    ("s3ag", {}, {"s3:GetDataAccess": {f"arn:aws:s3:{REGION}:{ACCOUNT}:access-grants/default"},
                  "s3:GetAccessGrantsInstanceForPrefix": {"*"}}),
    ("s3ag", {"AccessGrantsInstanceArn": "arn:aws:s3:us-east-2:210987654321:access-grants/default"},
     {"s3:ListCallerAccessGrants": {"arn:aws:s3:us-east-2:210987654321:access-grants/default"}}),
    ("athena", {"AthenaWorkgroupName": "analysts"},
     {"athena:StartQueryExecution": {f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/analysts"},
      "athena:GetTableMetadata": {f"arn:aws:athena:{REGION}:{ACCOUNT}:datacatalog/*"},
      "athena:ListDataCatalogs": {"*"}}),
    ("redshift-data", {"RedshiftClusterIdentifier": "dw"},
     {"redshift-data:ExecuteStatement": {f"arn:aws:redshift:{REGION}:{ACCOUNT}:cluster:dw",
                                         f"arn:aws:redshift-serverless:{REGION}:{ACCOUNT}:workgroup/*"},
      "redshift-data:GetStatementResult": {"*"}}),
    ("qbusiness", {"QBusinessApplicationId": "a1b2c3d4-5678-90ab-cdef-111122223333"},
     {"qbusiness:ChatSync": {
         f"arn:aws:qbusiness:{REGION}:{ACCOUNT}:application/a1b2c3d4-5678-90ab-cdef-111122223333"}}),
    ("lakeformation", {"GlueDatabaseName": "sales"},
     {"lakeformation:GetDataAccess": {"*"},
      "glue:GetTable": {f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/sales",
                        f"arn:aws:glue:{REGION}:{ACCOUNT}:table/sales/*"}}),
])
def test_each_service_is_scoped_by_its_parameters(service, overrides, expected):
    r = Resolved(build(services=(service,)), **overrides)
    granted = r.grants(r.enhanced_statements())
    for action, resources in expected.items():
        assert granted[action] == resources


def test_parameters_are_only_those_of_the_chosen_services():
    base = {"OidcRoleName", "IdentityEnhancedRoleName", "ExistingOidcProviderArn", "IdentityCenterApplicationArn"}
    assert set(build()["Parameters"]) == base | {"AccessGrantsInstanceArn"}
    assert set(build(services=("qbusiness",))["Parameters"]) == base | {"QBusinessApplicationId"}
    grouped = build(services=cfn.SERVICES)
    groups = grouped["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert sorted(p for g in groups for p in g["Parameters"]) == sorted(grouped["Parameters"])


def test_the_existing_provider_and_application_become_parameter_defaults():
    params = build(existing_provider_arn=PROVIDER, application_arn=APP)["Parameters"]
    assert params["ExistingOidcProviderArn"]["Default"] == PROVIDER
    assert params["IdentityCenterApplicationArn"]["Default"] == APP


def test_yaml_has_no_anchors_cloudformation_would_reject():
    text = cfn.render(build(services=cfn.SERVICES))
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text)["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a date


@pytest.mark.parametrize("kw, message", [
    (dict(issuer="http://idp.example.com"), "must be an https:// URL"),
    (dict(issuer="idp.example.com"), "must be an https:// URL"),
    (dict(issuer="https://idp.example.com/?x=1"), "query or fragment"),
    (dict(audience=""), "audience"),
    (dict(thumbprints=("abc",)), "40 hex digits"),
    (dict(thumbprints=(THUMB,) * 6), "at most 5"),
    (dict(existing_provider_arn="arn:aws:iam::1:role/x"), "not an IAM OIDC provider ARN"),
    (dict(application_arn="arn:aws:sso:::application/x"), "not an Identity Center application ARN"),
    (dict(services=("s3",)), "unknown service s3"),
    (dict(services=()), "unknown service"),
])
def test_bad_input_is_a_clear_error(kw, message):
    with pytest.raises(cfn.TemplateError, match=re.escape(message)):
        build(**kw)


def test_services_parse_in_canonical_order_with_all():
    assert cfn.parse_services("qbusiness, s3ag") == ("s3ag", "qbusiness")
    assert cfn.parse_services("all") == cfn.SERVICES


# the CLI, in process


def run_cli(capsys, *args):
    rc = main(["cfn-template", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("args, message", [
    (["http://idp.example.com", AUD], "issuer 'http://idp.example.com' must be an https:// URL"),
    ([ISSUER, AUD, "--thumbprint", "not-hex"], "thumbprint 'not-hex' must be 40 hex digits"),
    ([ISSUER, AUD, "--services", "s3,athena"], "unknown service s3"),
    ([ISSUER, AUD, "--application-arn", "apl-1"], "is not an Identity Center application ARN"),
    ([ISSUER, AUD, "--ca-bundle", "/etc/ssl/x.pem"], "--ca-bundle is used only with --fetch-thumbprint"),
    # checked before any network: nothing listens on port 1
    (["http://127.0.0.1:1", AUD, "--fetch-thumbprint"], "must be an https:// URL"),
    (["https://127.0.0.1:1", AUD, "--fetch-thumbprint", "--services", "s3ag,ec2"], "unknown service ec2"),
])
def test_cli_bad_input_is_one_clear_line(capsys, args, message):
    rc, out, err = run_cli(capsys, *args)
    assert rc == 1 and out == ""
    assert err.startswith("tipctl: ") and message in err and err.count("\n") == 1


def test_cli_prints_yaml_and_notes_apart(capsys):
    rc, out, err = run_cli(capsys, ISSUER, AUD, "--services", "athena", "--thumbprint", THUMB)
    assert rc == 0
    assert yaml.safe_load(out) == build(services=("athena",), thumbprints=(THUMB,))
    assert "note: Athena" in err and "lakeformation and s3ag" in err


def test_cli_writes_the_file_and_json(capsys, tmp_path):
    dest = tmp_path / "tipd.json"
    rc, out, err = run_cli(capsys, ISSUER, AUD, "--services", "all", "--existing-provider-arn", PROVIDER,
                           "--application-arn", APP, "--json", "-o", str(dest))
    assert rc == 0 and out == "" and f"wrote {dest}" in err
    assert json.loads(dest.read_text()) == build(services=cfn.SERVICES, existing_provider_arn=PROVIDER,
                                                 application_arn=APP)
    assert_lints_clean(dest.read_text())
    rc, out, err = run_cli(capsys, ISSUER, AUD, "-o", str(tmp_path / "missing" / "t.yaml"))
    assert rc == 1 and err.startswith("tipctl: cannot write")


def test_quick_commands_do_not_pay_for_yaml():
    code = ("import sys; from tipd.cli.main import parser; parser().parse_args(['cfn-template', 'a', 'b']); "
            "print(sorted(m for m in ('yaml', 'tipd.cfn', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
