"""Typed settings (pydantic-settings).

Sources, later wins: built-in defaults → TOML file (``IAM_CONFIG``, default ``./iam.toml`` if
present) → environment ``IAM_*`` with ``__`` as the nested delimiter
(``IAM_DATABASE__URL``, ``IAM_DIRECTORY__URL``). The embedded default runs on SQLite under
``./var/`` with the built-in directory and keys generated on first start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from iam.errors import ConfigError


def language_tag(tag: str) -> str:
    """``tag`` as a canonical BCP 47 tag babel knows (``sr-latn`` → ``sr-Latn``), or ValueError."""
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(str(tag).strip(), sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        raise ValueError(
            f"{tag!r} is not a BCP 47 language tag babel knows (e.g. 'en', 'sr-Latn', 'de-AT')"
        ) from None
    parts = (locale.language, locale.script, locale.territory, locale.variant)
    return "-".join(p for p in parts if p)


def time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows, else ValueError."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. 'Europe/Belgrade', 'UTC')") from None
    return name


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    """Where our tables live."""

    url: str = "sqlite:///var/iam.db"
    """SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://user:pw@host/db``."""
    pool_size: int = 5
    echo: bool = False


class DirectorySettings(Section):
    """The directory users sign in against."""

    kind: Literal["local", "ad"] = "local"
    """``local``: the built-in directory in our database. ``ad``: Active Directory over LDAPS."""
    url: str = "ldaps://127.0.0.1:636"
    """``ldaps://host[:port]`` or ``ldap://host`` (StartTLS is then used unless ``allow_plain``)."""
    bind_dn: str = ""
    """Service account for searches and administrative writes (DN or UPN)."""
    bind_password: SecretStr = SecretStr("")
    base_dn: str = ""
    """Search base for users and groups, e.g. ``DC=example,DC=test``."""
    users_ou: str = ""
    """Where new users are created; default ``CN=Users,<base_dn>``."""
    groups_ou: str = ""
    """Where new groups are created; default ``CN=Users,<base_dn>``."""
    upn_suffix: str = ""
    """Suffix for new users' userPrincipalName; default derived from ``base_dn``."""
    ca_file: str = ""
    """PEM file with the CA(s) that signed the domain controllers' certificates."""
    start_tls: bool = True
    """With an ``ldap://`` URL, upgrade with StartTLS before binding."""
    allow_plain: bool = False
    """Allow unencrypted LDAP. Never in production: passwords would cross the wire in clear."""
    connect_timeout: float = 5.0
    receive_timeout: float = 10.0
    pool_size: int = 4
    """Connections kept open per process: this many for the service account, and as many for
    the sign-ins' password checks (binds as the user, on connections used for nothing else)."""


class SessionSettings(Section):
    """The single sign-on session."""

    idle_timeout: int = 30 * 60
    """Seconds without activity after which the SSO session ends."""
    absolute_timeout: int = 10 * 60 * 60
    """Seconds after sign-in after which the SSO session ends regardless of activity."""
    directory_sweep_interval: int = 300
    """Seconds between checks, by the worker, that the accounts holding live sessions or refresh
    tokens are still enabled and unlocked in the directory; those that are not are signed out
    everywhere (with back-channel logout) even if they never come back (R-SSO-1)."""
    cookie_name: str = "iam_session"
    cookie_secure: bool = True
    """Send cookies only over HTTPS (forced off in dev mode on plain http)."""


class TokenSettings(Section):
    access_token_lifetime: int = 600
    id_token_lifetime: int = 600
    refresh_token_lifetime: int = 8 * 60 * 60
    """Seconds a refresh token (and its family) lives at most."""
    code_lifetime: int = 60
    refresh_retry_grace_seconds: int = Field(default=0, ge=0, le=120)
    """Seconds during which a client may present a refresh token it has just rotated again, as
    long as the token that rotation issued has never been used: the answer was lost (a node died
    or the network dropped it after the commit). The retry gets a new token and the unused one is
    revoked; presenting that revoked one later counts as reuse and revokes the family. 0 (the
    default) is strict rotation (RFC 9700 §4.14.2): any second use revokes the family and the
    client signs in again. Several nodes behind a proxy: 10 is enough."""
    directory_cache_seconds: float = Field(default=30.0, ge=0)
    """Seconds a refresh or code exchange trusts the directory's last answer about an account
    (enabled, not locked, name, e-mail, groups) instead of asking AD again; 0 asks every time.
    A disable through the provider (CLI, HR leaver, help desk) is immediate on every node; a
    change made directly in AD reaches tokens within this many seconds."""
    signing_alg: Literal["ES256", "RS256"] = "ES256"
    """Default signing algorithm for ID and access tokens (clients may ask for the other)."""
    key_rotation_grace: int = 24 * 60 * 60
    """Seconds a retired key stays published (at least the longest token lifetime)."""
    api_resource: str = ""
    """The provider's own API identifier (RFC 8707 resource, the ``aud`` of access tokens for
    ``/api/v1/*`` and ``/scim/v2``); default ``<issuer>/api``. A client asks for it with
    ``resource=<this>`` at the token endpoint; tokens for any other audience are refused there
    (401 ``invalid_token``). Announced at ``/.well-known/oauth-protected-resource``."""


class AuditSettings(Section):
    security_officer_email: str = ""
    """Receives critical events (R-AUD-2)."""
    anchor_file: Path | None = None
    """Append-only file outside the database that anchors the audit chain (R-AUD-3): every
    committed event's row hash and every sealed head are appended to it, and ``iam audit
    verify`` compares the database with it. Default ``<var_dir>/audit-anchor.jsonl``. Put it on
    storage the database host cannot write (a local disk of the provider host, ideally
    append-only: ``chattr +a``), and copy it off the host (e.g. with the SIEM stream)."""
    anchor_syslog: str = ""
    """Also send every anchor line to syslog (the SIEM's collector, R-AUD-5): ``host:port``
    (UDP) or a Unix socket such as ``/dev/log``. Empty: the file only."""


class MailSettings(Section):
    host: str = ""
    port: int = 25
    sender: str = "iam@localhost"
    username: str = ""
    password: SecretStr = SecretStr("")
    starttls: bool = False


class WorkerSettings(Section):
    poll_interval: float = 1.0
    """Seconds the worker sleeps when the job table is empty."""
    lease: int = Field(default=30, ge=5)
    """Seconds a claimed job (or periodic task) is reserved before another worker may take it
    over. The running worker renews it every ``cluster.heartbeat`` seconds, so a long job keeps
    it while its worker lives; a killed worker's job is taken over within this time."""
    max_attempts: int = 12
    backoff_base: float = 5.0
    """Seconds before the first retry; doubles each attempt (capped at one hour)."""


POLICY_DIR = Path(__file__).resolve().parent.parent / "policies" / "passwords"
"""The password profiles shipped with the project (``policies/passwords/`` in the repository)."""
MAIL_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "mail"
"""The mail templates shipped with the project (``templates/mail/``)."""


class LockoutSettings(Section):
    """Lockout at the provider (R-PW-6): no rulebook gives numbers, so these are settings. Keep
    ``threshold`` below AD's own lockout threshold so the provider always locks first."""

    threshold: int = Field(default=5, ge=1)
    """Failed sign-ins for one account within ``window`` that lock it. Every spelling of the
    account's name (sAMAccountName, UPN, any case) counts against the same account; a name
    that is no account counts for itself, so it locks the same way."""
    address_threshold: int = Field(default=50, ge=1)
    """Failed sign-ins from one network address within ``window`` that block that address."""
    window: int = Field(default=15 * 60, ge=1)
    """Seconds over which failures are counted."""
    duration: int = Field(default=15 * 60, ge=1)
    """Seconds a lock lasts (an administrator can lift it earlier: ``iam user unlock``)."""
    name_cache_seconds: int = Field(default=300, ge=0)
    """Seconds each worker remembers which account a sign-in name belongs to (a search with
    the service account, never a bind; unknown names are remembered alike). 0: ask the
    directory at every attempt."""


class PasswordSettings(Section):
    """The password policy (R-PW-1): a profile from ``policy_dir``, overridable key by key."""

    profile: str = "default"
    """Name of the profile file (without ``.toml``): ``default``, ``cacak``, ``bistrezor``,
    ``pabianice``, ``strictest`` or one of your own in ``policy_dir``."""
    policy_dir: Path = POLICY_DIR
    """Folder holding the profile files."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Settings that replace the profile's, one by one (e.g. ``{history_count = 10}``); validated
    like the profile file."""
    reminder_days: list[int] = Field(default_factory=lambda: [14, 7, 1])
    """Mail a reminder this many days before a password expires (each once per expiry date);
    ``[]`` turns reminders off. Needs ``mail.host`` and an e-mail address on the account."""
    reminder_interval: int = Field(default=3600, ge=60)
    """Seconds between the worker's scans of the directory for passwords about to expire."""
    reminder_template_dir: Path = MAIL_TEMPLATE_DIR
    """Folder with ``password_expiry.subject.txt``, ``password_expiry.txt`` and
    ``password_expiry.html`` (Jinja; variables: name, username, expires_at, days, change_url,
    organisation). Copy and edit them to change the wording or the language."""
    protected_groups: list[str] = Field(
        default_factory=lambda: [
            "Domain Admins",
            "Enterprise Admins",
            "Schema Admins",
            "Administrators",
            "Account Operators",
            "Server Operators",
            "Backup Operators",
            "Print Operators",
            "Replicator",
            "Domain Controllers",
            "Read-only Domain Controllers",
            "Enterprise Key Admins",
            "Key Admins",
            "Group Policy Creator Owners",
            "DnsAdmins",
        ]
    )
    """Members of these groups (nested membership too) are privileged: the help desk cannot reset
    their passwords (``iam user reset-password``, the users API); only PIM's rotation does.
    Default: Active Directory's protected groups (AdminSDHolder) and other groups that control
    the domain. Add your own (e.g. the PIM role groups)."""

    @field_validator("reminder_days")
    @classmethod
    def _positive_days(cls, value: list[int]) -> list[int]:
        if any(d < 0 for d in value):
            raise ValueError("reminder days must be 0 or more")
        return sorted(set(value), reverse=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 0
    """gunicorn worker processes; 0 = number of CPU cores."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses of reverse proxies whose X-Forwarded-For we believe (CIDR allowed)."""
    metrics_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    """Who may read /metrics."""
    max_json_depth: int = Field(default=32, ge=2, le=200)
    """Deepest nesting of a JSON request body (``/api/…``, ``/scim/…``); deeper is a 400."""
    retry_after: int = Field(default=5, ge=1, le=3600)
    """Seconds a caller is told to wait (``Retry-After``) when the database or the directory
    cannot be reached and the answer is 503."""

    @field_validator("trusted_proxies", "metrics_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not an IP address or network") from exc
        return value


class AssuranceLevel(Section):
    """One named level of assurance (an OIDC ``acr`` value)."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:/-]+$")
    """The ``acr`` value announced in discovery and put in ID tokens."""
    amr: list[list[str]] = Field(min_length=1)
    """How it is reached: any one of these sets of RFC 8176 ``amr`` values, e.g.
    ``[["pwd", "otp"], ["sc"]]`` = password plus one-time code, or a smart card."""


def _default_levels() -> list[AssuranceLevel]:
    return [
        AssuranceLevel(name="password", amr=[["pwd"], ["sc"], ["hwk"]]),
        AssuranceLevel(name="mfa", amr=[["pwd", "otp"], ["sc"], ["hwk"]]),
        AssuranceLevel(name="smartcard", amr=[["sc"], ["hwk"]]),
    ]


class MfaSettings(Section):
    """Second factors (TOTP, R-MFA-3) and levels of assurance (``acr``/``amr``, R-MFA-4)."""

    issuer_label: str = ""
    """Name shown in authenticator apps next to the account (default: ``organisation``)."""
    digits: int = Field(default=6, ge=6, le=8)
    period: int = Field(default=30, ge=15, le=120)
    """Seconds per TOTP time step."""
    algorithm: Literal["SHA1", "SHA256", "SHA512"] = "SHA1"
    """SHA1 is what every authenticator app supports; the others only some."""
    valid_window: int = Field(default=1, ge=0, le=2)
    """Time steps accepted either side of now (clock drift of the phone)."""
    recovery_codes: int = Field(default=10, ge=1, le=20)
    """One-time recovery codes issued at enrollment (each works once)."""
    throttle_threshold: int = Field(default=5, ge=1)
    """Wrong codes for one account within ``throttle_window`` that block code entry."""
    throttle_window: int = Field(default=15 * 60, ge=1)
    throttle_duration: int = Field(default=15 * 60, ge=1)
    """Seconds code entry stays blocked (``iam mfa reset`` lifts it)."""
    reauth_seconds: int = Field(default=300, ge=30)
    """Enrolling or removing a device needs the password re-entered within this many seconds."""
    require_enrolled: bool = True
    """A user who has a confirmed authenticator always gives a code when signing in with a
    password (otherwise only when a level demands it)."""
    self_enrollment: bool = True
    """Users may set up an authenticator themselves (after re-entering their password)."""
    levels: list[AssuranceLevel] = Field(default_factory=_default_levels, min_length=1)
    """Named ``acr`` levels, lowest first. The achieved level is the highest one whose ``amr``
    requirement the sign-in met."""
    group_levels: dict[str, str] = Field(default_factory=dict)
    """Directory group name → the minimum level its members must sign in with, e.g.
    ``{"Domain Admins" = "smartcard"}`` (nested membership counts)."""

    @model_validator(mode="after")
    def _known_levels(self) -> MfaSettings:
        names = [lvl.name for lvl in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("mfa.levels has two levels with the same name")
        for group, level in self.group_levels.items():
            if level not in names:
                raise ValueError(f"mfa.group_levels[{group!r}] names an unknown level {level!r}")
        return self


class Settings(BaseSettings):
    """All settings of the service. See ``deploy/iam.toml.example`` for a commented file."""

    model_config = SettingsConfigDict(
        env_prefix="IAM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    issuer: str = "http://localhost:5000"
    """Public base URL of the provider; it is the OIDC ``iss``. Must be https outside dev mode."""
    dev_mode: bool = False
    """Development mode: plain http allowed, generated secrets, the demo application."""
    secret_key: SecretStr = SecretStr("")
    """Signs cookies and CSRF tokens and keys the audit chain. Required outside dev mode."""
    encryption_key: SecretStr = SecretStr("")
    """Encrypts signing keys and other secrets at rest (32 bytes, urlsafe base64). Required
    outside dev mode (dev mode keeps a generated one in ``var/``)."""
    var_dir: Path = Path("var")
    """Where the embedded defaults keep their files (SQLite database, generated keys)."""
    organisation: str = "Example Administration"
    """The organisation's name: the header and title of every page, mails, PDFs."""
    languages: list[str] = Field(default_factory=lambda: ["en"])
    """Languages of the pages, mails and messages as BCP 47 tags (``en``, ``sr-Latn``,
    ``sr-Cyrl``, ``pl``, ``ro``, ``vi``); the first is the organisation's default. A page is in
    the application's ``ui_locales``, else the person's choice (language switch), else the
    browser's ``Accept-Language``, else the first; mails in the recipient's choice, else the
    first. Each maps to a catalogue under ``translations/`` (``sr-Latn`` → ``sr_Latn``); English
    text where none exists. Password profiles that refuse dictionary words refuse the words of
    each of these languages. Checked at start: an unknown tag stops the start."""
    timezone: str = "UTC"
    """The organisation's time zone (IANA name, e.g. ``Europe/Belgrade``): every page shows
    times in it, and HR dates begin and end at its midnight. Storage is always UTC."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    lockout: LockoutSettings = Field(default_factory=LockoutSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    mfa: MfaSettings = Field(default_factory=MfaSettings)
    pim: PimSettings = Field(default_factory=lambda: PimSettings())
    """Privileged elevation (the ``pim`` package)."""
    x509: X509Settings = Field(default_factory=lambda: X509Settings())
    """Smart-card / client-certificate sign-in (``sso/x509``)."""
    provisioning: ProvisioningSettings = Field(default_factory=lambda: ProvisioningSettings())
    """HR-driven joiners, movers and leavers (the ``provisioning`` package)."""
    reviews: ReviewSettings = Field(default_factory=lambda: ReviewSettings())
    """Access reviews (recertification campaigns, ``provisioning/reviews``)."""
    backup: BackupSettings = Field(default_factory=lambda: BackupSettings())
    """Encrypted backups, restores and restore drills (``iam backup``)."""
    siem: SiemSettings = Field(default_factory=lambda: SiemSettings())
    """Streaming the audit log to a SIEM (``iam/siem``)."""
    audit_archive: AuditArchiveSettings = Field(default_factory=lambda: AuditArchiveSettings())
    """The weekly signed archive of the audit log (``iam/audit_archive.py``)."""
    audit_review: AuditReviewSettings = Field(default_factory=lambda: AuditReviewSettings())
    """The monthly review of significant and critical audit events (``iam/audit_report``)."""
    operations: OperationsSettings = Field(default_factory=lambda: OperationsSettings())
    """The console's Operations pages: worker heartbeats and dependency health checks."""
    admin: AdminSettings = Field(default_factory=lambda: AdminSettings())
    """The administration console under ``/admin/`` (who holds which administrative role)."""
    requests: RequestSettings = Field(default_factory=lambda: RequestSettings())
    """Access requests (catalogue, approval chain, working calendar, ``provisioning/requests``)."""
    detect: DetectSettings = Field(default_factory=lambda: DetectSettings())
    """Detection and alerts, AD changes outside the provider, per-agency statistics (``detect``)."""
    policy: PolicySettings = Field(default_factory=lambda: PolicySettings())
    """Acknowledgement of the security policy before first use (R-SSO-6, ``sso/policy``)."""
    cluster: ClusterSettings = Field(default_factory=lambda: ClusterSettings())
    """Several nodes on one PostgreSQL (change notifications, job and task leases)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("IAM_CONFIG") or "iam.toml"
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if Path(toml_file).is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        elif os.environ.get("IAM_CONFIG"):
            raise ConfigError(f"The configuration file {toml_file} does not exist.")
        return tuple(sources)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('name at least one language, e.g. ["en"]')
        tags = [language_tag(tag) for tag in value]
        if len(set(tags)) != len(tags):
            raise ValueError("a language is listed twice")
        return tags

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return time_zone(value)

    @property
    def catalogues(self) -> dict[str, str]:
        """Each language tag and the name of its translation catalogue (``sr-Latn`` → ``sr_Latn``)."""
        from babel import Locale

        return {tag: str(Locale.parse(tag, sep="-")) for tag in self.languages}

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _provisioning_zone(self) -> Settings:
        if not self.provisioning.timezone:
            self.provisioning.timezone = self.timezone
        return self

    @model_validator(mode="after")
    def _directory(self) -> Settings:
        d = self.directory
        if d.kind == "ad":
            if not d.base_dn:
                raise ValueError("directory.base_dn is required when directory.kind is 'ad'")
            if d.url.startswith("ldap://") and not d.start_tls and not d.allow_plain:
                raise ValueError(
                    "directory.url is plain ldap:// without StartTLS; "
                    "set directory.start_tls = true or (never in production) allow_plain"
                )
        return self

    @property
    def api_resource(self) -> str:
        """The audience every token for the provider's own APIs must carry (tokens.api_resource)."""
        return self.tokens.api_resource or f"{self.issuer}/api"

    def check_production(self) -> None:
        """Refuse to start outside dev mode when a secret or TLS is missing."""
        if self.dev_mode:
            return
        missing = [
            name
            for name, value in (
                ("IAM_SECRET_KEY", self.secret_key),
                ("IAM_ENCRYPTION_KEY", self.encryption_key),
            )
            if not value.get_secret_value()
        ]
        if self.directory.kind == "ad" and not self.directory.bind_password.get_secret_value():
            missing.append("IAM_DIRECTORY__BIND_PASSWORD")
        if missing:
            raise ConfigError(
                "Refusing to start outside dev mode: set "
                + ", ".join(missing)
                + " (or IAM_DEV_MODE=true on a development machine)."
            )
        if not self.issuer.startswith("https://"):
            raise ConfigError("Refusing to start outside dev mode: IAM_ISSUER must be an https URL.")
        if len(self.secret_key.get_secret_value()) < 32:
            raise ConfigError("IAM_SECRET_KEY must be at least 32 characters long.")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one clear :class:`ConfigError`."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"Invalid setting {where}: {first['msg']}.") from None


PIM_ROLES_DIR = Path(__file__).resolve().parent.parent / "policies" / "pim"
"""The privileged roles shipped with the project (``policies/pim/`` in the repository)."""


class PimSettings(Section):
    """Time-boxed privileged elevation (R-PIM-1..8). Roles are data in ``roles_dir``."""

    roles_dir: Path = PIM_ROLES_DIR
    """Folder of role files (``*.toml``); roles edited through the admin API are stored in the
    database and take precedence over a file of the same name."""
    admin_account_format: str = "adm-{username}"
    """sAMAccountName of a person's separate admin account (R-PIM-2); ``{username}`` is theirs."""
    admin_accounts_ou: str = ""
    """DN of the OU the admin accounts are created in (default: ``directory.users_ou``)."""
    password_delivery: Literal["show_once", "provider_only"] = "show_once"  # noqa: S105 — a mode name
    """``show_once``: activation sets a fresh random password shown once to the requester.
    ``provider_only``: the fresh password is never shown; the person signs in to this provider
    as the admin account from "my privileged roles" (their SSO session switches to it until the
    elevation ends). The second way is offered in both modes."""
    security_officers: list[str] = Field(default_factory=list)
    """Usernames of security officers: overview, revoke anything, edit roles and eligibility,
    review break-glass use."""
    security_officer_group: str = ""
    """Directory group whose members are security officers too."""
    levels: list[str] = Field(default_factory=lambda: ["password", "mfa", "smartcard"])
    """Sign-in levels (``acr`` values), lowest first."""
    minimum_level: str = "mfa"
    """No activation below this level, whatever a role says."""
    break_glass_level: str = "smartcard"
    """The level a break-glass activation needs (the strongest)."""
    dev_password_recheck: bool = True
    """Dev mode only: when the session lacks the level, re-entering the password counts as the
    step-up (there is no second factor on a development machine). Ignored outside dev mode."""
    pending_lifetime: int = Field(default=24 * 60 * 60, ge=60)
    """Seconds a request waits for approval before it expires on its own (a role may override)."""
    sweep_interval: float = Field(default=1.0, gt=0)
    """Seconds between sweeps for overdue elevations and pending requests."""
    detection_interval: float = Field(default=60.0, gt=0)
    """Seconds between reads of every privileged group for members not backed by PIM (R-PIM-7)."""
    detection_grace: int = Field(default=120, ge=0)
    """Seconds after an elevation ends during which its account is not reported (removal is
    then still on its way)."""
    remove_out_of_band: bool = False
    """Remove members found outside PIM (and disable admin accounts enabled by hand)."""
    break_glass_review_days: int = Field(default=2, ge=1)
    """Days within which a break-glass use must be reviewed."""
    api_scope: str = "pim"
    """Scope an access token must carry to use ``/api/v1/pim``."""

    @model_validator(mode="after")
    def _known_levels(self) -> PimSettings:
        for name in ("minimum_level", "break_glass_level"):
            if getattr(self, name) not in self.levels:
                raise ValueError(f"pim.{name} is not one of pim.levels")
        if "{username}" not in self.admin_account_format:
            raise ValueError("pim.admin_account_format must contain {username}")
        return self


# -- smart cards / client certificates (R-MFA-1, R-MFA-2) -------------------------------------
CLIENT_AUTH_EKU = "1.3.6.1.5.5.7.3.2"
SMARTCARD_LOGON_EKU = "1.3.6.1.4.1.311.20.2.2"


class X509MappingRule(Section):
    """One rule of the certificate → account mapping, tried in order; the first that finds
    exactly one account wins."""

    kind: Literal["binding", "upn", "email", "subject", "ad_alt_security_identities"]
    """``binding``: our binding table (SHA-256 thumbprint first, then issuer + serial).
    ``upn``: the UPN in subjectAltName (otherName 1.3.6.1.4.1.311.20.2.3) → userPrincipalName.
    ``email``: the rfc822Name in subjectAltName → mail. ``subject``: a subject attribute
    (``field``) → a directory attribute (``attribute``). ``ad_alt_security_identities``: AD's
    strong explicit mappings (``X509:<I>…<SR>…``, ``X509:<SKI>…``, ``X509:<SHA1-PUKEY>…``)."""
    field: str = ""
    """For ``subject``: the subject attribute, by name (``serialNumber``, ``CN``, ``UID``) or
    dotted OID."""
    attribute: str = ""
    """For ``subject``: the directory attribute (AD name, e.g. ``employeeNumber``)."""

    @model_validator(mode="after")
    def _subject_needs_fields(self) -> X509MappingRule:
        if self.kind == "subject" and not (self.field and self.attribute):
            raise ValueError("a 'subject' mapping rule needs both field and attribute")
        return self


class X509Settings(Section):
    """Sign-in with a smart card or another client certificate."""

    enabled: bool = False
    """Offer "sign in with card" and accept client certificates."""
    trust_dir: Path | None = None
    """Default ``<var_dir>/x509/ca``. Folder of CA certificates (PEM or DER, one or more per
    file): the self-signed ones are trust anchors, the others intermediates available for path
    building. Re-read when a file changes (checked at most every ``reload_interval`` seconds).
    CAs uploaded with ``iam ca add`` live in the database and are added to these."""
    reload_interval: int = Field(default=30, ge=1)
    max_chain_length: int = Field(default=6, ge=1, le=20)
    """Most certificates in a path, the client's own and the anchor included."""
    allowed_eku: list[str] = Field(default_factory=lambda: [CLIENT_AUTH_EKU, SMARTCARD_LOGON_EKU])
    """The client certificate must carry one of these extended key usages."""
    require_digital_signature: bool = True
    """The client certificate's key usage, when present, must allow digitalSignature."""
    revocation: Literal["ocsp_then_crl", "crl_then_ocsp", "ocsp", "crl", "none"] = "ocsp_then_crl"
    """How revocation is checked; with two methods the second is asked when the first cannot
    answer."""
    fail_open: bool = False
    """When no revocation answer can be had (responder down, CRL unreachable): ``false``
    refuses the certificate (fail-closed), ``true`` accepts it with a warning in the audit log."""
    crl_files: list[Path] = Field(default_factory=list)
    """CRL files (PEM or DER) to use besides the distribution points in certificates."""
    crl_from_cdp: bool = True
    """Fetch CRLs from the certificates' CRL distribution points (http only)."""
    crl_refresh_interval: int = Field(default=3600, ge=1)
    """Seconds after which a cached CRL is fetched again even before its nextUpdate."""
    ocsp_responder: str = ""
    """OCSP responder URL overriding the certificates' AIA."""
    ocsp_from_aia: bool = True
    ocsp_nonce: bool = True
    """Send a nonce and require it back (responses then cannot be cached)."""
    ocsp_max_age: int = Field(default=300, ge=0)
    """Seconds an OCSP response without nextUpdate is believed (and the clock skew allowed)."""
    fetch_timeout: float = Field(default=5.0, gt=0)
    """Timeout in seconds for OCSP requests and CRL downloads."""
    mapping: list[X509MappingRule] = Field(
        default_factory=lambda: [
            X509MappingRule(kind="binding"),
            X509MappingRule(kind="ad_alt_security_identities"),
            X509MappingRule(kind="upn"),
        ]
    )
    """Ordered mapping rules (see :class:`X509MappingRule`)."""
    client_cert_header: str = "X-SSL-Client-Cert"
    """Header in which the reverse proxy forwards the URL-escaped PEM certificate
    (nginx ``$ssl_client_escaped_cert``); believed only from ``server.trusted_proxies``."""
    client_verify_header: str = "X-SSL-Client-Verify"
    """Header in which the reverse proxy forwards its own verdict (nginx ``$ssl_client_verify``,
    e.g. ``FAILED:certificate has expired``); from ``server.trusted_proxies`` only, recorded in
    ``card.login_refused`` as ``proxy_verify``; the provider decides by its own checks."""
    hardware_key_policies: list[str] = Field(
        default_factory=lambda: ["0.4.0.194112.1.2", "0.4.0.194112.1.3", "0.4.0.1456.1.1"]
    )
    """Certificate policy OIDs whose CA promises the key lives in a hardware token (EU QCP-n-qscd,
    QCP-l-qscd, QCP+): sign-ins with such certificates get ``amr`` ``hwk``. A qcStatement
    QcSSCD (0.4.0.1862.1.4) has the same effect."""
    registration: bool = True
    """Let a person with a valid card but no account ask for one; an administrator approves."""


PROVISIONING_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


class ProvisioningSettings(Section):
    """HR-driven joiners, movers and leavers (R-JML)."""

    policy_dir: Path = PROVISIONING_POLICY_DIR
    """Folder holding ``naming.toml`` and ``birthright.toml``."""
    naming_rule: str = ""
    """Which rule of ``naming.toml`` makes usernames ('' = the file's ``rule``)."""
    base_ou: str = ""
    """Where HR accounts live in the directory; the department OUs of ``birthright.toml`` are
    relative to it. Default: ``directory.users_ou``."""
    timezone: str = ""
    """Time zone of HR dates: a start date begins, an end date ends, at local midnight.
    Default ('' ): the organisation's ``timezone``."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return time_zone(value) if value else value

    password_delivery: Literal["activation_link", "envelope"] = "activation_link"  # noqa: S105
    """Initial password: a one-time link mailed to the manager, or a sealed-envelope PDF printed
    with ``iam hr envelopes``."""
    activation_lifetime: int = Field(default=7 * 24 * 3600, ge=60)
    """Seconds a one-time activation link (or an unprinted envelope) stays valid."""
    joiner_lead_days: int | None = Field(default=None, ge=0, le=3660)
    """A joiner (or rehire) sent without ``effective_at``: how many days before the start date
    its account is created, disabled, for the manager to prepare (enabled at the start date).
    Empty (the default): as soon as the event is accepted."""
    mover_grace_period: int = Field(default=0, ge=0)
    """Seconds after a move before access of the old post is removed (BISTrezor: 3 days)."""
    retention_days: int = Field(default=365, ge=0)
    """Days after a leaver before the directory account is deleted and the HR record reduced to
    the register's fields (0 = never). The username stays reserved forever."""
    max_attempts: int = Field(default=8, ge=1)
    """Failed attempts to apply an event before it goes to the dead-letter list."""
    apply_at_once: list[str] = Field(default_factory=lambda: ["leaver"])
    """Kinds of event applied in the request that delivers them when already due (the worker
    applies the rest, and retries these if the directory is unreachable)."""
    operators_group: str = "iam-hr-operators"
    """Directory group whose members may see the HR pages and replay events."""
    reconcile_interval: int = Field(default=24 * 3600, ge=60)
    """Seconds between reconciliation runs of the worker."""
    reconcile_ignore_groups: list[str] = Field(default_factory=lambda: ["Domain Users"])
    """Groups that never need explaining (every account has them)."""
    scim_max_results: int = Field(default=200, ge=1)


#: AD's protected groups (adminCount=1 by SDProp): membership in any of them is privileged.
AD_PROTECTED_GROUPS = [
    "Administrators",
    "Domain Admins",
    "Enterprise Admins",
    "Schema Admins",
    "Account Operators",
    "Server Operators",
    "Backup Operators",
    "Print Operators",
    "Replicator",
    "Key Admins",
    "Enterprise Key Admins",
    "Domain Controllers",
    "Read-only Domain Controllers",
]


class ReviewSettings(Section):
    """Access reviews: campaigns are data in ``definitions_dir`` (R-REV-1..3, R-PIM-6)."""

    definitions_dir: Path = PROVISIONING_POLICY_DIR / "reviews"
    """Folder of campaign definitions (``*.toml``), validated at start."""
    sod_file: Path = PROVISIONING_POLICY_DIR / "sod.toml"
    """Separation-of-duties rules: pairs of rights one person should not hold together."""
    owners: dict[str, str] = Field(default_factory=dict)
    """Owner (username) of a resource by name, where AD has no ``managedBy``."""
    security_officers: list[str] = Field(default_factory=list)
    """Usernames who run campaigns and decide as security officer (besides pim.security_officers)."""
    security_officer_group: str = "iam-security-officers"
    """Directory group whose members are security officers for access reviews too."""
    fallback_reviewers: list[str] = Field(default_factory=list)
    """Who decides when the reviewer a stage names is missing, has left, or is the person
    themself (default: the security officers)."""
    privileged_groups: list[str] = Field(default_factory=lambda: list(AD_PROTECTED_GROUPS))
    """Groups whose membership is privileged (keeping it needs a comment; privileged scope)."""
    inactive_days: int = Field(default=90, ge=1)
    """No sign-in for this many days → the recommendation is to revoke."""
    tick_interval: float = Field(default=60.0, gt=0)
    """Seconds between the worker's passes: scheduled starts, reminders, escalation, deadlines."""


class BackupSettings(Section):
    """Backups: one encrypted file per run (``iam backup create``), restores and restore drills
    (R-OPS-1, R-OPS-2)."""

    recipients: list[str] = Field(default_factory=list)
    """age public keys (``age1…``) the backup is encrypted to; make a pair with ``iam backup
    keygen`` and keep the identity (the secret half) offline, not on this host."""
    folder: Path | None = None
    """Where ``iam backup create`` writes by default (default ``<var_dir>/backups``)."""
    drill_interval_days: int = Field(default=182, ge=1)
    """A restore drill (``iam backup drill``) is due this many days after the last successful
    one (Pabianice §45: every six months); past it, a critical audit event and a mail to the
    security officer, repeated weekly until a drill is recorded."""
    check_interval: float = Field(default=3600.0, gt=0)
    """Seconds between the worker's checks that a drill is due."""


# -- audit log: SIEM streaming, weekly archive, monthly review (issue 15) ---------------------------
class SiemDestination(Section):
    """One collector the audit log is streamed to, with its own cursor."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """Short name of the destination (its cursor, its ``/metrics`` label). Renaming it starts
    the stream again from the beginning of the log."""
    url: str
    """``syslog+tls://host:6514`` (RFC 5425: syslog over TLS, octet-counting framing) or
    ``https://collector.example/ingest`` (JSON lines, one POST per batch)."""
    format: Literal["rfc5424", "cef", "json"] = "rfc5424"
    """What each event looks like: ``rfc5424`` (syslog with structured data ``[iam@32473 …]``),
    ``cef`` (ArcSight Common Event Format), ``json`` (one JSON object). Over syslog, ``cef`` and
    ``json`` are the message of an RFC 5424 record; over HTTPS each event is one line."""
    ca_file: Path | None = None
    """CA certificates (PEM) that sign the collector's certificate; default ``siem.ca_file``,
    else the system's trust store."""
    client_cert: Path | None = None
    """Client certificate (PEM) when the collector requires mutual TLS; default ``siem.client_cert``."""
    client_key: Path | None = None
    """Its private key (PEM); default ``siem.client_key``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers for an HTTPS collector (e.g. ``Authorization``)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("syslog+tls", "https") or not parts.hostname:
            raise ValueError("must be syslog+tls://host:port or https://host/path")
        if parts.scheme == "syslog+tls" and not parts.port:
            raise ValueError("a syslog+tls URL needs a port (6514 is RFC 5425's)")
        return value


class SiemSettings(Section):
    """Streaming the audit log to the organisation's SIEM (R-AUD-5), at least once and in order."""

    destinations: list[SiemDestination] = Field(default_factory=list)
    """Collectors (``[[siem.destinations]]``); none: nothing leaves the database."""
    ca_file: Path | None = None
    """CA certificates (PEM) for every destination that names none."""
    client_cert: Path | None = None
    """Client certificate (PEM) for every destination that names none (mutual TLS)."""
    client_key: Path | None = None
    """Private key of ``client_cert``."""
    batch_size: int = Field(default=500, ge=1, le=10000)
    """Events sent per connection (a batch is retried whole until the collector takes it)."""
    interval: float = Field(default=2.0, gt=0)
    """Seconds between the worker's passes over the destinations."""
    backlog_threshold: int = Field(default=10000, ge=1)
    """Events waiting for one destination above which ``/readyz`` reports ``degraded``."""
    lease: int = Field(default=60, ge=5)
    """Seconds a worker holds a destination's cursor while it sends (another worker takes over
    after a crash once it ends)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to connect to and wait for a collector."""
    retry_after: float = Field(default=15.0, ge=0)
    """Seconds the worker waits after a failed delivery before trying that destination again
    (a collector that does not answer never holds up the worker's other work for long)."""
    app_name: str = Field(default="iam", pattern=r"^[!-~]{1,48}$")
    """RFC 5424 APP-NAME."""
    hostname: str = ""
    """RFC 5424 HOSTNAME (default: this host's name)."""

    @model_validator(mode="after")
    def _unique(self) -> SiemSettings:
        names = [d.name for d in self.destinations]
        if len(set(names)) != len(names):
            raise ValueError("two SIEM destinations have the same name")
        return self


class AuditArchiveSettings(Section):
    """The weekly signed archive of the sealed audit log (R-AUD-3, Čačak Član 28)."""

    folder: Path | None = None
    """Where the weekly files go (default ``<var_dir>/audit-archive``). Put it on storage that
    is backed up; the files verify on their own (``iam audit verify --archive FILE``)."""
    signing_key_file: Path | None = None
    """Ed25519 private key that signs the archives (PEM, encrypted with the encryption key);
    generated on first use. Default ``<var_dir>/audit-archive-signing.key``. Its public key
    (``iam audit archive-key``) is what an auditor checks the files against."""
    retention_weeks: int = Field(default=520, ge=0)
    """Weekly files older than this many weeks are deleted from the folder (0 = keep all)."""
    grace_hours: int = Field(default=6, ge=0, le=7 * 24)
    """Hours after a week ends (Monday 00:00 UTC) before its archive is written; when it is
    still missing a day later, a critical alert is raised and mailed to the security officer."""
    interval: float = Field(default=3600.0, gt=0)
    """Seconds between the worker's checks."""


class AuditReviewSettings(Section):
    """The security officer's monthly review of the audit log (Čačak Član 30)."""

    due_day: int = Field(default=10, ge=1, le=28)
    """Day of the following month by which a month must be signed off; after it, a reminder
    is mailed to the security officer and recorded, every ``reminder_days``."""
    reminder_days: int = Field(default=3, ge=1)
    """Days between reminders while a review is overdue."""
    reviewers: list[str] = Field(default_factory=list)
    """Usernames who may read and sign off the review (besides the security officers)."""
    auditors: list[str] = Field(default_factory=list)
    """Usernames who may read audit reports (read only; security officers may too)."""
    interval: float = Field(default=3600.0, gt=0)
    """Seconds between the worker's checks for an overdue review."""


class OperationsSettings(Section):
    """The console's Operations pages (jobs, workers, health of each dependency)."""

    worker_heartbeat_interval: float = Field(default=15.0, gt=0)
    """Seconds between a worker's heartbeats (a row in ``worker_heartbeats``)."""
    worker_alive_seconds: int = Field(default=60, ge=5)
    """A worker not seen for this many seconds is shown as not alive (and health says so)."""
    health_timeout: float = Field(default=3.0, gt=0, le=30)
    """Seconds each health check (e.g. the mail relay) may take before it counts as failing."""


class AdminSettings(Section):
    """The administration console (``/admin/``): who holds which administrative role. A person
    holds a role when they are in its directory group (nested membership counts) or their
    username is in its list. Roles add up; nobody holds one by default."""

    it_admin_group: str = "iam-it-admins"
    """Directory group of the IT administrators (applications, keys, jobs, settings view)."""
    helpdesk_group: str = "iam-helpdesk"
    """Directory group of the help desk (people: look up, unlock, end sessions, reset the
    password and second factor of ordinary accounts — never of privileged ones)."""
    security_officer_group: str = ""
    """Directory group of the security officers (audit, alerts, PIM, reviews). Default (''):
    ``reviews.security_officer_group``; ``pim.security_officer_group`` counts as well."""
    hr_operator_group: str = ""
    """Directory group of the HR operators (the HR pages). Default (''):
    ``provisioning.operators_group``."""
    auditor_group: str = "iam-auditors"
    """Directory group of the auditors: they read every console page and change nothing."""
    it_admins: list[str] = Field(default_factory=list)
    """Usernames who are IT administrators besides the group's members."""
    helpdesk: list[str] = Field(default_factory=list)
    """Usernames who are help desk besides the group's members."""
    security_officers: list[str] = Field(default_factory=list)
    """Usernames who are security officers besides the group's members
    (``pim.security_officers`` and ``reviews.security_officers`` count as well)."""
    hr_operators: list[str] = Field(default_factory=list)
    """Usernames who are HR operators besides the group's members."""
    auditors: list[str] = Field(default_factory=list)
    """Usernames who are auditors besides the group's members."""
    minimum_level: str = "mfa"
    """Sign-in level (one of ``mfa.levels``) needed to enter the console; a session below it is
    sent to the step-up flow first."""
    page_size: int = Field(default=50, ge=5, le=500)
    """Rows per page in the console's lists (people search, audit search)."""
    audit_verify_interval: int = Field(default=3600, ge=60)
    """Seconds between the worker's verifications of the whole audit chain; the console's
    audit page shows the latest result and when it ran."""


class RequestSettings(Section):
    """Access requests: a person (or their manager) asks for a right from the catalogue, the
    approval chain decides within working-day deadlines, the grant reaches AD (R-JML-7)."""

    catalogue_file: Path = PROVISIONING_POLICY_DIR / "requestable.toml"
    """The catalogue of requestable rights (AD groups, application assignments), validated at start."""
    country: str = ""
    """Country whose public holidays are not working days (ISO code: ``RS``, ``PL``, ``RO``,
    ``VN``; empty: weekends only)."""
    subdivision: str = ""
    """Region of ``country`` whose holidays also count, if any (as the ``holidays`` library names it)."""
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    """Days of the week that are not working days (0 = Monday … 6 = Sunday)."""
    extra_holidays: list[dt.date] = Field(default_factory=list)
    """Further days off (bridge days, a local feast) as ``YYYY-MM-DD``."""
    extra_working_days: list[dt.date] = Field(default_factory=list)
    """Weekend days that are working days (a Saturday worked in exchange for a bridge day)."""
    step_working_days: int = Field(default=3, ge=1, le=60)
    """Working days each approval step has (the security officer's opinion: 3, PABIANICE §3)."""
    remind_working_days: int = Field(default=1, ge=0, le=30)
    """Remind the approver this many working days before the step's deadline."""
    escalate_to: list[str] = Field(default_factory=list)
    """Who is told (and may decide) when a step is overdue (default: the security officers)."""
    decision_prefix: str = "AR"
    """Decision numbers read ``<prefix>/<year>/<request number>`` (register of authorised persons)."""
    tick_interval: float = Field(default=300.0, gt=0)
    """Seconds between the worker's passes over deadlines (reminders, escalation)."""


DETECT_RULES_FILE = Path(__file__).resolve().parent.parent / "policies" / "alerts.toml"
"""The detection rules shipped with the project (``policies/alerts.toml``)."""


class DetectSettings(Section):
    """Detection and immediate alerts, changes made in AD outside the provider, per-agency
    statistics (the ``detect`` package; R-AUD-2, R-AUD-4, Cluj)."""

    rules_file: Path = DETECT_RULES_FILE
    """Detection rules, thresholds, windows and alert recipients (TOML), validated at start."""
    interval: float = Field(default=1.0, gt=0)
    """Seconds between the worker's passes over new (sealed) audit events: detection and the
    per-agency counters. With the audit seal every second, an alert follows its event within
    about two seconds."""
    batch: int = Field(default=5000, ge=1)
    """Audit events read per pass."""
    hits_retention: int = Field(default=7 * 24 * 3600, ge=60)
    """Seconds rule hits are kept (at least the longest rule window)."""
    ad_changes: bool = True
    """Follow changes in Active Directory (``directory.kind = "ad"``) and report those the
    provider did not make."""
    ad_poll_interval: float = Field(default=60.0, gt=0)
    """Seconds between polls of the directory's ``uSNChanged``."""
    ad_base_dn: str = ""
    """Subtree followed (default ``directory.base_dn``)."""
    ad_own_write_window: int = Field(default=24 * 3600, ge=60)
    """Seconds a write of the provider stays on its ledger: a change of that attribute on that
    entry seen by a poll within this time is ours, not reported."""
    stats_api_scope: str = "stats"
    """Scope an access token needs for ``/api/v1/stats``."""
    stats_top_clients: int = Field(default=20, ge=1, le=1000)
    """Prometheus labels: the clients with most events get their own label, the rest ``other``."""
    officers_group: str = "iam-security-officers"
    """Directory group whose members may read and handle alerts, directory changes and statistics
    (the access reviews' officer group by default), besides the security officers registered in
    the core (``pim.security_officers`` and PIM's officer group)."""


class PolicySettings(Section):
    """Acknowledgement of the organisation's security policy (R-SSO-6; Čačak Član 4,
    BISTrezor Član 4 and 10): a person accepts the current text before their first sign-in to
    an application, and again whenever the text changes."""

    required: bool = False
    """Ask for the acknowledgement at sign-in (``make run`` turns it on for the demo)."""
    dir: Path = PROVISIONING_POLICY_DIR / "security-policy"
    """Folder of the policy text, one Markdown file per language (``en.md``, ``sr-Latn.md``,
    ``pl.md`` …). The version is the SHA-256 of all files together: any change asks everyone
    again. A language without a file is shown the first of ``languages`` that has one."""
    auditors: list[str] = Field(default_factory=list)
    """Usernames who may read the acceptance report besides the security officers."""


class ClusterSettings(Section):
    """Several ``iam serve`` nodes and ``iam worker`` processes on one PostgreSQL (README,
    "Operating several nodes"). SQLite is one node: these settings then change nothing."""

    listen: bool = True
    """Each process listens for change notifications (PostgreSQL ``LISTEN/NOTIFY``): a client
    disabled or removed, a key rotation or a trust anchor uploaded on one node is seen by every
    node at once (milliseconds). Off, or while the listener reconnects, the caches' own
    time-to-live bounds it: client registrations 2 s, keys 10 s, trust anchors
    ``x509.reload_interval``."""
    check_interval: float = Field(default=5.0, gt=0)
    """Seconds between the listener's checks that its connection is alive."""
    reconnect_max: float = Field(default=5.0, gt=0)
    """Longest pause (seconds) between the listener's reconnection attempts (it backs off
    from 0.2 s)."""
    heartbeat: float = Field(default=5.0, gt=0)
    """Seconds between a worker's renewals of the lease of the job or periodic task it is
    running (each renewal extends it by ``worker.lease``): a long job is never taken over by
    another worker while its worker lives, and a killed worker's job is taken over within
    ``worker.lease`` seconds."""


Settings.model_rebuild()  # resolve the sections defined after Settings (pim, x509, provisioning)
