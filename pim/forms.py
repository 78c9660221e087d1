"""Forms of the PIM pages (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class RequestForm(FlaskForm):  # type: ignore[misc]
    minutes = IntegerField(
        "Duration (minutes)", validators=[DataRequired(), NumberRange(min=1, max=7 * 24 * 60)]
    )
    justification = TextAreaField("Justification", validators=[Optional(), Length(max=2000)])
    ticket = StringField("Ticket number", validators=[Optional(), Length(max=128)])
    password = PasswordField("Password (dev mode re-check)", validators=[Optional(), Length(max=512)])


class DecisionForm(FlaskForm):  # type: ignore[misc]
    comment = TextAreaField("Comment", validators=[Optional(), Length(max=2000)])
    password = PasswordField("Password (dev mode re-check)", validators=[Optional(), Length(max=512)])


class ReasonForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=256)])


class ReviewForm(FlaskForm):  # type: ignore[misc]
    note = TextAreaField("Review findings", validators=[DataRequired(), Length(min=5, max=4000)])


class EligibilityForm(FlaskForm):  # type: ignore[misc]
    role = StringField("Role", validators=[DataRequired(), Length(max=64)])
    username = StringField("Username", validators=[DataRequired(), Length(max=256)])
    permanent = BooleanField("Permanent member (never reported)")
