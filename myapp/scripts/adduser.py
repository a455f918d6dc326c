"""``myapp-adduser CONFIG --username NAME --email EMAIL --password-stdin [--admin]``:
create an account from the command line (the first administrator, say). The
password is read from standard input, never from the command line, where
other users of the machine could see it."""

from __future__ import annotations

import argparse
import sys

from webob.multidict import MultiDict

from myapp.accounts import services
from myapp.accounts.forms import FormData, RegisterForm
from myapp.scripts import OPTIONS, command, load_settings, managed_session


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myapp-adduser", description=__doc__, parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. production.ini")
    parser.add_argument("--username", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    parser.add_argument("--admin", action="store_true", help="make the user an administrator")
    return parser.parse_args(argv)


@command("myapp-adduser")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    password = sys.stdin.readline().rstrip("\r\n")
    # The same rules as the register page, with the same messages.
    fields = MultiDict(username=args.username, email=args.email, password=password)
    form = RegisterForm(FormData(fields))
    load_settings(args.config_uri)
    with managed_session() as db:
        if not form.validate_new_account(db):
            for name, errors in form.errors.items():
                for error in errors:
                    print(f"myapp-adduser: {name}: {error}", file=sys.stderr)
            return 1
        user = services.create_user(
            db, username=form.username.data, email=form.email.data, password=password, is_admin=args.admin
        )
        user.email_verified = True  # an operator vouches for it
        print(f"Created {'administrator' if args.admin else 'user'} {user.username}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
