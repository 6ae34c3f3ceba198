"""tipd: workforce sign-in to identity-enhanced AWS credentials, served to every SDK on the machine."""

__version__ = "0.1.0"
