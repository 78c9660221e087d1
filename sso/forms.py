"""Forms of the sign-in pages (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # wtforms >= 3.3
from wtforms.validators import DataRequired, EqualTo, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=256)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=512)])


class ChangePasswordForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=256)])
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=512)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=512)])
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords differ.")),
        ],
    )


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A bare form: a button plus the CSRF token (logout confirmation, consent, end session)."""

    action = HiddenField()


# -- the console's application wizard -------------------------------------------------------------
KINDS: dict[str, dict[str, object]] = {
    "web": {
        "label": _l("Web application with a server (confidential)"),
        "hint": _l("Signs people in; keeps a secret on its server (authorization code + refresh)."),
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
    "public": {
        "label": _l("Single-page or mobile app (public)"),
        "hint": _l("Signs people in from a browser or a device; cannot keep a secret (PKCE)."),
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    },
    "service": {
        "label": _l("Service calling an API (machine to machine)"),
        "hint": _l("No person signs in; the service gets tokens with its own credentials."),
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
    "custom": {
        "label": _l("Something else (choose every setting)"),
        "hint": _l("Start from the defaults and choose grant types and method yourself."),
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
}


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ChoiceField(SelectField):
    """A select whose value, when a client leaves it out, is its default (as a browser sends)."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            super().process_formdata(valuelist)
        else:
            self.data = self.default


class ApplicationForm(FlaskForm):  # type: ignore[misc]
    """Every setting ``iam client add`` has; validated by ``sso.clients.validate_spec``."""

    kind = HiddenField()
    name = StringField(_l("Name shown on sign-in pages"), validators=[DataRequired(), Length(max=256)])
    client_id = StringField(_l("Client id (empty: a random one)"), validators=[Optional(), Length(max=64)])
    grant_types = MultiCheckboxField(
        _l("Grant types"),
        choices=[
            SelectChoice("authorization_code", _l("Authorization code (people sign in)")),
            SelectChoice("refresh_token", _l("Refresh tokens")),
            SelectChoice("client_credentials", _l("Client credentials (the application itself)")),
        ],
    )
    redirect_uris = TextAreaField(_l("Redirect URIs (one per line, exact)"), validators=[Length(max=8000)])
    post_logout_redirect_uris = TextAreaField(
        _l("Post-logout redirect URIs (one per line)"), validators=[Length(max=8000)]
    )
    backchannel_logout_uri = StringField(
        _l("Back-channel logout URI (optional)"), validators=[Optional(), Length(max=1024)]
    )
    token_endpoint_auth_method = ChoiceField(
        _l("How the application authenticates"),
        choices=[
            SelectChoice(
                "client_secret_basic", _l("Secret in the Authorization header (client_secret_basic)")
            ),
            SelectChoice("client_secret_post", _l("Secret in the request body (client_secret_post)")),
            SelectChoice("client_secret_jwt", _l("JWT signed with the secret (client_secret_jwt)")),
            SelectChoice("private_key_jwt", _l("JWT signed with its private key (private_key_jwt)")),
            SelectChoice("none", _l("None: a public client (PKCE)")),
        ],
        default="client_secret_basic",
    )
    jwks = TextAreaField(
        _l("Public key for private_key_jwt: a JWKS (JSON) or a PEM public key"),
        validators=[Length(max=20000)],
    )
    jwks_uri = StringField(
        _l("…or the address where it publishes its public keys (JWKS URI)"),
        validators=[Optional(), Length(max=1024)],
    )
    scopes = StringField(_l("Allowed scopes (separated by spaces)"), validators=[Length(max=2000)])
    audiences = TextAreaField(
        _l("Allowed audiences / resources (one per line)"), validators=[Length(max=4000)]
    )
    allowed_networks = TextAreaField(
        _l("Networks allowed to use the token endpoint (one CIDR per line; empty: any)"),
        validators=[Length(max=4000)],
    )
    agency_code = StringField(
        _l("Agency code (claim agency_code, optional)"), validators=[Optional(), Length(max=64)]
    )
    require_acr = ChoiceField(_l("Minimum sign-in level"), choices=[], default="")
    id_token_alg = ChoiceField(
        _l("ID token signature"),
        choices=[
            SelectChoice("", _l("The provider's default")),
            SelectChoice("ES256", "ES256"),
            SelectChoice("RS256", "RS256"),
        ],
        default="",
    )
    require_consent = BooleanField(_l("Third-party application: ask each person's consent"))
    description = TextAreaField(_l("Description shown in the portal"), validators=[Length(max=2000)])
    launch_uri = StringField(
        _l("Launch URL (where the portal's tile leads)"), validators=[Optional(), Length(max=1024)]
    )
    logo_uri = StringField(
        _l("Logo (an https URL or a /static/ path)"), validators=[Optional(), Length(max=1024)]
    )
    allowed_groups = TextAreaField(
        _l("Who may use it: directory groups (one per line; empty: everyone)"), validators=[Length(max=8000)]
    )
    reason = TextAreaField(_l("Reason (kept in the audit log)"), validators=[Length(max=500)])
