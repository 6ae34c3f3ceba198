"""`tipctl cfn-template`: the CloudFormation template of the IAM side of trusted identity propagation."""
from __future__ import annotations

import argparse
import sys

HELP = "print a CloudFormation template with the IAM OIDC provider and the two roles tipd needs"
SERVICE_NAMES = "s3ag, athena, redshift-data, qbusiness, lakeformation"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cfn-template", help=HELP,
        description=HELP + ": the OIDC role (assumed with the IdP's id_token for AUDIENCE; may call "
        "CreateTokenWithIAM and assume the identity-enhanced role with SetContext) and the identity-enhanced "
        "role (one-hour sessions, permissions for the chosen services). Role names, an existing provider, the "
        "Identity Center application and each service's scope are stack Parameters. Needs no running daemon.",
        epilog="Deploy: aws cloudformation deploy --template-file tipd.yaml --stack-name tipd "
               "--capabilities CAPABILITY_NAMED_IAM. See docs/cfn-template.md.")
    p.add_argument("issuer", nargs="?", help="the IdP's issuer URL, exactly as in its tokens' iss claim "
                   "(https://...; default: the --profile's)")
    p.add_argument("audience", nargs="?", help="the aud claim of the JWT tipd exchanges: the IdP's id_token's is "
                   "tipd's client id (default: the --profile's client id)")
    p.add_argument("--profile", nargs="?", const="", metavar="NAME", help="take the issuer, the audience and the "
                   "application from this tipd profile (the default profile when no NAME is given)")
    th = p.add_mutually_exclusive_group()
    th.add_argument("--thumbprint", action="append", metavar="HEX", default=[],
                    help="SHA-1 thumbprint (40 hex digits) of the IdP's top intermediate CA; repeatable, at most 5")
    th.add_argument("--fetch-thumbprint", action="store_true",
                    help="compute the thumbprint of each host (discovery and JWKS) from the certificate chain it "
                         "presents; without either option the template has none, and IAM relies on its trusted CAs")
    p.add_argument("--ca-bundle", metavar="FILE",
                   help="with --fetch-thumbprint: CA certificates (PEM) to verify the IdP with, for a private CA")
    p.add_argument("--services", default="s3ag", metavar="LIST",
                   help=f"comma-separated services the identity-enhanced role may use: {SERVICE_NAMES}, or all "
                        "(default: s3ag)")
    p.add_argument("--existing-provider-arn", default="", metavar="ARN",
                   help="an IAM OIDC provider for ISSUER that already exists: the stack then creates none "
                        "(the ExistingOidcProviderArn Parameter's default)")
    p.add_argument("--application-arn", default="", metavar="ARN",
                   help="the Identity Center application: CreateTokenWithIAM is allowed on it alone "
                        "(the IdentityCenterApplicationArn Parameter's default)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the template to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="emit the template as JSON instead of YAML")
    p.set_defaults(run=run)


def from_profile(args: argparse.Namespace) -> tuple[str, str, str]:
    """(issuer, audience, application ARN): as given, else from the --profile."""
    from .. import cfn

    if args.profile is None:
        if not (args.issuer and args.audience):
            raise cfn.TemplateError("give ISSUER and AUDIENCE, or take them from a tipd profile with --profile [NAME]")
        return args.issuer, args.audience, args.application_arn
    from ..config import load_config

    config = load_config(args.config)[0]
    name = config.profile_name(args.profile or None)
    prof = config.idp_profile(name)
    audience = args.audience
    if audience is None:
        if prof.exchange_token != "id_token":
            raise cfn.TemplateError(f"profile {name} sends its access token to AWS (exchange_token = "
                                    f'"{prof.exchange_token}"), whose aud claim the IdP chooses: give AUDIENCE '
                                    "(`tipctl diag` shows the token's claims)")
        audience = prof.client_id  # an id_token's aud is the client it was issued to
    return args.issuer or prof.issuer, audience, args.application_arn or prof.application_arn


def run(args: argparse.Namespace) -> int:
    from .. import cfn

    if args.ca_bundle and not args.fetch_thumbprint:
        raise cfn.TemplateError("--ca-bundle is used only with --fetch-thumbprint")
    issuer, audience, application_arn = from_profile(args)
    # every check before any network: bad input is the user's to fix
    spec = cfn.validate(cfn.TemplateSpec(
        issuer=issuer, audience=audience, services=cfn.parse_services(args.services),
        thumbprints=tuple(args.thumbprint), existing_provider_arn=args.existing_provider_arn,
        application_arn=application_arn))
    if args.fetch_thumbprint:
        from dataclasses import replace

        from ..thumbprint import fetch_thumbprints

        fetched = fetch_thumbprints(issuer, args.ca_bundle)
        for t in fetched:
            print(f"thumbprint of {t.host}: {t.sha1} ({t.subject})", file=sys.stderr)
        spec = cfn.validate(replace(spec, thumbprints=tuple(t.sha1 for t in fetched)))
    text = cfn.render(cfn.build_template(spec), as_json=args.json)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise cfn.TemplateError(f"cannot write {args.output}: {e.strerror}") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for note in cfn.notes(spec):
        print(f"note: {note}", file=sys.stderr)
    return 0
