"""OIDC with the workforce IdP: discovery, tokens, id_token checks, and the sign-in flows."""
