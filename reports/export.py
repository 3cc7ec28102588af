"""The postmortem report as ONE standalone HTML file that works offline.

``save(path, resources=INLINE, embed=True)`` inlines the JavaScript but still points at 8 files on
cdn.holoviz.org (holoviz/panel#6759): stylesheets the Bokeh document imports
(``ImportedStyleSheet`` models in the embedded JSON) and the favicons in ``<head>``. Offline, a
page like that loses its table styles and logs console errors. :func:`inline_resources` swaps each
such URL for the copy Panel ships in its ``panel/dist`` folder: imported stylesheets become
``InlineStyleSheet`` models (Bokeh puts them in ``<style>`` elements), ``<link rel=stylesheet>``
tags become ``<style>``, icons become ``data:`` URLs, and ``url(...)`` references inside the
inlined CSS (fonts, images) become ``data:`` URLs too. :func:`external_references` then lists
anything that would still load from the network, and :func:`export_report` refuses to write a
file that has any.

The file carries the incident id and content hash in ``<meta name="workbench-incident">`` and
``<meta name="workbench-content-hash">`` (and shows the hash in its header).
"""
from __future__ import annotations

import base64
import html
import io
import json
import mimetypes
import os
import re
import uuid
from pathlib import Path
from typing import Any, Callable

import panel as pn
from bokeh.resources import INLINE

from workbench.workspace import Workspace, open_workspace
from workbench.errors import WorkbenchError

from .report import Report

#: Default file name inside ``<workspace>/incidents/<id>/``.
REPORT_FILE = "report.html"
_CDN = re.compile(r"https?://cdn\.holoviz\.org/panel/[^/\"'\s]+/dist/([^\"'\s)?#]+)(?:\?[^\"'\s)#]*)?")
_JSON_SCRIPT = re.compile(r'(<script type="application/json" id="[^"]+">)(.*?)(</script>)', re.S)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_HREF = re.compile(r"""\bhref\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)""")
#: What makes a browser fetch: src/href attributes, CSS url() and @import, and Bokeh's
#: ImportedStyleSheet models (their URL sits in the document JSON).
_RESOURCE_PATTERNS = (
    re.compile(r"""<(?:script|img|iframe|source|video|audio|embed|input)\b[^>]*?\bsrc\s*=\s*["']?(https?:)?//[^"'\s>]+""", re.I),
    re.compile(r"""<link\b[^>]*?\bhref\s*=\s*["']?(https?:)?//[^"'\s>]+""", re.I),
    re.compile(r"""url\(\s*["']?(https?:)?//[^"')\s]+""", re.I),
    re.compile(r"""@import\s+(?:url\()?\s*["']?(https?:)?//[^"')\s;]+""", re.I),
    re.compile(r""""name":"ImportedStyleSheet"[^}]*"url":"(https?:)?//[^"]+""", re.I),
)


class ReportError(WorkbenchError):
    """The report cannot be written as a standalone file (the message names what and why)."""


def panel_dist() -> Path:
    """The ``dist`` folder of the installed Panel (the files cdn.holoviz.org serves)."""
    return Path(pn.__file__).resolve().parent / "dist"


def build_report(workspace: Workspace | str | os.PathLike[str], incident_id: str, **options: Any) -> pn.viewable.Viewable:
    """The report of ``incident_id`` as a Panel object (for a notebook, ``panel serve`` or export).

    ``options`` go to :meth:`Report.from_workspace` (``scores=``, ``score_method=``).
    """
    return Report.from_workspace(_workspace(workspace), incident_id, **options).__panel__()


def export_report(workspace: Workspace | str | os.PathLike[str], incident_id: str,
                  out: str | os.PathLike[str] | None = None, **options: Any) -> Path:
    """Write the report of ``incident_id`` as one standalone HTML file and return its path.

    Parameters
    ----------
    workspace : Workspace or path
    incident_id : str
    out : path, optional
        Default ``<workspace>/incidents/<id>/report.html``. Written atomically (a temporary file
        beside it is renamed into place).
    **options
        Passed to :meth:`Report.from_workspace`.

    Raises
    ------
    NotFoundError
        The incident does not exist.
    ReportError
        The saved page would still load something from the network.
    """
    ws = _workspace(workspace)
    report = Report.from_workspace(ws, incident_id, **options)
    path = Path(out) if out is not None else ws.incident_dir(incident_id) / REPORT_FILE
    return write_page(report.__panel__(), path, f"Postmortem {report.incident.id}: {report.incident.title}",
                      {"workbench-incident": report.incident.id, "workbench-content-hash": report.content_hash or ""})


def write_page(viewable: Any, path: Path, title: str, meta: dict[str, str]) -> Path:
    """Save a Panel object as one standalone HTML file at ``path`` (CDN files inlined, ``meta``
    added as ``<meta name=... content=...>``), atomically; the same guarantees for every export.

    Raises
    ------
    ReportError
        The saved page would still load something from the network.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    viewable.save(buffer, resources=INLINE, embed=True, title=title)
    page = add_meta(inline_resources(buffer.getvalue()), meta)
    remaining = external_references(page)
    if remaining:
        raise ReportError(f"{path}: the saved page would still load {len(remaining)} resource(s) from the network "
                          f"(first: {remaining[0]}); the installed Panel/Bokeh links a file this export does not "
                          f"inline yet")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(page)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- inlining

def inline_resources(page: str, dist: Path | None = None) -> str:
    """Replace every cdn.holoviz.org Panel URL of a saved page with the local ``panel/dist`` file.

    Imported stylesheets in the Bokeh document JSON become inline stylesheets, ``<link>`` tags
    become ``<style>`` (stylesheets) or get a ``data:`` URL (icons).

    Raises
    ------
    ReportError
        A referenced file is not in ``panel/dist`` (the installed Panel is incomplete).
    """
    dist = dist or panel_dist()
    cache: dict[str, str] = {}

    def css(url: str) -> str:
        if url not in cache:
            rel = _dist_path(url)
            cache[url] = _inline_css_urls(_read(dist, rel).decode("utf-8"), dist, Path(rel).parent)
        return cache[url]

    page = _JSON_SCRIPT.sub(lambda m: m.group(1) + _inline_document(m.group(2), css) + m.group(3), page)
    page = _LINK.sub(lambda m: _inline_link(m.group(0), dist, css), page)
    return page


def _dist_path(url: str) -> str:
    match = _CDN.fullmatch(url)
    if match is None:
        raise ReportError(f"not a Panel CDN URL: {url}")
    return match.group(1)


def _read(dist: Path, rel: str) -> bytes:
    path = (dist / rel).resolve()
    if dist.resolve() not in path.parents or not path.is_file():
        raise ReportError(f"{dist / rel}: Panel's local copy of a CDN file is missing; reinstall panel")
    return path.read_bytes()


def _data_url(data: bytes, name: str) -> str:
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".woff2"):
        mime = "font/woff2"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _inline_css_urls(text: str, dist: Path, folder: Path) -> str:
    """``url(relative)`` inside an inlined stylesheet would resolve against the report's own
    location, so point it at a ``data:`` copy of the file from ``panel/dist`` instead."""

    def sub(m: re.Match) -> str:
        target = m.group(2).strip()
        if target.startswith(("data:", "#")):
            return m.group(0)
        if _CDN.fullmatch(target.split("#")[0]):
            rel = _dist_path(target.split("#")[0])
        elif "//" in target:
            return m.group(0)  # external: left for external_references() to report
        else:
            rel = os.path.normpath(str(folder / target.split("?")[0].split("#")[0]))
        try:
            data = _read(dist, rel)
        except ReportError:
            return m.group(0)
        return f'url("{_data_url(data, rel)}")'

    return _CSS_URL.sub(sub, text)


def _inline_document(escaped: str, css: Callable[[str], str]) -> str:
    """Rewrite the Bokeh document JSON (HTML-escaped inside its script tag, as Bokeh writes it)."""
    docs = json.loads(html.unescape(escaped))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            attrs = node.get("attributes")
            if node.get("name") == "ImportedStyleSheet" and isinstance(attrs, dict) and \
                    isinstance(attrs.get("url"), str) and _CDN.fullmatch(attrs["url"]):
                return {**node, "name": "InlineStyleSheet", "attributes": {"css": css(attrs["url"])}}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    # Bokeh's own escaping (bokeh.embed.elements): the page reverses it before JSON.parse.
    return html.escape(json.dumps(walk(docs), separators=(",", ":"), ensure_ascii=False, allow_nan=False),
                       quote=False)


def _inline_link(tag: str, dist: Path, css: Callable[[str], str]) -> str:
    href = _HREF.search(tag)
    if href is None or not _CDN.fullmatch(html.unescape(href.group(2))):
        return tag
    url = html.unescape(href.group(2))
    if re.search(r"""\brel\s*=\s*["']?stylesheet""", tag, re.I):
        return f"<style>{css(url)}</style>"
    rel = _dist_path(url)
    return tag[:href.start(2)] + html.escape(_data_url(_read(dist, rel), rel)) + tag[href.end(2):]


def add_meta(page: str, values: dict[str, str]) -> str:
    """Insert ``<meta name=... content=...>`` tags right after ``<head>`` (values escaped)."""
    tags = "".join(f'<meta name="{html.escape(k)}" content="{html.escape(v)}">' for k, v in values.items())
    head = re.search(r"<head\b[^>]*>", page, re.I)
    if head is None:
        raise ReportError("the saved page has no <head>")
    return page[:head.end()] + "\n    " + tags + page[head.end():]


def external_references(page: str) -> list[str]:
    """Network URLs a browser would load for ``page``: ``src``/``href`` of scripts, images,
    stylesheets and icons, CSS ``url()``/``@import``, and Bokeh ``ImportedStyleSheet`` URLs.

    URLs that only appear as text (licence comments, links in docs strings inside the bundled
    JavaScript, ``<a href>``) are not loads and are not listed.
    """
    found = []
    for pattern in _RESOURCE_PATTERNS:
        found.extend(m.group(0)[-200:] for m in pattern.finditer(page))
    return found


def read_meta(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``workbench-*`` meta values of an exported report (``workbench-content-hash`` ...)."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(20000)  # add_meta puts the tags right after <head>
    return {html.unescape(n): html.unescape(c) for n, c in
            re.findall(r'<meta name="(workbench-[^"]+)" content="([^"]*)">', head)}


def _workspace(workspace: Workspace | str | os.PathLike[str]) -> Workspace:
    return open_workspace(workspace)
