"""One test IdP with the switches of a real IdP (tests/idp/switches.mjs), its own Identity Center application in
the shared AWS fake, and a home for the real tipd; every upstream lifetime short, so each stage renews within
a minute."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .stack import Home, Tipd, in_tipd_env, status

if TYPE_CHECKING:
    from .aws import FakeAWS

LIFETIME = 30  # every upstream lifetime: each stage renews within a minute
REFRESH = "[refresh]\nmin_remaining = 8\nrotate_remaining = 14\nsession_duration = 30\n"
BOTO3 = "python -c 'import boto3; print(boto3.client(\"sts\").get_caller_identity()[\"Arn\"])'"
_apps = iter(range(1, 1000))


class Rig:
    """One IdP with the given switches, its own Identity Center application in the shared fake, a home."""

    def __init__(self, fake: FakeAWS, switches: dict[str, Any], profile_extra: str = "", claim: str = "email") -> None:
        from .aws import AppConfig  # moto and the IdP's modules only when a rig is made
        from .idp import IdP

        self.fake = fake
        self.idp = IdP(switches=switches or None, access_ttl=LIFETIME, id_ttl=LIFETIME)
        self.app = f"arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-{next(_apps):016x}"
        fake.config.applications[self.app] = AppConfig(issuer_url=self.idp.issuer, audiences=[self.idp.client_id],
                                                       claim=claim, access_token_ttl=LIFETIME)
        fake.config.users.setdefault("alice", "9067e4a2-alice")  # by `sub`: access tokens carry no email
        self.home = Home(self.idp.issuer, self.idp.client_id, fake.url, extra_config=REFRESH,
                         profile_extra=profile_extra, app_arn=self.app)
        self.tipd: Tipd | None = None

    def start(self) -> Rig:
        self.tipd = Tipd(self.home).start()
        return self

    def restart(self) -> None:
        assert self.tipd is not None
        self.tipd.stop()
        self.tipd = Tipd(self.home).start()

    def stage(self, name: str) -> dict[str, Any]:
        stage: dict[str, Any] = status(self.home)["profiles"][0]["stages"][name]
        return stage

    def whoami(self) -> str:
        r = in_tipd_env(self.home, BOTO3)
        assert r.returncode == 0, r.stderr + (self.tipd.output()[-3000:] if self.tipd else "")
        return r.stdout.strip()

    def close(self) -> None:
        if self.tipd is not None:
            self.tipd.stop()
        self.idp.stop()
        self.home.cleanup()
