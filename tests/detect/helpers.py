"""Shared by detection's tests: rules with small thresholds, writing and sealing events."""

from __future__ import annotations

from typing import Any

from detect import rules
from iam import audit
from iam.services import Services

LOGIN_RULES = """
[[rule]]
id = "password_spraying"
title = "Password spraying"
events = ["login.failed"]
key = "network"
distinct = "actor"
threshold = 8
max_per_value = 3
window = 900
quiet = 3600

[[rule]]
id = "brute_force"
title = "Brute force on one account"
events = ["login.failed"]
key = "actor"
threshold = 6
window = 600
quiet = 3600
"""
"""The two rules against sign-in attacks (password spraying, brute force), with small
thresholds; the browser attack test (tests/e2e/test_detect.py) uses them too."""

RULES = (
    """
[recipients]
security_officer = ["officer@example.test"]
heads_of_service = ["head@example.test"]

[working_hours]
days = [1, 2, 3, 4, 5]
start = "07:00"
end = "19:00"

"""
    + LOGIN_RULES
    + """
[[rule]]
id = "mfa_fatigue"
title = "Repeated failed second-factor attempts"
events = ["mfa.code_rejected"]
key = "subject"
threshold = 5
window = 600
quiet = 3600

[[rule]]
id = "elevation_outside_hours"
title = "Privileged elevation outside working hours"
events = ["pim.activated"]
outside_hours = true
key = "subject"

[[rule]]
id = "token_outside_networks"
title = "Token requested from outside the application's networks"
events = ["token.refused"]
where = { reason = ["network_not_allowed"] }
key = "client"

[[rule]]
id = "inactive_account_success"
title = "Sign-in of a disabled person"
events = ["login.succeeded", "token.issued"]
identity = "inactive"
key = "subject"

[[rule]]
id = "ad_change_outside"
title = "Change in AD not made by the provider"
events = ["directory.changed_outside"]
key = "subject"
"""
)


def ruleset(text: str = RULES) -> rules.RuleSet:
    return rules.parse(text)


def write(services: Services, event: str, **kw: Any) -> None:
    with services.transaction() as s:
        audit.record(s, event, **kw)


def seal(services: Services) -> None:
    with services.transaction() as s:
        audit.seal(s)


def failed_login(services: Services, username: str, ip: str = "198.51.100.7") -> None:
    write(services, "login.failed", outcome="failure", actor=username, ip=ip, details={"reason": "password"})
