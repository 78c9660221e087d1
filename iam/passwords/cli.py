"""``iam policy …``: explain the password policy without changing any password."""

from __future__ import annotations

import sys

import click

from iam.clitools import Ctx, echo_json, json_option, pass_ctx, read_secret
from iam.errors import NotFound
from iam.passwords.profiles import PasswordProfile, profile_from_settings
from iam.passwords.rules import IdentityFacts
from iam.passwords.service import identity_facts


@click.group("policy")
def policy() -> None:
    """The organisation's policies: the password policy (show the effective profile, test a
    password, check the directory's own) and those the features add (e.g. the security policy
    people accept at sign-in: text, acceptances)."""


def _profile(ctx: Ctx, name: str | None) -> PasswordProfile:
    return profile_from_settings(ctx.settings.passwords, name, languages=ctx.settings.languages)


def _identity(ctx: Ctx, username: str) -> IdentityFacts:
    user = ctx.services.directory.find_user(username=username)
    if user is None:
        raise NotFound(f"There is no user {username!r} in the directory.")
    with ctx.services.reader() as session:
        return identity_facts(session, user, must_change=False)


@policy.command("test")
@click.option(
    "--profile", "profile_name", default=None, help="Profile to test against (default: the configured one)."
)
@click.option(
    "--username", default=None, help="Also check this account's identity data, history and minimum age."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print the result as JSON: {"ok": bool, "violations": [{"rule", "message"}]}.',
)
@pass_ctx
def policy_test(ctx: Ctx, profile_name: str | None, username: str | None, as_json: bool) -> None:
    """Check a candidate password and list every rule it breaks; exit 1 if any. The password is
    read from standard input (one line; asked for, hidden, at a terminal), never from the command
    line: `iam policy test < candidate.txt`."""
    from iam import clock
    from iam.passwords.rules import check
    from iam.passwords.service import evaluate

    profile = _profile(ctx, profile_name)
    password = read_secret("password to test")
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
@json_option
@pass_ctx
def policy_show(ctx: Ctx, profile_name: str | None, as_json: bool) -> None:
    """Print the effective profile (with the configured overrides)."""
    data = _profile(ctx, profile_name).as_dict()
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key} = {value!r}")


@policy.command("check")
@click.option(
    "--profile", "profile_name", default=None, help="Profile to compare with (default: the configured one)."
)
@json_option
@pass_ctx
def policy_check(ctx: Ctx, profile_name: str | None, as_json: bool) -> None:
    """Read the directory's own password policies (AD's domain policy and every fine-grained
    policy) and report each setting that is weaker than or contradicts the profile, or that
    would let AD lock an account before the provider does. Exit 1 if there is any."""
    from iam.passwords.compare import compare, problems

    profile = _profile(ctx, profile_name)
    policies = ctx.services.directory.password_policies()
    report = [(p, compare(profile, ctx.settings.lockout, p)) for p in policies]
    bad = [f for _, findings in report for f in problems(findings)]
    if as_json:
        echo_json(
            {
                "ok": not bad,
                "profile": profile.name,
                "directory": ctx.services.directory.kind,
                "policies": [
                    {"name": p.name, "applies_to": list(p.applies_to), "findings": [f.as_dict() for f in fs]}
                    for p, fs in report
                ],
            }
        )
    elif not policies:
        click.echo(
            f"The {ctx.services.directory.kind} directory has no password policy of its own: "
            f"the {profile.name} profile applies alone."
        )
    else:
        for p, findings in report:
            where = f" (applies to {', '.join(p.applies_to)})" if p.applies_to else ""
            click.echo(f"AD policy {p.name!r}{where}: {len(problems(findings))} problem(s)")
            for f in findings:
                click.echo(f"  - [{f.kind}] {f.setting}: AD {f.directory}, profile {f.profile}. {f.message}")
        if not bad:
            click.echo(f"No AD setting is weaker than or contradicts the {profile.name} profile.")
    if bad:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(policy)
