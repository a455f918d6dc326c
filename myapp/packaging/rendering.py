"""Project descriptions rendered to safe HTML, as PyPI renders them.

``readme_renderer`` turns reStructuredText, Markdown or plain text into HTML
and sanitizes it (no scripts, no inline event handlers). Rendering is slow
(docutils), so it happens once, when a description arrives (upload, import,
demo data), and the HTML is stored with the name of the renderer that made
it (``RENDERER``); ``myapp-rerender`` redoes the descriptions an older
renderer made.
"""

from __future__ import annotations

import html
import io
from importlib.metadata import version

from docutils.core import publish_parts
from docutils.utils import SystemMessage
from docutils.writers.html5_polyglot import Writer
from markupsafe import Markup
from readme_renderer import markdown, txt
from readme_renderer.clean import clean
from readme_renderer.rst import SETTINGS, ReadMeHTMLTranslator

from myapp.packaging.models import Package

# Stored beside each rendering: a change of either library means re-render.
RENDERER = f"readme_renderer {version('readme_renderer')}, docutils {version('docutils')}"
# readme_renderer stops at a docutils warning (level 2) and PyPI then shows
# plain text; many real READMEs only warn (a short title underline), so stop
# at errors (level 3) instead.
RST_SETTINGS = {**SETTINGS, "halt_level": 3}


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


def _rst(text: str) -> str | None:
    """readme_renderer's reStructuredText rendering, tolerant of warnings."""
    writer = Writer()
    writer.translator_class = ReadMeHTMLTranslator
    try:
        parts = publish_parts(text, writer=writer, settings_overrides={**RST_SETTINGS, "warning_stream": io.StringIO()})
    except SystemMessage:
        return None
    rendered = parts.get("docinfo", "") + parts.get("fragment", "")
    return clean(rendered) if rendered else None


def render_description(text: str | None, content_type: str | None = None) -> str:
    """Safe HTML for a description ('' for none)."""
    if not text or not text.strip():
        return ""
    kind, variant = _kind(content_type)
    if kind == "md":
        rendered = markdown.render(text, variant=variant or "GFM")
    elif kind == "txt":
        rendered = txt.render(text)
    else:
        rendered = _rst(text)
    # Markup with real errors is shown as the text it is, escaped.
    return rendered if rendered is not None else f'<pre class="plain">{html.escape(text)}</pre>'


def render_into(package: Package) -> None:
    """Render the package's description and store the HTML on it."""
    package.description_html = render_description(package.description, package.description_content_type)
    package.description_renderer = RENDERER


def stored_description(package: Package) -> Markup:
    """The description's stored HTML (rendered now if it never was)."""
    stored = package.description_html
    if stored is None and package.description:
        stored = render_description(package.description, package.description_content_type)
    # Safe to mark: readme_renderer sanitizes what it renders (nh3 allow-list: no
    # scripts, event handlers or javascript: links), and the fallback is escaped.
    return Markup(stored or "")  # noqa: S704  # nosec B704
