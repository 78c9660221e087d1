"""``iam ca …`` (trust anchors) and ``iam card …`` (bindings, account requests, checks)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click

from iam.clitools import Ctx, echo_json, emit, json_option, pass_ctx
from iam.errors import NotFound, ValidationFailed
from sso.x509 import mapping
from sso.x509 import service as cards
from sso.x509.certs import CertificateRefused, load_pem_or_der


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _certs(path: Path) -> list[Any]:
    try:
        return load_pem_or_der(path.read_bytes())
    except CertificateRefused:
        raise ValidationFailed(f"{path} is not a certificate (PEM or DER).") from None


def _sub(ctx: Ctx, user: str) -> str:
    directory = ctx.services.directory
    found = directory.find_user(**({"upn": user} if "@" in user else {"username": user}))
    if found is None:
        found = directory.get_user(user)
    if found is None:
        raise NotFound("There is no such user in the directory.")
    return str(found.id)


# -- trust anchors ----------------------------------------------------------------------------
@click.group("ca")
def ca_group() -> None:
    """Trust anchors of card sign-in: the CA folder (x509.trust_dir) and uploaded CAs."""


@ca_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_ctx
def ca_add(ctx: Ctx, file: Path, as_json: bool) -> None:
    """Trust the CA certificate(s) in FILE (PEM or DER) for card sign-in (audited, critical).
    Every server process picks the change up within x509.reload_interval seconds."""
    with ctx.services.transaction() as session:
        rows = cards.add_ca(session, file.read_bytes(), actor=_actor())
        out = [{"sha256": r.sha256, "subject": r.subject, "not_after": r.not_after.isoformat()} for r in rows]
    if as_json:
        echo_json(out)
    elif not out:
        click.echo("Already trusted; nothing added.")
    for r in [] if as_json else out:
        click.echo(f"Trusted {r['subject']} (SHA-256 {r['sha256']}).")


@ca_group.command("remove")
@click.argument("sha256")
@json_option
@pass_ctx
def ca_remove(ctx: Ctx, sha256: str, as_json: bool) -> None:
    """Stop trusting an uploaded CA (by its SHA-256 fingerprint; audited, critical)."""
    with ctx.services.transaction() as session:
        cards.remove_ca(session, sha256, actor=_actor())
    emit(as_json, {"sha256": sha256.lower(), "removed": True}, f"Removed the CA {sha256.lower()}.")


@ca_group.command("list")
@json_option
@pass_ctx
def ca_list(ctx: Ctx, as_json: bool) -> None:
    """The trust anchors and intermediates now in effect (folder and uploaded)."""
    validator = cards.validator_for(ctx.services)
    anchors = validator.trust.reload()
    with ctx.services.transaction() as session:
        rows = cards.list_anchors(session, anchors)
    if as_json:
        echo_json(rows)
        return
    click.echo(f"CA folder: {cards.trust_dir(ctx.settings)}")
    for r in rows:
        kind = "anchor" if r["anchor"] else "intermediate"
        click.echo(f"{kind:12} {r['source']:8} {r['not_after'][:10]} {r['subject']}  {r['sha256'][:16]}…")


@ca_group.command("reload")
@json_option
@pass_ctx
def ca_reload(ctx: Ctx, as_json: bool) -> None:
    """Read the CA folder now and report what it holds. Running servers re-read it by
    themselves when a file changes (within x509.reload_interval seconds)."""
    anchors = cards.validator_for(ctx.services).trust.reload()
    total = sum(len(v) for v in anchors.by_subject.values())
    counts = {"anchors": len(anchors.trusted), "intermediates": total - len(anchors.trusted)}
    emit(as_json, counts, f"{counts['anchors']} trust anchor(s), {counts['intermediates']} intermediate(s).")


# -- cards ------------------------------------------------------------------------------------
@click.group("card")
def card_group() -> None:
    """Smart-card bindings, account requests made with a card, certificate checks."""


@card_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_ctx
def card_check(ctx: Ctx, file: Path, as_json: bool) -> None:
    """Validate a certificate (chain, usages, revocation) and show the account it maps to."""
    validator = cards.validator_for(ctx.services)
    certs = _certs(file)
    result: dict[str, Any] = {"subject": certs[0].subject.rfc4514_string()}
    try:
        checked = validator.validate(certs)
        result.update(valid=True, amr=checked.amr, warnings=checked.warnings)
        with ctx.services.transaction() as session:
            found = mapping.map_certificate(checked.cert, ctx.settings.x509, session, ctx.services.directory)
        result.update(account=found.user.username, sub=found.user.id, rule=found.rule)
    except CertificateRefused as exc:
        result.update(valid=result.get("valid", False), refused=exc.reason, message=str(exc))
    if as_json:
        echo_json(result)
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
    if "refused" in result:
        raise SystemExit(1)


@card_group.command("ad-mapping")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def card_ad_mapping(file: Path, as_json: bool) -> None:
    """The strong altSecurityIdentities values naming this certificate (KB5014754), one a line;
    put one of them on the AD account to map it without a binding here."""
    values = list(mapping.alt_security_identities(_certs(file)[0]))
    emit(as_json, values, values)


@card_group.command("bind")
@click.argument("user")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--match",
    type=click.Choice(["thumbprint", "issuer_serial"]),
    default="thumbprint",
    show_default=True,
    help="thumbprint: only this exact certificate; issuer_serial: issuer name + serial number.",
)
@json_option
@pass_ctx
def card_bind(ctx: Ctx, user: str, file: Path, match: str, as_json: bool) -> None:
    """Bind the certificate in FILE to USER (username, UPN or id) after validating it (audited)."""
    checked = cards.validator_for(ctx.services).validate(_certs(file))
    sub = _sub(ctx, user)
    with ctx.services.transaction() as session:
        row = cards.bind(
            session, ctx.settings, ctx.services.directory, checked, sub=sub, actor=_actor(), match=match
        )
        data = cards.binding_dict(row)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Bound {data['subject']} to {user} (binding {data['id']}).")


@card_group.command("bindings")
@click.option("--user", default=None, help="Only this user's (username, UPN or id).")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked bindings.")
@json_option
@pass_ctx
def card_bindings(ctx: Ctx, user: str | None, include_revoked: bool, as_json: bool) -> None:
    """List card bindings."""
    sub = _sub(ctx, user) if user else None
    with ctx.services.transaction() as session:
        rows = [
            cards.binding_dict(r)
            for r in cards.list_bindings(session, sub=sub, include_revoked=include_revoked)
        ]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        state = f"revoked {r['revoked_at'][:16]}" if r["revoked_at"] else "active"
        click.echo(f"{r['id']}  {r['sub']}  {state:22} {r['subject']}")


@card_group.command("revoke")
@click.argument("binding_id")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@json_option
@pass_ctx
def card_revoke(ctx: Ctx, binding_id: str, reason: str, as_json: bool) -> None:
    """Revoke a card binding (audited)."""
    with ctx.services.transaction() as session:
        row = cards.revoke_binding(session, binding_id=binding_id, actor=_actor(), reason=reason)
        data = cards.binding_dict(row)
    emit(as_json, data, f"Revoked binding {binding_id}.")


@card_group.command("requests")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "denied", "all"]),
    default="pending",
    show_default=True,
    help="Which requests to list.",
)
@json_option
@pass_ctx
def card_requests(ctx: Ctx, status: str, as_json: bool) -> None:
    """Account requests made with a card (R-MFA-2)."""
    with ctx.services.transaction() as session:
        rows = [
            cards.request_dict(r)
            for r in cards.list_requests(session, status=None if status == "all" else status)
        ]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['status']:8} {r['proposed'].get('username', '')}  {r['subject']}")


@card_group.command("approve")
@click.argument("request_id")
@click.option("--username", default=None, help="Username of the new account (default: from the card).")
@json_option
@pass_ctx
def card_approve(ctx: Ctx, request_id: str, username: str | None, as_json: bool) -> None:
    """Approve an account request: the worker creates the account and binds the card (audited)."""
    with ctx.services.transaction() as session:
        data = cards.request_dict(
            cards.approve_request(session, request_id=request_id, actor=_actor(), username=username)
        )
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Approved; the worker creates {data['proposed']['username']} and binds the card.")


@card_group.command("deny")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@json_option
@pass_ctx
def card_deny(ctx: Ctx, request_id: str, reason: str, as_json: bool) -> None:
    """Deny an account request (audited)."""
    with ctx.services.transaction() as session:
        data = cards.request_dict(
            cards.deny_request(session, request_id=request_id, actor=_actor(), reason=reason)
        )
    emit(as_json, data, f"Denied account request {request_id}.")
