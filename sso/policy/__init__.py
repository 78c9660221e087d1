"""Acknowledgement of the organisation's security policy before first use (R-SSO-6)."""
