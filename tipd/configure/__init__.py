"""`tipctl configure`: make a profile from what people know about their IdP, check it, save it.

    presets.py   the providers (okta, entra, cognito, oidc): the issuer derived from their inputs
    profile.py   inputs -> a validated profile (the pydantic models of tipd.config), the discovery check
    prompt.py    the interactive questions
    tomledit.py  a text-level TOML editor that changes one profile and keeps everything else byte for byte
    tomlfile.py  the editor's file side: read the config file, plan the edit, validate the result, write it
                 atomically
    show.py      --show: the effective config, secrets as ***

Only presets.py is imported when tipctl builds its parser: the rest is imported when the command runs."""
