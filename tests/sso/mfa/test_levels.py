"""Levels of assurance as pure rules of the settings (no database)."""

from __future__ import annotations

import pytest

from iam.config import MfaSettings, Settings, load_settings
from iam.errors import ConfigError
from sso.mfa import flow, levels

M = MfaSettings()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((["pwd"],), ["pwd"]),
        ((["pwd"], ["otp"]), ["pwd", "otp", "mfa"]),
        ((["pwd", "otp", "mfa"], ["otp"]), ["pwd", "otp", "mfa"]),
        ((["sc", "hwk"],), ["sc", "hwk"]),  # two possession factors: not multi-factor by RFC 8176
        ((["sc", "hwk"], ["pin"]), ["sc", "hwk", "pin", "mfa"]),
        ((["pwd"], ["sc", "hwk"]), ["pwd", "sc", "hwk", "mfa"]),
        ((["mfa"],), []),  # never claimed without the factors
    ],
)
def test_normalise_amr(parts, expected):
    assert levels.normalise_amr(*parts) == expected


@pytest.mark.parametrize(
    ("amr", "level"),
    [
        (["pwd"], "password"),
        (["pwd", "otp", "mfa"], "mfa"),
        (["otp"], "password"),  # a code alone reaches nothing: the bottom level, never more
        (["sc", "hwk"], "smartcard"),
        (["pwd", "sc", "hwk", "mfa"], "smartcard"),
    ],
)
def test_achieved_level(amr, level):
    assert levels.achieved_level(M, amr) == level


def test_requested_level_takes_the_lowest_known_listed_value():
    assert levels.requested_level(M, "smartcard mfa") == "mfa"
    assert levels.requested_level(M, "urn:x mfa") == "mfa"
    assert levels.requested_level(M, "urn:x") is None
    assert levels.requested_level(M, None) is None


def test_meets_denies_unknown_required_levels():
    assert levels.meets(M, "mfa", None)
    assert levels.meets(M, "smartcard", "mfa")
    assert not levels.meets(M, "password", "mfa")
    assert not levels.meets(M, "smartcard", "gone-level")


def test_required_level_is_the_strongest_of_client_request_and_groups():
    s = Settings(mfa=MfaSettings(group_levels={"Domain Admins": "smartcard"}))
    assert flow.required_level(s, client_level=None, acr_values=None) is None
    assert flow.required_level(s, client_level="mfa", acr_values="password") == "mfa"
    assert (
        flow.required_level(s, client_level="mfa", acr_values=None, groups=["domain admins"]) == "smartcard"
    )
    assert flow.required_level(s, client_level="removed", acr_values=None) == "removed"


def test_settings_refuse_unknown_group_level_and_duplicate_levels():
    with pytest.raises(ConfigError, match="group_levels"):
        load_settings(mfa={"group_levels": {"admins": "platinum"}})
    with pytest.raises(ConfigError, match="same name"):
        load_settings(mfa={"levels": [{"name": "a", "amr": [["pwd"]]}, {"name": "a", "amr": [["otp"]]}]})
    with pytest.raises(ConfigError, match="mfa.digits"):
        load_settings(mfa={"digits": 4})
