"""The CloudFormation template an AWS admin deploys for tipd: the IAM OIDC provider, the OIDC role and the
identity-enhanced role of trusted identity propagation, with the permissions of the chosen services.

The template is plain data with long-form intrinsics (`Ref`, `Fn::Sub`, `Fn::If`, `Fn::GetAtt`), so it
dumps as YAML or JSON alike. What an admin may want to change at deploy time (role names, an existing
provider, the Identity Center application, each service's scope) is a Parameter; what defines the
template (issuer, audience, thumbprints, services) is fixed when it is generated."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .config import APPLICATION_ARN
from .errors import TipdError
from .urls import split_url

SERVICES = ("s3ag", "athena", "redshift-data", "qbusiness", "lakeformation")
#: tipd's own use (`tipctl s3ag`) needs only S3 Access Grants; every other service is opt-in
DEFAULT_SERVICES = ("s3ag",)
OIDC_PROVIDER_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/.+$"
THUMBPRINT = re.compile(r"^[0-9a-fA-F]{40}$")
#: role chaining caps the identity-enhanced session at one hour
ENHANCED_MAX_SESSION = 3600


class TemplateError(TipdError):
    code = "TemplateError"
    status = 400
    permanent = True


@dataclass(frozen=True)
class TemplateSpec:
    issuer: str
    audience: str
    services: tuple[str, ...] = DEFAULT_SERVICES
    thumbprints: tuple[str, ...] = ()
    existing_provider_arn: str = ""
    application_arn: str = ""


def check_issuer(issuer: str) -> str:
    """IAM accepts only https OIDC providers, with a host and no query or fragment."""
    try:
        parts = split_url(issuer)
    except ValueError as e:
        raise TemplateError(f"issuer {issuer!r} is not a valid URL: {e}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise TemplateError(f"issuer {issuer!r} must be an https:// URL (IAM accepts no other OIDC provider)")
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise TemplateError(f"issuer {issuer!r} must not have a query or fragment")
    return issuer


def check_thumbprint(value: str) -> str:
    if not THUMBPRINT.match(value):
        raise TemplateError(f"thumbprint {value!r} must be 40 hex digits (the SHA-1 of a CA certificate)")
    return value.lower()


def parse_services(text: str) -> tuple[str, ...]:
    """'s3ag,athena' or 'all' -> the services in canonical order."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if "all" in names:
        return SERVICES
    unknown = sorted(names - set(SERVICES))
    if unknown or not names:
        raise TemplateError(f"unknown service {', '.join(unknown) or '(none given)'}: choose from "
                            f"{', '.join(SERVICES)} or all")
    return tuple(s for s in SERVICES if s in names)


def validate(spec: TemplateSpec) -> TemplateSpec:
    check_issuer(spec.issuer)
    if not spec.audience or len(spec.audience) > 255:
        raise TemplateError("the audience (the IdP client id in the token's aud claim) must be 1 to 255 characters")
    if len(spec.thumbprints) > 5:
        raise TemplateError("IAM takes at most 5 thumbprints")
    if spec.existing_provider_arn and not re.match(OIDC_PROVIDER_ARN, spec.existing_provider_arn):
        raise TemplateError(f"{spec.existing_provider_arn!r} is not an IAM OIDC provider ARN "
                            "(arn:aws:iam::<account>:oidc-provider/<host/path>)")
    if spec.application_arn and not re.match(APPLICATION_ARN, spec.application_arn):
        raise TemplateError(f"{spec.application_arn!r} is not an Identity Center application ARN "
                            "(arn:aws:sso::<account>:application/ssoins-<16 hex>/apl-<16 hex>)")
    services = parse_services(",".join(spec.services))
    return TemplateSpec(spec.issuer, spec.audience, services,
                        tuple(dict.fromkeys(check_thumbprint(t) for t in spec.thumbprints)),
                        spec.existing_provider_arn, spec.application_arn)


def aud_condition_key(issuer: str) -> str:
    """IAM names an OIDC provider's claims after its URL without the scheme, exactly as registered."""
    return issuer.removeprefix("https://") + ":aud"


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _param(description: str, default: str, pattern: str, message: str) -> dict[str, Any]:
    return {"Type": "String", "Default": default, "AllowedPattern": pattern, "ConstraintDescription": message,
            "Description": description}


#: a service's Parameters, Conditions and statements (template JSON)
_Service = tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]


# Each service: the Parameters it adds, the Conditions they need, and the statements of the identity-enhanced
# role. Every action is one AWS lets through an identity-enhanced session (the managed policy
# AWSIAMIdentityCenterAllowListForIdentityContext, and the Redshift Data API's trusted identity propagation).
def _s3ag() -> _Service:
    params: dict[str, Any] = {"AccessGrantsInstanceArn": _param(
        "S3 Access Grants instance the users' grants live in; empty: this account's instance in this region",
        "", r"^(arn:aws[a-z-]*:s3:[a-z0-9-]+:\d{12}:access-grants/default)?$",
        "empty, or arn:aws:s3:<region>:<account>:access-grants/default")}
    conditions: dict[str, Any] = {
        "HasAccessGrantsInstanceArn": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AccessGrantsInstanceArn"}, ""]}]}}
    instance = {"Fn::If": ["HasAccessGrantsInstanceArn", {"Ref": "AccessGrantsInstanceArn"},
                           _sub("arn:${AWS::Partition}:s3:${AWS::Region}:${AWS::AccountId}:access-grants/default")]}
    statements: list[dict[str, Any]] = [
        {"Sid": "S3AccessGrantsCredentialsForTheUsersGrants", "Effect": "Allow",
         "Action": ["s3:GetDataAccess", "s3:ListCallerAccessGrants"], "Resource": instance},
        # has no resource of its own: it only tells which instance covers an S3 prefix
        {"Sid": "S3AccessGrantsFindTheInstanceOfAPrefix", "Effect": "Allow",
         "Action": ["s3:GetAccessGrantsInstanceForPrefix"], "Resource": "*"},
    ]
    return params, conditions, statements


def _athena() -> _Service:
    params: dict[str, Any] = {"AthenaWorkgroupName": _param(
        "Athena workgroup enabled for IAM Identity Center (* for every workgroup)", "*",
        r"^[a-zA-Z0-9._*-]{1,128}$", "a workgroup name, or *")}
    statements: list[dict[str, Any]] = [
        {"Sid": "AthenaRunQueriesInTheWorkgroup", "Effect": "Allow",
         "Action": ["athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
                    "athena:BatchGetQueryExecution", "athena:GetQueryResults", "athena:GetQueryResultsStream",
                    "athena:GetQueryRuntimeStatistics", "athena:ListQueryExecutions", "athena:GetWorkGroup"],
         "Resource": _sub("arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}"
                          ":workgroup/${AthenaWorkgroupName}")},
        {"Sid": "AthenaReadCatalogMetadata", "Effect": "Allow",
         "Action": ["athena:GetDataCatalog", "athena:GetDatabase", "athena:ListDatabases",
                    "athena:GetTableMetadata", "athena:ListTableMetadata"],
         "Resource": _sub("arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:datacatalog/*")},
        {"Sid": "AthenaListCatalogs", "Effect": "Allow", "Action": ["athena:ListDataCatalogs"], "Resource": "*"},
    ]
    return params, {}, statements


def _redshift_data() -> _Service:
    params: dict[str, Any] = {
        "RedshiftClusterIdentifier": _param(
            "provisioned Redshift cluster integrated with IAM Identity Center (* for every cluster)", "*",
            r"^[a-z0-9*-]{1,63}$", "a cluster identifier, or *"),
        "RedshiftServerlessWorkgroupId": _param(
            "Redshift Serverless workgroup id (a UUID) integrated with IAM Identity Center (* for every workgroup)",
            "*", r"^[a-f0-9*-]{1,36}$", "a workgroup id, or *"),
    }
    statements: list[dict[str, Any]] = [
        {"Sid": "RedshiftDataRunStatementsOnTheWarehouse", "Effect": "Allow",
         "Action": ["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"],
         "Resource": [
             _sub("arn:${AWS::Partition}:redshift:${AWS::Region}:${AWS::AccountId}:cluster:${RedshiftClusterIdentifier}"),
             _sub("arn:${AWS::Partition}:redshift-serverless:${AWS::Region}:${AWS::AccountId}"
                  ":workgroup/${RedshiftServerlessWorkgroupId}")]},
        # these take a statement id, not a warehouse; Redshift answers only for the user who ran the statement
        # (GetStatementResultV2 is authorized by GetStatementResult)
        {"Sid": "RedshiftDataReadOwnStatements", "Effect": "Allow",
         "Action": ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
                    "redshift-data:CancelStatement",
                    "redshift-data:ListStatements"],
         "Resource": "*"},
    ]
    return params, {}, statements


def _qbusiness() -> _Service:
    params: dict[str, Any] = {"QBusinessApplicationId": _param(
        "Amazon Q Business application id (* for every application)", "*",
        r"^[a-zA-Z0-9*-]{1,36}$", "an application id, or *")}
    statements: list[dict[str, Any]] = [
        {"Sid": "QBusinessConverseWithTheApplication", "Effect": "Allow",
         "Action": ["qbusiness:Chat", "qbusiness:ChatSync", "qbusiness:ListConversations", "qbusiness:ListMessages",
                    "qbusiness:DeleteConversation", "qbusiness:PutFeedback"],
         "Resource": _sub("arn:${AWS::Partition}:qbusiness:${AWS::Region}:${AWS::AccountId}"
                          ":application/${QBusinessApplicationId}")},
    ]
    return params, {}, statements


def _lakeformation() -> _Service:
    params: dict[str, Any] = {"GlueDatabaseName": _param(
        "Glue database whose tables Lake Formation governs for these users (* for every database)", "*",
        r"^[a-zA-Z0-9_*-]{1,255}$", "a database name, or *")}
    statements: list[dict[str, Any]] = [
        # Lake Formation decides per user and table; this only lets the session ask it for credentials
        {"Sid": "LakeFormationCredentialsForGrantedTables", "Effect": "Allow",
         "Action": ["lakeformation:GetDataAccess"], "Resource": "*"},
        {"Sid": "GlueReadTheCatalog", "Effect": "Allow",
         "Action": ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
                    "glue:GetTableVersions", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"],
         "Resource": [
             _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"),
             _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/${GlueDatabaseName}"),
             _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${GlueDatabaseName}/*")]},
    ]
    return params, {}, statements


SERVICE_PARTS = {"s3ag": _s3ag, "athena": _athena, "redshift-data": _redshift_data, "qbusiness": _qbusiness,
                 "lakeformation": _lakeformation}
SERVICE_TITLES = {"s3ag": "Amazon S3 Access Grants", "athena": "Amazon Athena",
                  "redshift-data": "Amazon Redshift Data API", "qbusiness": "Amazon Q Business",
                  "lakeformation": "AWS Lake Formation and the Glue Data Catalog"}


def _provider_arn() -> dict[str, Any]:
    return {"Fn::If": ["CreateOidcProvider", {"Ref": "OidcProvider"}, {"Ref": "ExistingOidcProviderArn"}]}


def build_template(spec: TemplateSpec) -> dict[str, Any]:
    spec = validate(spec)
    params: dict[str, Any] = {
        "OidcRoleName": _param("name of the role tipd assumes with the IdP's id_token", "tipd-oidc",
                               r"^[\w+=,.@-]{1,64}$", "1 to 64 of: letters, digits, + = , . @ _ -"),
        "IdentityEnhancedRoleName": _param(
            "name of the role whose identity-enhanced sessions tipd serves to AWS tools", "tipd-identity-enhanced",
            r"^[\w+=,.@-]{1,64}$", "1 to 64 of: letters, digits, + = , . @ _ -"),
        "ExistingOidcProviderArn": _param(
            f"IAM OIDC provider that already exists for {spec.issuer}; empty: this stack creates it",
            spec.existing_provider_arn, f"^({OIDC_PROVIDER_ARN[1:-1]})?$",
            "empty, or arn:aws:iam::<account>:oidc-provider/<host/path>"),
        "IdentityCenterApplicationArn": _param(
            "customer managed Identity Center application tipd exchanges tokens with; empty: any application "
            "(whose own ActorPolicy must still name the OIDC role)", spec.application_arn,
            f"^({APPLICATION_ARN[1:-1]})?$", "empty, or arn:aws:sso::<account>:application/ssoins-.../apl-..."),
    }
    conditions: dict[str, Any] = {
        "CreateOidcProvider": {"Fn::Equals": [{"Ref": "ExistingOidcProviderArn"}, ""]},
        "HasApplicationArn": {"Fn::Not": [{"Fn::Equals": [{"Ref": "IdentityCenterApplicationArn"}, ""]}]},
    }
    statements: list[dict[str, Any]] = []
    groups = []
    for service in spec.services:
        p, c, s = SERVICE_PARTS[service]()
        params.update(p)
        conditions.update(c)
        statements += s
        groups.append({"Label": {"default": SERVICE_TITLES[service]}, "Parameters": list(p)})

    provider: dict[str, Any] = {"Url": spec.issuer, "ClientIdList": [spec.audience]}
    if spec.thumbprints:  # optional: without it IAM trusts the JWKS host's certificate through its own CA library
        provider["ThumbprintList"] = list(spec.thumbprints)

    resources: dict[str, Any] = {
        "OidcProvider": {"Type": "AWS::IAM::OIDCProvider", "Condition": "CreateOidcProvider", "Properties": provider},
        "OidcRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": {"Ref": "OidcRoleName"},
            "Description": "tipd: assumed with the IdP's id_token; gets the Identity Center token and the "
                           "identity-enhanced session",
            "MaxSessionDuration": 3600,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "SignInWithTheIdPTokenForThisAudience", "Effect": "Allow",
                "Principal": {"Federated": _provider_arn()},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {aud_condition_key(spec.issuer): spec.audience}}}]},
        }},
        # a separate policy, not the role's own Policies: the two roles name each other, which would be a cycle
        "OidcRolePolicy": {"Type": "AWS::IAM::RolePolicy", "Properties": {
            "RoleName": {"Ref": "OidcRole"},
            "PolicyName": "tipd-token-exchange",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "ExchangeTheIdPTokenAtIdentityCenter", "Effect": "Allow",
                 "Action": "sso-oauth:CreateTokenWithIAM",
                 "Resource": {"Fn::If": ["HasApplicationArn", {"Ref": "IdentityCenterApplicationArn"},
                                         _sub("arn:${AWS::Partition}:sso::*:application/*")]}},
                {"Sid": "AssumeTheIdentityEnhancedRoleWithTheUsersContext", "Effect": "Allow",
                 "Action": ["sts:AssumeRole", "sts:SetContext"],
                 "Resource": {"Fn::GetAtt": ["IdentityEnhancedRole", "Arn"]}},
            ]},
        }},
        "IdentityEnhancedRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": {"Ref": "IdentityEnhancedRoleName"},
            "Description": "tipd: the identity-enhanced session AWS tools use, carrying the Identity Center user",
            "MaxSessionDuration": ENHANCED_MAX_SESSION,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "OnlyTheOidcRoleWithAnIdentityContext", "Effect": "Allow",
                "Principal": {"AWS": {"Fn::GetAtt": ["OidcRole", "Arn"]}},
                "Action": ["sts:AssumeRole", "sts:SetContext"]}]},
            "Policies": [{"PolicyName": "tipd-trusted-identity-propagation",
                          "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
        }},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (f"tipd trusted identity propagation for {spec.issuer} (audience {spec.audience}): "
                        f"services {', '.join(spec.services)}")[:1024],
        "Metadata": {"AWS::CloudFormation::Interface": {"ParameterGroups": [
            {"Label": {"default": "Roles and identity"},
             "Parameters": ["OidcRoleName", "IdentityEnhancedRoleName", "ExistingOidcProviderArn",
                            "IdentityCenterApplicationArn"]}, *groups]}},
        "Parameters": params,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": {
            "OidcRoleArn": {"Description": "tipd config: oidc_role_arn; also the principal of the Identity Center "
                                           "application's ActorPolicy",
                            "Value": {"Fn::GetAtt": ["OidcRole", "Arn"]}},
            "IdentityEnhancedRoleArn": {"Description": "tipd config: identity_enhanced_role_arn",
                                        "Value": {"Fn::GetAtt": ["IdentityEnhancedRole", "Arn"]}},
            "OidcProviderArn": {"Description": "the IAM OIDC provider the OIDC role trusts", "Value": _provider_arn()},
        },
    }


def notes(spec: TemplateSpec) -> list[str]:
    """What the admin still has to know about this template (printed on stderr, never in it)."""
    out = []
    if "athena" in spec.services:
        missing = [s for s in ("lakeformation", "s3ag") if s not in spec.services]
        if missing:
            out.append("Athena with trusted identity propagation also reads the Glue catalog through Lake Formation "
                       f"and its results through S3 Access Grants: consider adding {' and '.join(missing)}")
    if not spec.thumbprints and not spec.existing_provider_arn:
        out.append("no thumbprint: IAM verifies the IdP's JWKS host with its own library of trusted CAs, which is "
                   "enough for a publicly trusted certificate (use --fetch-thumbprint for a private CA)")
    out.append("deploy with --capabilities CAPABILITY_NAMED_IAM; then put OidcRoleArn in the Identity Center "
               "application's ActorPolicy, and both role ARNs in tipd's config")
    return out


def render(template: dict[str, Any], as_json: bool = False) -> str:
    if as_json:
        import json

        return json.dumps(template, indent=2) + "\n"
    import yaml  # only this command needs PyYAML

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # CloudFormation rejects YAML anchors and aliases
            return True

    return yaml.dump(template, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120)
