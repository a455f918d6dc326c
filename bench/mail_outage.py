"""How long after a mail server outage the mail that waited for it arrives.

    .venv/bin/python bench/mail_outage.py [--outage 60]

Runs ``pserve`` from a copy of development.ini (SQLite in a temp folder, the
in-process worker thread, real SMTP to an aiosmtpd on 127.0.0.1 instead of
the mail folder, the default backoff). With the mail server down, it
registers an account (the answer must be a 303, not a 500); after
``--outage`` seconds it starts the mail server and waits for the
verification mail. Prints when the mail arrived, counted from the request
and from the server's return.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


class Inbox:
    def __init__(self) -> None:
        self.arrived: list[float] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.arrived.append(time.monotonic())
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_ini(folder: Path, port: int, smtp_port: int) -> Path:
    text = (HERE.parent / "development.ini").read_text()
    text = text.replace("sqlite:///%(here)s/myapp.sqlite", f"sqlite:///{folder / 'outage.sqlite'}")
    text = re.sub(r"(?m)^myapp\.mail_folder = .*$", f"mail.host = {HOST}\nmail.port = {smtp_port}", text)
    text = re.sub(r"(?m)^listen = .*$", f"listen = {HOST}:{port}", text)
    text = text.replace("pyramid.includes =\n    pyramid_debugtoolbar\n", "")
    ini = folder / "outage.ini"
    ini.write_text(text)
    return ini


def register(base: str) -> int:
    web = requests.Session()
    page = web.get(base + "/account/register", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    fields = {
        "csrf_token": token,
        "username": "outage",
        "email": "outage@example.org",
        "password": "violet kettle 93 x",
    }
    return web.post(base + "/account/register", data=fields, allow_redirects=False, timeout=30).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="myapp-outage-"))
    port, smtp_port = free_port(), free_port()
    ini = make_ini(folder, port, smtp_port)
    subprocess.run([str(BIN / "myapp-initdb"), str(ini)], check=True, capture_output=True)
    server = subprocess.Popen([str(BIN / "pserve"), str(ini)], stderr=(folder / "server.log").open("wb"))
    inbox = Inbox()
    try:
        time.sleep(3)
        requested = time.monotonic()
        print(f"register with the mail server down: {register(f'http://{HOST}:{port}')}")
        time.sleep(max(0.0, args.outage - (time.monotonic() - requested)))
        smtp = Controller(inbox, hostname=HOST, port=smtp_port)
        smtp.start()
        back = time.monotonic()
        while not inbox.arrived and time.monotonic() - back < 3700:
            time.sleep(0.1)
        smtp.stop()
        arrived = inbox.arrived[0]
        print(f"outage {back - requested:.1f} s; mail arrived {arrived - requested:.1f} s after the request, ")
        print(f"{arrived - back:.1f} s after the mail server came back")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
