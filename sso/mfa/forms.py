"""Forms of the second-factor pages (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class CodeForm(FlaskForm):  # type: ignore[misc]
    """One-time code (field ``code``: the house's name for it)."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])


class PasswordForm(FlaskForm):  # type: ignore[misc]
    """Re-entering the password before changing one's security devices."""

    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=512)])
