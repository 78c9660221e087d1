"""``iam demo`` (dev mode, built-in directory only): demo users from the core, then the demo data
of each feature package, so that every capability can be tried without editing a setting.

A feature contributes with a function ``seed_demo(services, *, demo)`` in its package (like
``on_upgrade``): ``demo`` is what was seeded so far (``users``, ``password``, …); it returns a
dict merged into the result, whose ``lines`` are added to the printed instructions. Every hook
is idempotent: running the demo again changes nothing but the demo users' password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iam.errors import ConfigError
from iam.users import seed_demo_users

if TYPE_CHECKING:
    from iam.services import Services


def seed(services: Services, *, password: str | None) -> dict[str, Any]:
    from iam.app import load_features

    settings = services.settings
    if not settings.dev_mode:
        raise ConfigError("`iam demo` runs only in dev mode (IAM_DEV_MODE=true).")
    if services.directory.kind != "local":
        raise ConfigError(
            "The demo creates users and groups in the built-in directory only (directory.kind = local)."
        )
    demo: dict[str, Any] = seed_demo_users(services, password=password)
    lines = [
        "Demo ready.",
        f"  Sign in   as {', '.join(demo['users'])} with password {demo['password']}",
        f"  Account   {settings.issuer}/account",
    ]
    from iam.admin import demo as admin_demo

    part = admin_demo.seed(services, demo=demo)  # a person in every console role
    lines += part.pop("lines", [])
    demo.update(part)
    for feature in load_features():
        hook = getattr(feature, "seed_demo", None)
        if hook is None:
            continue
        part = dict(hook(services, demo=demo))
        lines += part.pop("lines", [])
        demo.update(part)
    demo["message"] = "\n".join(lines)
    return demo
