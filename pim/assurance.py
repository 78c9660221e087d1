"""The sign-in level (assurance) an actor achieved, and whether it meets a requirement.

Sources, in order:

1. The SSO session's ``acr`` when it is one of ``pim.levels`` (the sign-in flow of the ``sso``
   package writes the achieved level there; ``password`` for a bare password sign-in).
2. Otherwise the session's ``amr`` (RFC 8176): ``sc``/``hwk`` (smart card, hardware key) reach
   ``smartcard``; ``pwd`` together with ``otp``/``mfa`` reaches ``mfa``; anything else
   ``password``.
3. A password re-check, **only in dev mode** with ``pim.dev_password_recheck`` on, counts as
   ``mfa`` for the one request it was given with (there is no second factor on a development
   machine). Outside dev mode nothing but the session (or the API token's ``acr``/``amr``) counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

HARDWARE = {"sc", "hwk"}
SECOND_FACTORS = {"otp", "mfa", "totp", "sms", "swk"}


def achieved_level(acr: str | None, amr: Iterable[str] | None, levels: Sequence[str]) -> str:
    """The highest of ``levels`` that the sign-in reached."""
    if acr and acr in levels:
        return acr
    methods = set(amr or ())
    if methods & HARDWARE and "smartcard" in levels:
        return "smartcard"
    if "pwd" in methods and methods & SECOND_FACTORS and "mfa" in levels:
        return "mfa"
    return levels[0]


def meets(achieved: str, required: str, levels: Sequence[str]) -> bool:
    """Whether ``achieved`` is at least ``required`` (unknown levels never meet anything)."""
    if achieved not in levels or required not in levels:
        return False
    return levels.index(achieved) >= levels.index(required)


def strongest(*required: str, levels: Sequence[str]) -> str:
    """The highest of several requirements."""
    known = [r for r in required if r in levels]
    return max(known, key=levels.index) if known else levels[-1]
