"""`tipctl configure`: create or change a profile (asked for, from flags, or from a file), check its issuer,
save it without disturbing the rest of the config file; `--show` prints the effective config."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from ..configure.profile import Draft
    from ..configure.prompt import Prompter
    from ..configure.tomlfile import ConfigFile

HELP = "create or change a profile (interactively, from flags or from a file) after checking its issuer"
EPILOG = """examples:
  tipctl configure                      ask for each value (in a terminal)
  tipctl configure --profile work --provider okta --org-url https://dev-123.okta.com \\
      --client-id 0oa1b2c3 --application-arn arn:aws:sso::111122223333:application/ssoins-.../apl-... \\
      --oidc-role-arn arn:aws:iam::111122223333:role/tip-oidc \\
      --identity-enhanced-role-arn arn:aws:iam::111122223333:role/tip-enhanced --region eu-west-1
  tipctl configure --profile work --client-id 0oa9z8y7     change one value of an existing profile
  tipctl configure --from work.json --dry-run               show what would be written
  tipctl configure --show                                   the effective config, defaults filled in

Presets: okta (--org-url, --authorization-server), entra (--tenant), cognito (--user-pool-id, --cognito-domain),
keycloak (--keycloak-url, --realm), auth0 (--auth0-domain), pingfederate (--pingfederate-url),
pingone (--pingone-region, --environment-id), google (nothing: add --client-secret-stdin), onelogin
(--onelogin-subdomain), jumpcloud (nothing), oidc (--issuer). See docs/configure.md and docs/idp-setup.md."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..configure.presets import INPUTS
    from ..profiles import PROVIDERS

    p = sub.add_parser("configure", help=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=HELP + ". Values not given are kept from the existing profile of that name, else "
                       "take the provider's defaults. The issuer's discovery document is fetched before anything is "
                       "saved; comments, other profiles and other settings in the file stay exactly as they are.")
    p.add_argument("--profile", metavar="NAME", help="the profile to create or change")
    p.add_argument("--provider", choices=PROVIDERS, help="the IdP: a preset derives the issuer from what you know "
                   "(oidc: give --issuer)")
    values = p.add_argument_group("profile values")
    for i in INPUTS:
        values.add_argument(i.flag, dest=i.name, metavar=i.name.split("_")[-1].upper(), help=i.help)
    p.add_argument("--client-secret-stdin", action="store_true", help="read the app's client secret from stdin "
                   "(one line) and keep it in the OS keyring or a 0600 file, never in the config file; for IdPs that "
                   "require one (client_auth not none). Interactively, it is asked for without echo")
    p.add_argument("--from", dest="from_file", metavar="FILE", help="read the values from a JSON or TOML file "
                   "(keys as the flags, with _ for -: profile, provider, org_url, client_id...); flags override it")
    p.add_argument("--default", action="store_true", help="make it the default profile (a file without a "
                   "default_profile gets one anyway)")
    p.add_argument("--no-check", action="store_true", help="do not fetch the issuer's discovery document "
                   "(offline setup)")
    p.add_argument("--dry-run", action="store_true", help="print the profile's TOML table; write nothing")
    p.add_argument("-i", "--interactive", action="store_true", help="ask for the values even when stdin is "
                   "not a terminal (the default without --profile or --from when it is one)")
    p.add_argument("--show", action="store_true", help="print the effective config (defaults filled in, "
                   "secrets as ***) and change nothing; with --profile, only that profile")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    acct = p.add_argument_group("account profiles", "with --account, --profile NAME becomes an account profile: "
                                "--role-name in --account-id, through the sign-in of --source (as `tipctl accounts "
                                "add`; docs/accounts.md)")
    acct.add_argument("--account", action="store_true", help="add an account profile rather than an IdP profile")
    acct.add_argument("--source", metavar="PROFILE", help="the sign-in profile it goes through (default: the "
                      "default sign-in profile)")
    acct.add_argument("--role-name", metavar="ROLE", help="the permission set's name (see `tipctl accounts`)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.show:
        return _show(args)
    if args.account or args.source or args.role_name:
        return _account(args)
    from ..configure import tomledit
    from ..configure.presets import INPUTS
    from ..configure.profile import build, check_issuer, parse_text, read_from_file
    from ..configure.tomlfile import ConfigFile
    from ..errors import ConfigError

    cf = ConfigFile.read(args.config)
    given = read_from_file(args.from_file) if args.from_file else {}
    for i in INPUTS:
        value = getattr(args, i.name)
        if value is not None:
            given[i.name] = parse_text(i.name, value) if i.name in ("scopes", "redirect_port", "auth_params") else value
    if args.provider:
        given["provider"] = args.provider
    name = given.pop("profile", None)
    name = args.profile or name
    make_default = given.pop("default", False) or args.default
    secret = None
    if args.client_secret_stdin:
        from ..configure.secret import read_stdin

        secret = read_stdin()  # first: an interactive run then reads its answers after it

    if args.interactive or (name is None and not args.from_file and sys.stdin.isatty()):
        from ..configure.prompt import Prompter, ask_profile

        p = Prompter()
        try:
            draft = ask_profile(p, cf, given, name, check=not args.no_check)
            if secret is None and _needs_secret(cf, draft):
                from ..secret import Secret

                while secret is None:
                    value = p.secret(f"Client secret of {draft.settings['client_id']} (not shown, not saved in the "
                                     "config file): ")
                    secret = Secret(value) if value else None
                    if secret is None:
                        p.say("  a value is needed")
            make_default = make_default or _ask_default(p, cf, draft.name)
            text = cf.with_profile(draft, make_default)
            p.say("\n" + tomledit.table(("profiles", draft.name), draft.settings).rstrip())
            if not args.dry_run and not p.confirm(f"Save it to {cf.path}?", True):
                raise EOFError
        except (EOFError, KeyboardInterrupt):
            print("\ntipctl: cancelled; nothing was saved", file=sys.stderr)
            return 130
    elif name is None:
        raise ConfigError("name the profile with --profile NAME (and give its values as flags or with --from FILE), "
                          "or run `tipctl configure` in a terminal to be asked for each value")
    else:
        draft = build(name, given, cf.profile(name))
        if secret is None and _needs_secret(cf, draft) and not args.dry_run:
            raise ConfigError(f"profile {draft.name} authenticates to its IdP with a client secret (client_auth = "
                              f"\"{draft.settings['client_auth']}\") and none is stored for client "
                              f"{draft.settings['client_id']}: pass it on stdin with --client-secret-stdin")
        if not args.no_check:
            check_issuer(draft.settings["provider"], draft.settings["issuer"], draft.cognito_domain)
        text = cf.with_profile(draft, make_default)

    if args.dry_run:
        new_default = cf.default_after(draft.name, make_default)
        if new_default and new_default != cf.data.get("default_profile"):
            print(f"default_profile = {tomledit.toml_string(new_default)}\n")
        print(tomledit.table(("profiles", draft.name), draft.settings), end="")
        return 0
    where = None
    if secret is not None:
        if draft.settings["client_auth"] == "none":
            raise ConfigError(f"profile {draft.name} has client_auth = \"none\" (a public client): a client secret "
                              "would not be used; set --client-auth client_secret_post (or _basic) with it")
        from ..configure.secret import save_secret

        where = save_secret(cf.data, draft.name, draft.settings["issuer"], draft.settings["client_id"], secret)
    path = cf.write(text)
    if where is not None and not args.json:
        print(f"Stored the client secret in {where}.", file=sys.stderr)
    _report(args, draft, path)
    return 0


def _needs_secret(cf: ConfigFile, draft: Draft) -> bool:
    """A client secret is needed and none is stored for this issuer and client."""
    if draft.settings["client_auth"] == "none":
        return False
    from ..configure.secret import has_secret

    return not has_secret(cf.data, draft.name, draft.settings["issuer"], draft.settings["client_id"])


def _ask_default(p: Prompter, cf: ConfigFile, name: str) -> bool:
    """With other profiles in the file, ask whether this one becomes the default."""
    if cf.data.get("default_profile") == name or cf.default_after(name, False) == name:
        return False  # it is, or becomes, the default anyway
    current = cf.data.get("default_profile") or next(n for n in cf.profiles if n != name)
    answer: bool = p.confirm(f"Make {name} the default profile (instead of {current})?", False)
    return answer


def _report(args: argparse.Namespace, draft: Draft, path: Path) -> None:
    from ..configure.tomlfile import ConfigFile
    from .common import print_json

    default = ConfigFile.read(args.config).data.get("default_profile")
    running, hint = _daemon_hint(draft.name, draft.settings)
    if args.json:
        print_json({"profile": draft.name, "config_file": str(path), "default_profile": default,
                    "settings": draft.settings, "tipd_running": running, "restart_needed": running and bool(hint)})
        return
    print(f"Saved profile {draft.name} to {path}" + (" (the default profile)." if default == draft.name else "."))
    from ..configure.presets import EXACT_PORT

    idp = EXACT_PORT.get(draft.settings["provider"])
    if idp and draft.settings["redirect_port"] == 0:
        print(f"Note: {idp} compares the redirect URI exactly, port included: register "
              f"http://{draft.settings['redirect_host']}:PORT/callback with the app and set the same "
              f"`tipctl configure --profile {draft.name} --redirect-port PORT`.")
    login = f"`tipctl login {draft.name}`"
    print(f"Next: {hint}, then {login}." if hint else f"Next: {login}.")


def _daemon_hint(name: str, settings: dict[str, Any]) -> tuple[bool, str | None]:
    """Is tipd running, and what must happen before it serves the profile as saved: tipd reads its config
    only when it starts."""
    from ..errors import TipdError
    from ..service import Layout, running_platform
    from .common import client
    from .control import DaemonNotRunning

    platform = running_platform()
    service = any(p.exists() for role, p in Layout.of(platform).files.items() if role != "environment")
    try:
        loaded = client(timeout=3).request("GET", "/v1/profiles")["profiles"].get(name)
    except DaemonNotRunning:
        if service and platform == "linux":
            return False, "start tipd (`systemctl --user start tipd`)"
        return False, "start tipd (`tipd &`, or once and for all `tipctl service install`)"
    except TipdError:
        loaded = None
    if loaded is not None and {k: loaded.get(k) for k in settings} == settings:
        return True, None
    return True, "tipd is running without the profile as saved: run `tipctl reload` to load it"


def _account(args: argparse.Namespace) -> int:
    """`--account`: an account profile, written as `tipctl accounts add` writes it."""
    from ..errors import ConfigError
    from .accounts import run_add

    missing = [f for f, v in (("--account", args.account), ("--profile", args.profile),
                              ("--account-id", args.account_id), ("--role-name", args.role_name)) if not v]
    if missing:
        raise ConfigError(f"an account profile needs {', '.join(missing)} (see `tipctl configure --help`)")
    return run_add(argparse.Namespace(name=args.profile, account_id=args.account_id, role_name=args.role_name,
                                      source=args.source, region=args.region, config=args.config, json=args.json))


def _show(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..configure.show import redacted, render
    from .common import print_json

    cfg, path = load_config(args.config, missing_ok=True)
    data = redacted(cfg)
    # what tipd does when the file leaves imds out, rather than "not set" (tipd.config.ServerConfig.imds_enabled)
    data["server"]["imds"] = cfg.server.imds_enabled
    # likewise the profile commands and IMDS mean when the file names none: the only one (tipd.profiles' rule)
    if data.get("default_profile") is None and len(cfg.profiles) == 1:
        data["default_profile"] = cfg.profile_name(None)
    if args.profile is not None:
        from ..errors import UnknownProfile
        from ..profiles import unknown_profile

        if args.profile not in cfg.profiles:
            raise UnknownProfile(unknown_profile(args.profile, cfg.profiles))
        data = {"profiles": {args.profile: data["profiles"][args.profile]}}
    if args.json:
        print_json({"config_file": str(path), "exists": path.exists(), "config": data})
    else:
        note = "" if path.exists() else " (no file yet: these are the defaults)"
        print(f"# {path}{note}\n# the effective configuration, defaults filled in\n")
        print(render(data))
    return 0
