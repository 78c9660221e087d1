"""``iam policy …``: explain the password policy without changing any password."""

from __future__ import annotations

import sys

import click

from iam.cli import Ctx, echo_json, pass_ctx
from iam.errors import NotFound
from iam.passwords.profiles import PasswordProfile, profile_from_settings
from iam.passwords.rules import IdentityFacts
from iam.passwords.service import facts_for


@click.group("policy")
def policy() -> None:
    """The password policy: show the effective profile, test a password against it."""


def _profile(ctx: Ctx, name: str | None) -> PasswordProfile:
    return profile_from_settings(ctx.settings.passwords, name)


def _identity(ctx: Ctx, username: str) -> IdentityFacts:
    user = ctx.services.directory.find_user(username=username)
    if user is None:
        raise NotFound(f"There is no user {username!r} in the directory.")
    return facts_for(user, must_change=False)


@policy.command("test")
@click.option(
    "--profile", "profile_name", default=None, help="Profile to test against (default: the configured one)."
)
@click.option(
    "--username", default=None, help="Also check this account's identity data, history and minimum age."
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"ok": bool, "violations": [{"rule", "message"}]}.'
)
@pass_ctx
def policy_test(ctx: Ctx, profile_name: str | None, username: str | None, as_json: bool) -> None:
    """Check the password read from stdin (one line) and list every rule it breaks; exit 1 if any."""
    from iam import clock
    from iam.passwords.rules import check
    from iam.passwords.service import evaluate

    profile = _profile(ctx, profile_name)
    password = sys.stdin.readline().rstrip("\r\n")
    if username:
        identity = _identity(ctx, username)
        with ctx.services.transaction() as session:
            violations = evaluate(session, profile, password=password, identity=identity, now=clock.now())
    else:
        violations = check(profile, password)
    if as_json:
        echo_json(
            {
                "ok": not violations,
                "violations": [{"rule": v.rule, "message": v.message} for v in violations],
            }
        )
    elif not violations:
        click.echo(f"The password satisfies the {profile.name} profile.")
    else:
        click.echo(f"The password breaks {len(violations)} rule(s) of the {profile.name} profile:")
        for v in violations:
            click.echo(f"  - [{v.rule}] {v.message}")
    if violations:
        sys.exit(1)


@policy.command("show")
@click.option(
    "--profile", "profile_name", default=None, help="Profile to show (default: the configured one)."
)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def policy_show(ctx: Ctx, profile_name: str | None, as_json: bool) -> None:
    """Print the effective profile (with the configured overrides)."""
    data = _profile(ctx, profile_name).as_dict()
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key} = {value!r}")


def register(cli: click.Group) -> None:
    cli.add_command(policy)
