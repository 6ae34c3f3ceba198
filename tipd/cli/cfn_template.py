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
    p.add_argument("issuer", help="the IdP's issuer URL, exactly as in its tokens' iss claim (https://...)")
    p.add_argument("audience", help="the aud claim of the IdP's id_token (usually tipd's client id)")
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


def run(args: argparse.Namespace) -> int:
    from .. import cfn

    if args.ca_bundle and not args.fetch_thumbprint:
        raise cfn.TemplateError("--ca-bundle is used only with --fetch-thumbprint")
    # every check before any network: bad input is the user's to fix
    spec = cfn.validate(cfn.TemplateSpec(
        issuer=args.issuer, audience=args.audience, services=cfn.parse_services(args.services),
        thumbprints=tuple(args.thumbprint), existing_provider_arn=args.existing_provider_arn,
        application_arn=args.application_arn))
    if args.fetch_thumbprint:
        from dataclasses import replace

        from ..thumbprint import fetch_thumbprints

        fetched = fetch_thumbprints(args.issuer, args.ca_bundle)
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
