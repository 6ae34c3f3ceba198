"""`tipctl aws-config sync`: tipd's profiles as `[profile NAME]` sections of the AWS config file."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "write tipd's profiles into ~/.aws/config, so `aws --profile NAME` and AWS_PROFILE=NAME work everywhere"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("aws-config", help=HELP, description=HELP + ".")
    cmds = p.add_subparsers(title="actions", metavar="ACTION")
    s = cmds.add_parser(
        "sync", help="add, update or remove tipd's block of profiles in the AWS config file",
        description="Write one [profile NAME] section per tipd profile (identity-enhanced and account profiles) "
                    "into a marked block of the AWS config file ($AWS_CONFIG_FILE, else ~/.aws/config), each with "
                    "`credential_process = <this tipctl> credential-process NAME` and its region. Run it again "
                    "after adding or removing profiles: it updates the block and says what changed. Nothing "
                    "outside the block changes; the file is replaced atomically, keeping its mode. A profile name "
                    "the file already has outside the block is refused.")
    s.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    s.add_argument("--remove", action="store_true", help="remove tipd's block (and only it) from the file")
    s.add_argument("--json", action="store_true", help="print what changed as a JSON object")
    s.set_defaults(run=run)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def aws_profiles(config_path: str | None) -> list[Any]:
    """One AwsProfile per tipd profile, in the config's order: credential_process through this tipctl, and
    the region (the profile's own; an account profile without one takes its source sign-in's)."""
    from ..awsconfig import AwsProfile, tipctl_command
    from ..config import load_config
    from ..config_file import read_config_file

    _, path = load_config(config_path)  # every problem of the file is the daemon's sentence
    raw, _ = read_config_file(path)
    tables: dict[str, dict[str, Any]] = raw.get("profiles", {})
    exe = tipctl_command()
    out = []
    for name, table in tables.items():
        source = table.get("source")
        region = table.get("region") or (tables.get(source, {}).get("region") if isinstance(source, str) else None)
        settings = [("credential_process", f"{exe} credential-process {name}")]
        if isinstance(region, str) and region:
            settings.append(("region", region))
        out.append(AwsProfile(name, tuple(settings)))
    return out


def run(args: argparse.Namespace) -> int:
    from ..awsconfig import config_file, sync

    path = config_file()
    changes = sync(path, [] if args.remove else aws_profiles(args.config), remove=args.remove,
                   dry_run=args.dry_run)
    if args.json:
        from .common import print_json

        print_json(dict(changes.as_json(), dry_run=args.dry_run))
        return 0
    verb = ("would add", "would update", "would remove") if args.dry_run else ("added", "updated", "removed")
    parts = [f"{v} {', '.join(names)}" for v, names in zip(verb, (changes.added, changes.updated, changes.removed),
                                                          strict=True) if names]
    if not parts:
        print(f"{path}: up to date ({len(changes.unchanged)} tipd profile"
              f"{'' if len(changes.unchanged) == 1 else 's'})" if changes.unchanged else f"{path}: no tipd block")
    else:
        print(f"{path}: " + "; ".join(parts) + (f" ({len(changes.unchanged)} unchanged)" if changes.unchanged else "")
              + (" -- dry run, nothing written" if args.dry_run else ""))
    names = changes.added + changes.updated + changes.unchanged
    if names and not args.remove and not args.dry_run:
        print(f"Use them with `aws --profile {names[0]} ...` or `export AWS_PROFILE={names[0]}`.")
    return 0
