"""Project descriptions rendered to safe HTML, as PyPI renders them.

``readme_renderer`` turns reStructuredText, Markdown or plain text into HTML
and sanitizes it (no scripts, no inline event handlers). Rendering is slow
(docutils), so results are cached per process, keyed by the text itself.
"""

from __future__ import annotations

import functools
import html

from markupsafe import Markup
from readme_renderer import markdown, rst, txt


def _kind(content_type: str | None) -> tuple[str, str | None]:
    """The renderer name and Markdown variant for a description content type."""
    if not content_type:
        return "rst", None  # PyPI's default for a description without a type
    main, _, params = content_type.partition(";")
    main = main.strip().lower()
    variant = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "variant":
            variant = value.strip()
    if main == "text/markdown":
        return "md", variant or "GFM"
    if main == "text/plain":
        return "txt", None
    return "rst", None


@functools.lru_cache(maxsize=512)
def render_description(text: str | None, content_type: str | None = None) -> Markup:
    if not text or not text.strip():
        return Markup("")
    kind, variant = _kind(content_type)
    rendered: str | None
    if kind == "md":
        rendered = markdown.render(text, variant=variant)
    elif kind == "txt":
        rendered = txt.render(text)
    else:
        rendered = rst.render(text)
    if rendered is None:
        # Like PyPI: markup that does not render cleanly is shown as the text it is.
        rendered = f'<pre class="plain">{html.escape(text)}</pre>'

    # Safe to mark: readme_renderer sanitizes what it renders (nh3 allow-list: no
    # scripts, event handlers or javascript: links), and the fallback is escaped.
    return Markup(rendered)  # noqa: S704  # nosec B704
