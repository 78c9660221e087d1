"""Levels of assurance: RFC 8176 ``amr`` values and the named ``acr`` levels of the settings.

Pure functions of the settings, no database and no Flask. A sign-in collects ``amr`` values
(``pwd`` for the password, ``otp`` for a one-time code, ``sc``/``hwk`` for a smart card);
:func:`normalise_amr` adds ``mfa`` when they span two kinds of factor; :func:`achieved_level`
names the highest level whose requirement they meet, which becomes the ID token's ``acr``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iam.config import MfaSettings

#: The kind of factor of each RFC 8176 value (``mfa`` itself and ``mca`` are derived, not factors).
FACTOR_KIND: dict[str, str] = {
    "pwd": "knowledge",
    "pin": "knowledge",
    "kba": "knowledge",
    "otp": "possession",
    "sc": "possession",
    "hwk": "possession",
    "swk": "possession",
    "sms": "possession",
    "tel": "possession",
    "fpt": "inherence",
    "face": "inherence",
    "iris": "inherence",
    "retina": "inherence",
    "vbm": "inherence",
    "user": "presence",
}


def normalise_amr(*parts: Iterable[str]) -> list[str]:
    """The union of ``amr`` lists, first-seen order, with ``mfa`` added (or dropped) according
    to whether the factors span at least two kinds (RFC 8176 §2: multiple-factor)."""
    out: list[str] = []
    for part in parts:
        for value in part:
            if value != "mfa" and value not in out:
                out.append(value)
    kinds = {FACTOR_KIND[v] for v in out if v in FACTOR_KIND and FACTOR_KIND[v] != "presence"}
    if len(kinds) >= 2:
        out.append("mfa")
    return out


def names(settings: MfaSettings) -> list[str]:
    """The level names, lowest first (announced as ``acr_values_supported``)."""
    return [lvl.name for lvl in settings.levels]


def rank(settings: MfaSettings, level: str | None) -> int:
    """Position of ``level`` (0 = lowest); -1 when unknown or None."""
    if level is None:
        return -1
    for i, lvl in enumerate(settings.levels):
        if lvl.name == level:
            return i
    return -1


def _reaches(amr: Sequence[str], requirement: list[list[str]]) -> bool:
    have = set(amr)
    return any(set(needed) <= have for needed in requirement)


def achieved_level(settings: MfaSettings, amr: Sequence[str]) -> str:
    """The highest level whose ``amr`` requirement is met (the lowest level if none is: a
    sign-in method nobody configured still signs in at the bottom level)."""
    best = settings.levels[0].name
    for lvl in settings.levels:
        if _reaches(amr, lvl.amr):
            best = lvl.name
    return best


def meets(settings: MfaSettings, achieved: str, required: str | None) -> bool:
    """Does ``achieved`` satisfy ``required``? None: nothing is required. A level the settings
    do not (or no longer) define can never be met — deny, never downgrade."""
    if required is None:
        return True
    need = rank(settings, required)
    return need >= 0 and rank(settings, achieved) >= need


def requested_level(settings: MfaSettings, acr_values: str | None) -> str | None:
    """The level an authorization request asks for with ``acr_values`` (space-separated, in
    order of preference): the lowest known one listed — any of them satisfies the client.
    Unknown values are ignored (OIDC: ``acr_values`` is a voluntary request)."""
    known = [v for v in (acr_values or "").split() if rank(settings, v) >= 0]
    if not known:
        return None
    return min(known, key=lambda v: rank(settings, v))


def strongest(settings: MfaSettings, *levels: str | None) -> str | None:
    """The highest of the given levels (None when none is known)."""
    known = [lvl for lvl in levels if rank(settings, lvl) >= 0]
    if not known:
        return None
    return max(known, key=lambda v: rank(settings, v))


def group_level(settings: MfaSettings, groups: Iterable[str]) -> str | None:
    """The highest level demanded of a member of ``groups`` by ``mfa.group_levels``
    (group names compared case-insensitively, as AD does)."""
    wanted = {name.lower(): level for name, level in settings.group_levels.items()}
    return strongest(settings, *(wanted.get(g.lower()) for g in groups))


def reaches_with(settings: MfaSettings, have: Sequence[str], extra: Sequence[str], required: str) -> bool:
    """Would adding the ``extra`` amr values to ``have`` reach ``required``?"""
    return meets(settings, achieved_level(settings, normalise_amr(have, extra)), required)
