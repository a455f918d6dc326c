"""Choosing a representation from ``?format=`` or the ``Accept`` header."""

from __future__ import annotations

from collections.abc import Mapping

from pyramid.httpexceptions import HTTPNotAcceptable
from pyramid.request import Request


def negotiate(
    request: Request, offers: Mapping[str, str], formats: Mapping[str, str], default: str, *, strict: bool = True
) -> str:
    """The representation to send.

    ``offers`` maps media types a client may ask for in ``Accept`` to what is
    sent, in order of preference when it likes several equally; ``formats``
    maps the values ``?format=`` takes. No ``Accept`` means ``default``;
    an unknown format is a 406, and so is nothing acceptable when ``strict``
    (else the default is sent, as RFC 9110 allows, for pages meant for people).
    """
    wanted = request.GET.get("format")
    if wanted is not None:
        if wanted not in formats:
            raise HTTPNotAcceptable(f"format must be one of: {', '.join(formats)}.")
        return formats[wanted]
    if "Accept" not in request.headers:
        return default
    acceptable = request.accept.acceptable_offers(list(offers))
    if not acceptable:
        if not strict:
            return default
        raise HTTPNotAcceptable(f"This page is available as: {', '.join(offers)}.")
    return offers[acceptable[0][0]]
