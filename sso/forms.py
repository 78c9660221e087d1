"""Forms of the sign-in pages (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


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
