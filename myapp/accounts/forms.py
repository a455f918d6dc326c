"""The account forms (WTForms): fields, rules, and messages shown beside them.

Rules that need the database (a taken name) are checked by the views through
``services``; these are the ones a form can check on its own. CSRF is
Pyramid's job (every unsafe request), not the forms'.
"""

from __future__ import annotations

import re
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session
from wtforms import Field, Form, PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from myapp.accounts import services
from myapp.accounts.passwords import password_problem

# Letters, digits and -_. ; starting and ending with a letter or digit (PEP 508-ish).
USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?", re.ASCII)


class FormData:
    """A request's form fields as WTForms reads them (WebOb calls ``getlist`` ``getall``)."""

    def __init__(self, fields: Any) -> None:
        self._fields = fields

    def __iter__(self) -> Any:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def getlist(self, name: str) -> list[Any]:
        return self._fields.getall(name)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def username_rule(form: Form, field: Field) -> None:
    if not USERNAME.fullmatch(field.data or ""):
        raise ValidationError(
            "Use 1 to 50 letters, digits, '-', '_' or '.', starting and ending with a letter or digit."
        )


def email_rule(form: Form, field: Field) -> None:
    try:
        field.data = validate_email(field.data or "", check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(str(exc)) from None


def new_password_rule(form: Form, field: Field) -> None:
    """Strong enough, and not made of the user's own name or address (a form for a
    signed-in user sets ``form.user_inputs``; the register form has the fields)."""
    inputs = [*getattr(form, "user_inputs", ())]
    inputs += [str(f.data or "") for name in ("username", "email") if isinstance(f := getattr(form, name, None), Field)]
    problem = password_problem(field.data or "", user_inputs=tuple(inputs))
    if problem:
        raise ValidationError(problem)


class InvitedRegisterForm(Form):
    """Registering through an invitation: the address is the invitation's."""

    username = StringField("Username", [InputRequired(), username_rule], filters=[_strip])
    password = PasswordField("Password", [InputRequired(), new_password_rule])

    def validate_new_account(self, db: Session) -> bool:
        """The form's own rules, and a username nobody has. (Usernames are
        public, so saying one is taken tells nobody anything new.)"""
        valid = self.validate()
        if self.username.data and services.find_user(db, self.username.data):
            self.username.errors = [*self.username.errors, "That username is taken."]
            valid = False
        return valid


class RegisterForm(InvitedRegisterForm):
    """An account in one go, for ``myapp-adduser``. (The register page never
    says whether an address has an account: see ``membership``.)"""

    email = StringField("Email", [InputRequired(), Length(max=254), email_rule], filters=[_strip])

    def validate_new_account(self, db: Session) -> bool:
        """As for an invitation, and an email nobody has."""
        valid = super().validate_new_account(db)
        if self.email.data and services.find_user_by_email(db, self.email.data):
            self.email.errors = [*self.email.errors, "An account with that email already exists."]
            valid = False
        return valid


class InvitationForm(Form):
    """The address to mail a link to register to (an invitation, or one asked for)."""

    email = StringField("Email", [InputRequired(), Length(max=254), email_rule], filters=[_strip])


class LoginForm(Form):
    username = StringField("Username or email", [InputRequired(), Length(max=254)], filters=[_strip])
    password = PasswordField("Password", [InputRequired(), Length(max=1024)])


class TwoFactorForm(Form):
    code = StringField("Code from your app, or a recovery code", [InputRequired(), Length(max=64)], filters=[_strip])


class AppCodeForm(Form):
    """Setting two-factor sign-in up, or turning it off: a code from the app only."""

    code = StringField("6-digit code from your app", [InputRequired(), Length(max=64)], filters=[_strip])


class ChangePasswordForm(Form):
    current_password = PasswordField("Current password", [InputRequired(), Length(max=1024)])
    password = PasswordField("New password", [InputRequired(), new_password_rule])


class ChangeEmailForm(Form):
    email = StringField("New email", [InputRequired(), Length(max=254), email_rule], filters=[_strip])
    current_password = PasswordField("Current password", [InputRequired(), Length(max=1024)])


class ForgotPasswordForm(Form):
    username = StringField("Username or email", [InputRequired(), Length(max=254)], filters=[_strip])


class ResetPasswordForm(Form):
    password = PasswordField("New password", [InputRequired(), new_password_rule])


class TokenForm(Form):
    name = StringField("Name", [InputRequired(), Length(max=100)], filters=[_strip])
    project = StringField("Project (empty: the whole account)", [Optional(), Length(max=200)], filters=[_strip])
    expires_days = StringField("Expires after (days, empty: never)", [Optional()], filters=[_strip])

    def validate_expires_days(self, field: Field) -> None:
        if field.data and not (re.fullmatch(r"[0-9]{1,4}", field.data, re.ASCII) and 1 <= int(field.data) <= 3650):
            raise ValidationError("Give a number of days from 1 to 3650, or leave it empty.")


class ConfirmForm(Form):
    """Sudo mode: the password again, and a code when two-factor sign-in is on."""

    password = PasswordField("Password", [InputRequired(), Length(max=1024)])
    code = StringField("Code from your app, or a recovery code", [Optional(), Length(max=64)], filters=[_strip])
