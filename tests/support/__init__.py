"""Test infrastructure: the real IdP, moto, the project's AWS fake, and process helpers."""
