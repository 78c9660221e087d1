"""``iam client …`` and ``iam keys …``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from iam import clock
from iam.clitools import Ctx, echo_json, emit, fail, json_option, pass_ctx
from sso import clients as client_service
from sso import keys as key_service
from sso.models import AuthMethod


@click.group("client")
def client_group() -> None:
    """Registered applications (OpenID Connect / OAuth clients)."""


@client_group.command("add")
@click.option("--name", required=True, help="Human-readable name shown on sign-in pages.")
@click.option("--client-id", default=None, help="Fixed client id (default: random).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI. Repeatable.")
@click.option(
    "--post-logout-redirect-uri",
    "post_logout",
    multiple=True,
    help="Exact post-logout URI. Repeatable.",
)
@click.option("--public", is_flag=True, help="A public client (SPA, native app): no secret, PKCE required.")
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(list(client_service.GRANT_TYPES)),
    help="Allowed grant type. Repeatable. Default: authorization_code and refresh_token.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Allowed scope. Repeatable. Default: openid profile email groups.",
)
@click.option(
    "--audience",
    "audiences",
    multiple=True,
    help="Allowed token audience / resource (R-SSO-3). Repeatable.",
)
@click.option(
    "--token-endpoint-auth-method",
    "auth_method",
    type=click.Choice([m.value for m in AuthMethod]),
    default=None,
    help="How the client authenticates (default client_secret_basic; none with --public).",
)
@click.option(
    "--jwks-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public keys for private_key_jwt.",
)
@click.option(
    "--jwks-uri",
    default=None,
    help="Where the client publishes its public keys for private_key_jwt (instead of --jwks-file).",
)
@click.option("--backchannel-logout-uri", default=None, help="Where logout tokens are POSTed.")
@click.option(
    "--allowed-network",
    "networks",
    multiple=True,
    help="CIDR allowed to use token/introspection (R-SSO-5). Repeatable.",
)
@click.option(
    "--agency-code",
    default=None,
    help="Identifier code of the connecting unit, emitted as claim agency_code (R-SSO-4).",
)
@click.option("--require-consent", is_flag=True, help="Third-party client: ask the user's consent.")
@click.option(
    "--id-token-alg",
    type=click.Choice(["ES256", "RS256"]),
    default=None,
    help="Signature algorithm of this client's ID tokens (default: tokens.signing_alg).",
)
@click.option(
    "--require-acr",
    default=None,
    metavar="LEVEL",
    help="Minimum level of assurance for signing in to this client (a name from mfa.levels, e.g. mfa).",
)
@json_option
@pass_ctx
def client_add(
    ctx: Ctx,
    name: str,
    client_id: str | None,
    redirect_uris: tuple[str, ...],
    post_logout: tuple[str, ...],
    public: bool,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    audiences: tuple[str, ...],
    auth_method: str | None,
    jwks_file: Path | None,
    jwks_uri: str | None,
    backchannel_logout_uri: str | None,
    networks: tuple[str, ...],
    agency_code: str | None,
    require_consent: bool,
    id_token_alg: str | None,
    require_acr: str | None,
    as_json: bool,
) -> None:
    """Register a client. The secret is printed once and stored only as a hash (with --json:
    the client with its secret, once)."""
    _check_level(ctx, require_acr)
    method = auth_method or (AuthMethod.NONE if public else AuthMethod.CLIENT_SECRET_BASIC)
    if public and method != AuthMethod.NONE:
        fail("A public client authenticates with 'none'.")
    spec = client_service.ClientSpec(
        name=name,
        client_id=client_id,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout),
        token_endpoint_auth_method=method,
        backchannel_logout_uri=backchannel_logout_uri,
        allowed_networks=list(networks),
        agency_code=agency_code,
        require_consent=require_consent,
        audiences=list(audiences),
        id_token_alg=id_token_alg,
        jwks=client_service.parse_jwks(jwks_file.read_text()) if jwks_file else None,
        jwks_uri=jwks_uri,
        require_acr=require_acr,
    )
    if grant_types:
        spec.grant_types = list(grant_types)
    if scopes:
        spec.scopes = list(scopes)
    services = ctx.services
    with services.transaction() as session:
        row, secret = client_service.create_client(
            session, services.cipher, spec, actor="cli", allow_http=ctx.settings.dev_mode
        )
        data = client_service.client_as_dict(row, secret)
    emit(
        as_json,
        data,
        [f"Registered {data['client_name']}: client_id {data['client_id']}"]
        + ([f"client_secret {secret}  (shown once; store it in the application now)"] if secret else []),
    )


@client_group.command("list")
@json_option
@pass_ctx
def client_list(ctx: Ctx, as_json: bool) -> None:
    """List registered clients."""
    with ctx.services.transaction() as session:
        data = [client_service.client_as_dict(c) for c in client_service.list_clients(session)]
    emit(
        as_json,
        data,
        (
            f"{c['client_id']:<28} {'disabled' if c['disabled'] else 'enabled':<8} "
            f"{c['token_endpoint_auth_method']:<20} {c['client_name']}"
            for c in data
        ),
    )


@client_group.command("show")
@click.argument("client_id")
@json_option
@pass_ctx
def client_show(ctx: Ctx, client_id: str, as_json: bool) -> None:
    """Show one client's registration (never its secret)."""
    with ctx.services.transaction() as session:
        data = client_service.client_as_dict(client_service.get_client(session, client_id))
    emit(as_json, data, (f"{key:<28} {value}" for key, value in sorted(data.items())))


@client_group.command("remove")
@click.argument("client_id")
@json_option
@pass_ctx
def client_remove(ctx: Ctx, client_id: str, as_json: bool) -> None:
    """Delete a client; its codes and refresh tokens go with it."""
    with ctx.services.transaction() as session:
        client_service.remove_client(session, client_id, actor="cli")
    emit(as_json, {"client_id": client_id, "removed": True}, f"Removed {client_id}.")


@client_group.command("disable")
@click.argument("client_id")
@json_option
@pass_ctx
def client_disable(ctx: Ctx, client_id: str, as_json: bool) -> None:
    """Refuse every request of a client from now on (keeps its registration)."""
    with ctx.services.transaction() as session:
        row = client_service.set_disabled(session, client_id, True, actor="cli")
        data = client_service.client_as_dict(row)
    emit(as_json, data, f"Disabled {client_id}.")


@client_group.command("enable")
@click.argument("client_id")
@json_option
@pass_ctx
def client_enable(ctx: Ctx, client_id: str, as_json: bool) -> None:
    """Accept a disabled client again."""
    with ctx.services.transaction() as session:
        row = client_service.set_disabled(session, client_id, False, actor="cli")
        data = client_service.client_as_dict(row)
    emit(as_json, data, f"Enabled {client_id}.")


def _check_level(ctx: Ctx, level: str | None) -> None:
    from sso.mfa import levels

    names = levels.names(ctx.settings.mfa)
    if level is not None and level not in names:
        fail(f"Unknown level {level!r}; the levels are {', '.join(names)} (mfa.levels).")


@client_group.command("require-acr")
@click.argument("client_id")
@click.argument("level")
@json_option
@pass_ctx
def client_require_acr(ctx: Ctx, client_id: str, level: str, as_json: bool) -> None:
    """Set the minimum level of assurance of a client (LEVEL ``none`` clears it)."""
    wanted = None if level == "none" else level
    _check_level(ctx, wanted)
    with ctx.services.transaction() as session:
        row = client_service.set_required_level(session, client_id, wanted, actor="cli")
        data = client_service.client_as_dict(row)
    emit(as_json, data, f"{client_id}: minimum level {wanted or '(none)'}.")


@click.group("keys")
def keys_group() -> None:
    """Token-signing keys (ES256 and RS256)."""


@keys_group.command("rotate")
@click.option(
    "--alg",
    type=click.Choice(list(key_service.ALGORITHMS)),
    multiple=True,
    help="Only these algorithms.",
)
@json_option
@pass_ctx
def keys_rotate(ctx: Ctx, alg: tuple[str, ...], as_json: bool) -> None:
    """Sign with the already-published next key; keep the old one published until its tokens expire.

    Every running process (node) reloads its keys at most every 10 seconds, so for up to 10
    seconds after this command some nodes still sign with the previous key (relying parties
    accept both: both are published). The output says by when every node has switched."""
    from sqlalchemy import select

    from sso.models import KeyStatus, SigningKey

    services = ctx.services
    grace = key_service.rotation_grace(services.settings)
    algs = alg or key_service.ALGORITHMS
    with services.transaction() as session:
        previous = {
            r.alg: r.kid
            for r in session.scalars(
                select(SigningKey).where(SigningKey.status == KeyStatus.ACTIVE, SigningKey.alg.in_(algs))
            )
        }
        promoted = key_service.rotate(session, services.cipher, grace=grace, actor="cli", algs=algs)
    now = clock.now()
    within = int(key_service.RELOAD_SECONDS)
    switched_by = now + dt.timedelta(seconds=within)
    published_until = now + dt.timedelta(seconds=grace)
    if as_json:
        echo_json(
            {
                "signing": promoted,
                "previous_published_seconds": grace,
                "rotated_at": now.isoformat(),
                "all_nodes_switched_by": switched_by.isoformat(),
                "switch_within_seconds": within,
                "previous_published_until": published_until.isoformat(),
                "keys": {
                    a: {"signing_kid": kid, "previous_kid": previous.get(a)} for a, kid in promoted.items()
                },
            }
        )
        return
    for a, kid in promoted.items():
        old = previous.get(a)
        was = f" (previous key {old})" if old else ""
        click.echo(f"{a}: rotated to {kid}{was}.")
    click.echo(
        f"Every node signs with the new keys by {switched_by:%Y-%m-%d %H:%M:%S} UTC (nodes reload "
        f"keys within {within} s; until then some may still sign with the previous keys, which "
        f"stay published until {published_until:%Y-%m-%d %H:%M:%S} UTC)."
    )


@keys_group.command("list")
@json_option
@pass_ctx
def keys_list(ctx: Ctx, as_json: bool) -> None:
    """List keys and their state (next, active, retired, removed)."""
    from sqlalchemy import select

    from sso.models import SigningKey

    with ctx.services.transaction() as session:
        rows = list(session.scalars(select(SigningKey).order_by(SigningKey.created_at)))
        data = [
            {
                "kid": r.kid,
                "alg": r.alg,
                "status": r.status,
                "created_at": r.created_at.isoformat(),
                "publish_until": r.publish_until.isoformat() if r.publish_until else None,
            }
            for r in rows
        ]
    emit(
        as_json,
        data,
        (f"{d['kid']:<32} {d['alg']:<6} {d['status']:<8} created {d['created_at'][:19]}Z" for d in data),
    )
