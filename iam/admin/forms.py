"""Forms of the console (Flask-WTF: every form carries a CSRF token). Every action that
changes something asks for a reason, which the audit event records."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length


class ReasonForm(FlaskForm):  # type: ignore[misc]
    """An action with a reason (required: the audit log says why)."""

    reason = TextAreaField(
        _l("Reason (kept in the audit log)"),
        validators=[
            DataRequired(message=_l("Say why: the audit log keeps the reason.")),
            Length(min=3, max=500),
        ],
    )
