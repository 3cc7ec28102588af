"""The only place where data strings become Panel panes: everything is escaped on the way in.

Incident titles, service names, log bodies, rationales and action items come from users and from
telemetry, so they are data, never markup. Panel's Markdown, Str, HTML, Alert and StaticText panes
execute ``<script>`` and ``onerror`` from their content (measured, see STACK.md), so views never
hand a data string to a pane themselves. They build :class:`Markup` with the helpers here, which
``html.escape`` every value that is not already :class:`Markup`, and turn it into a pane with
:func:`pane` (which refuses a plain ``str``) or show a frame with :func:`frame`
(``pane.DataFrame``, which escapes cells).

Chart labels (service names on axes and legends, hover text) are drawn by Bokeh on a canvas or
escaped by its tooltips, so HoloViews elements may carry data strings as they are.
"""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

if TYPE_CHECKING:  # Panel (1.4 s to import) only for the panes; the notebook and widgets need none
    import pandas as pd
    import panel as pn

#: Link schemes rendered as ``<a href>``; anything else is shown as text (the store already
#: refuses other schemes; this keeps a hand-built record from turning into ``javascript:``).
LINK_SCHEMES = ("http", "https", "mailto")

#: Styles of the report's HTML panes. Panel renders each pane in its own shadow root, so the
#: stylesheet is attached to every pane (Panel inlines a CSS string as a ``<style>``).
CSS = """
:host { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; width: 100%; }
.wb { width: 100%; font-size: 14px; line-height: 1.45; }
.wb h1 { font-size: 22px; margin: 4px 0 6px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.wb h2 { font-size: 17px; margin: 14px 0 6px 0; border-bottom: 1px solid #d0d7de; padding-bottom: 3px; }
.wb h3 { font-size: 15px; margin: 10px 0 4px 0; }
.wb .id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: #57606a; }
.wb .badge { display: inline-block; padding: 1px 8px; margin: 0 4px 2px 0; border-radius: 10px;
             font-size: 12px; background: #eaeef2; white-space: pre-wrap; }
.wb .sev { background: #cf222e; color: white; font-weight: 600; }
.wb .ok { background: #dafbe1; color: #116329; }
.wb .warn { background: #fff8c5; color: #7d4e00; }
.wb .bad { background: #ffebe9; color: #a40e26; }
.wb .muted { color: #57606a; }
.wb .hash { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; overflow-wrap: anywhere; }
.wb .text { white-space: pre-wrap; overflow-wrap: anywhere; }
.wb table { border-collapse: collapse; width: 100%; margin: 4px 0 8px 0; font-size: 13px; }
.wb th, .wb td { border: 1px solid #d0d7de; padding: 3px 6px; text-align: left; vertical-align: top;
                 white-space: pre-wrap; overflow-wrap: break-word; }
.wb th { background: #f6f8fa; }
.wb td.nw { white-space: nowrap; }
.wb code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap;
           overflow-wrap: anywhere; }
.wb .cause { border-left: 4px solid #1a7f37; padding: 2px 10px; margin: 6px 0; }
.wb .rejected { border-left: 4px solid #8c959f; padding: 2px 10px; margin: 6px 0; }
.wb .proposed { border-left: 4px solid #bf8700; padding: 2px 10px; margin: 6px 0; }
.wb ul { margin: 2px 0 6px 0; padding-left: 22px; }
"""


class Markup(str):
    """HTML whose data parts were escaped by this module (a ``str`` subclass).

    Only the helpers here create it; :func:`pane` accepts nothing else, so a data string cannot
    reach an HTML pane unescaped by accident.
    """

    __slots__ = ()

    def __add__(self, other: Any) -> "Markup":
        return Markup(str.__add__(self, escape(other)))

    def __radd__(self, other: Any) -> "Markup":
        return Markup(str.__add__(escape(other), self))


def escape(value: Any) -> Markup:
    """``value`` as escaped HTML text (``&``, ``<``, ``>``, ``"``, ``'``); Markup passes unchanged.

    ``None`` becomes an empty string; other values go through ``str()``.
    """
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value), quote=True))


def fmt(template: str, *args: Any, **kwargs: Any) -> Markup:
    """Fill a trusted HTML ``template`` (``str.format`` syntax) with escaped values.

    ``template`` is markup written in this package, never data; every argument that is not
    :class:`Markup` is escaped.
    """
    return Markup(template.format(*(escape(a) for a in args), **{k: escape(v) for k, v in kwargs.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    """Concatenate escaped parts with a trusted separator."""
    return Markup(sep.join(escape(p) for p in parts))


def text(value: Any, cls: str = "text", tag: str = "span") -> Markup:
    """``<tag class=cls>value</tag>`` keeping line breaks (the CSS sets ``pre-wrap``)."""
    return fmt(f"<{tag} class=\"{{0}}\">{{1}}</{tag}>", cls, value)


def badge(value: Any, cls: str = "") -> Markup:
    """A small rounded label."""
    return fmt('<span class="badge {0}">{1}</span>', cls, value)


def link(title: Any, url: Any) -> Markup:
    """``<a href>`` for an http, https or mailto URL; any other URL is shown as plain text."""
    url = "" if url is None else str(url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in LINK_SCHEMES:
        return fmt('<span class="text">{0} ({1})</span>', title, url)
    return fmt('<a href="{0}" target="_blank" rel="noopener noreferrer">{1}</a>', url, title)


def code(value: Any) -> Markup:
    """A JSON value (or any text) in ``<code>``: dicts and lists as compact JSON."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
    return fmt("<code>{0}</code>", value)


def table(rows: Iterable[Sequence[Any]], header: Sequence[Any], empty: str = "none",
          nowrap: Sequence[int] = (), *, cls: str = "", empty_cls: str = "muted", empty_tag: str = "p") -> Markup:
    """An HTML table; every cell that is not :class:`Markup` is escaped.

    ``empty`` is shown (``<empty_tag class=empty_cls>``) instead of a table without rows; columns
    whose index is in ``nowrap`` do not wrap (times, short names); ``cls`` is the table's class.
    """
    def cell(i: int, value: Any) -> Markup:
        return fmt('<td class="nw">{0}</td>', value) if i in nowrap else fmt("<td>{0}</td>", value)

    body = [fmt("<tr>{0}</tr>", join(cell(i, v) for i, v in enumerate(row))) for row in rows]
    if not body:
        return fmt(f'<{empty_tag} class="{{0}}">{{1}}</{empty_tag}>', empty_cls, empty)
    head = join(fmt("<th>{0}</th>", h) for h in header)
    attr = fmt(' class="{0}"', cls) if cls else Markup("")
    return fmt("<table{0}><thead><tr>{1}</tr></thead><tbody>{2}</tbody></table>", attr, head, join(body))


def collapsible(summary: Any, body: Markup, open_: bool = False) -> Markup:
    """``<details>`` with an escaped ``summary`` line; ``body`` shows when it is opened."""
    return fmt("<details{0}><summary>{1}</summary>{2}</details>", Markup(" open") if open_ else Markup(""),
               summary, body)


def items(values: Iterable[Any], empty: str = "none") -> Markup:
    """A bulleted list of escaped (or Markup) items."""
    lis = [fmt("<li>{0}</li>", v) for v in values]
    if not lis:
        return fmt('<p class="muted">{0}</p>', empty)
    return fmt("<ul>{0}</ul>", join(lis))


#: Classes that tell MathJax to leave text alone, so ``$x$`` in data stays text: ``mathjax_ignore``
#: for MathJax 3+ (JupyterLab 4), ``tex2jax_ignore`` for MathJax 2 (nbconvert's HTML pages).
NO_MATH = "tex2jax_ignore mathjax_ignore"


def section(content: Markup, test_id: str | None = None) -> Markup:
    """Wrap content in the report's styled container (``data-testid`` for browser tests); MathJax
    skips it (:data:`NO_MATH`), so ``${shell} $(cmd)`` in data is not typeset as math."""
    attr = fmt(' data-testid="{0}"', test_id) if test_id else Markup("")
    return fmt('<div class="wb {0}"{1}>{2}</div>', NO_MATH, attr, content)


def pane(markup: Markup, **params: Any) -> pn.pane.HTML:
    """An HTML pane of :class:`Markup` built by this module.

    Raises
    ------
    TypeError
        When given a plain ``str`` (data must go through :func:`escape` or a helper first).
    """
    if not isinstance(markup, Markup):
        raise TypeError(f"safe.pane() takes Markup built by workbench.reports.safe, got {type(markup).__name__}; "
                        f"escape data with safe.escape()/safe.fmt() first")
    import panel as pn

    params.setdefault("sizing_mode", "stretch_width")
    params.setdefault("stylesheets", [CSS])
    # disable_math: "$...$" in data must stay text (math would also load MathJax from a CDN)
    return pn.pane.HTML(str(markup), sanitize_html=False, disable_math=True, **params)


def frame(data: pd.DataFrame, **params: Any) -> pn.pane.DataFrame:
    """A ``pane.DataFrame`` with escaping forced on (cells and column names are data)."""
    import panel as pn

    params.setdefault("sizing_mode", "stretch_width")
    params.setdefault("index", False)
    return pn.pane.DataFrame(data, escape=True, **params)


def mapping_rows(values: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """``(key, value)`` rows of a mapping for :func:`table` (nested values as JSON code)."""
    return [(k, v if isinstance(v, (str, int, float)) else code(v)) for k, v in values.items()]
