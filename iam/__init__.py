"""iam — identity and privileged-access management with single sign-on (the core)."""

__version__ = "0.1.0"
