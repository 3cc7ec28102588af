"""Charts and HTML in an executed notebook that display when it is opened, without a kernel.

Why not Panel or ``hv.extension`` output (measured with JupyterLab 4.6, ipywidgets 8.1, Bokeh 3.9):
``pn.extension(inline=True)`` stores ~3 MB of JavaScript twice per notebook (6 MB for one chart),
and its charts, like every widget view, need a live kernel or a renderer JupyterLab only runs in a
trusted notebook. Here a chart is one cell output holding the Bokeh document as JSON
(:func:`bokeh.embed.json_item` of :func:`holoviews.render`) and a few lines of JavaScript that
embed it; BokehJS itself (the ``bokeh`` component only, ~1.3 MB) is written once per notebook by
:class:`BokehJS` in an early cell. The same outputs draw in JupyterLab (no kernel needed) and in
``jupyter nbconvert --to html`` pages.

Each output is a MIME bundle: ``application/javascript`` (the chart), ``text/html`` (what a
viewer that runs no script shows: JupyterLab with an untrusted notebook, GitHub) and
``text/plain``. JupyterLab runs the script only for a trusted notebook;
:mod:`workbench.postmortem.outputs` signs the notebooks ``workbench run`` writes, for the
user who ran it.

Data strings inside the chart JSON (service names, event summaries in hover text) are drawn on a
canvas or escaped by Bokeh's tooltips; the JSON itself is written with ``<``, ``>`` and ``&``
escaped, so a string like ``</script>`` cannot end the ``<script>`` element nbconvert wraps it in.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from .safe import Markup, escape

#: What a viewer that runs no script shows instead of a chart.
NO_SCRIPT = ("Chart not drawn: this viewer runs no scripts, or JupyterLab does not trust the notebook. "
             "`workbench run` marks the notebooks it writes as trusted for the user who ran it; elsewhere "
             "run `jupyter trust NOTEBOOK`, or open the incident's report.html.")


def bokeh_version() -> str:
    import bokeh

    return bokeh.__version__


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element and a JavaScript string context
    (``<``, ``>``, ``&`` as ``\\u003c`` …; non-ASCII escaped, U+2028/2029 included)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _note(text: str) -> str:
    return f'<div class="wb-nochart" style="color:#57606a;font-size:12px">{escape(text)}</div>'


class BokehJS:
    """BokehJS, inline, for every chart of the notebook (display it once, before the first chart).

    The script defines ``window.Bokeh`` unless this Bokeh version is already loaded on the page
    (JupyterLab keeps one page for every open notebook).
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from bokeh.resources import Resources

        version = bokeh_version()
        code = "".join(Resources(mode="inline", components=["bokeh"]).js_raw)
        # Bokeh's bundle starts with 'use strict' and sets `this.Bokeh`: run it as a function
        # called on window (JupyterLab evaluates outputs inside a function of its own).
        js = (f"(function () {{\nif (window.Bokeh && window.Bokeh[{script_json(version)}]) {{ return; }}\n"
              f"{code}\n}}).call(window);\n"
              f"element.textContent = {script_json(f'BokehJS {version} loaded (inline) for the charts below.')};\n"
              "element.style.cssText = 'color:#57606a;font-size:12px';\n")
        return {"application/javascript": js,
                "text/html": _note(f"BokehJS {version} (inline, once per notebook) is loaded here for the charts "
                                   f"below when scripts run."),
                "text/plain": f"BokehJS {version}, inline, for the charts of this notebook"}

    def __repr__(self) -> str:
        return f"BokehJS({bokeh_version()})"


class Charts:
    """HoloViews elements (or Bokeh models) shown as one notebook output.

    Parameters
    ----------
    charts : sequence
        HoloViews elements (rendered with the Bokeh backend) or Bokeh models.
    title : str, optional
        Shown as text where no chart can be drawn, and in ``text/plain``.
    columns : int
        Charts per row (they wrap when the output is narrower).
    note : str, optional
        Plain text shown instead of the charts where no script runs (default :data:`NO_SCRIPT`).

    Attributes
    ----------
    items : list of dict
        ``bokeh.embed.json_item`` of each chart (what the output embeds).
    """

    def __init__(self, charts: Sequence[Any], title: str = "", columns: int = 1, note: str | None = None, *,
                 before: Markup | None = None, after: Markup | None = None, text_rows: Sequence[str] = ()):
        for name, part in (("before", before), ("after", after)):
            if part is not None and not isinstance(part, Markup):
                raise TypeError(f"Charts({name}=...) takes Markup built by workbench.reports.safe, "
                                f"got {type(part).__name__}")
        self.title = str(title)
        self.columns = max(1, int(columns))
        self.note = NO_SCRIPT if note is None else str(note)
        self.before, self.after = before or Markup(""), after or Markup("")
        self.text_rows = [str(r) for r in text_rows]
        self.items = [_json_item(c) for c in charts]

    def __len__(self) -> int:
        return len(self.items)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        plain = "\n".join([f"{self.title}: {len(self.items)} chart(s)" if self.title else f"{len(self.items)} chart(s)",
                           *self.text_rows])
        if not self.items:
            return {"text/html": str(self.before + self.after), "text/plain": plain}
        note = Markup(_note(f"{self.title} — {self.note}" if self.title else self.note))
        return {"application/javascript": embed_script(self.items, bokeh_version(), self.columns, self.before,
                                                       self.after),
                "text/html": str(self.before + note + self.after),
                "text/plain": plain}

    def __repr__(self) -> str:
        return f"Charts({self.title!r}, {len(self.items)} chart(s))"


def embed_script(items: Sequence[dict[str, Any]], version: str, columns: int = 1, before: Markup = Markup(""),
                 after: Markup = Markup("")) -> str:
    """JavaScript that draws ``items`` (``json_item`` dicts) into the output's ``element``, between
    the escaped HTML ``before`` and ``after`` (the chapter's note and table).

    It waits for BokehJS (loaded by the :class:`BokehJS` output of an earlier cell) and for the
    output to be attached to the page: JupyterLab renders outputs before it inserts them, and
    Bokeh refuses to draw into a detached element. After a minute without BokehJS it says so.
    """
    basis = f"calc({100 / columns:.4f}% - 8px)"
    return (
        "(function () {\n"
        f"var items = {script_json(list(items))};\n"
        f"var version = {script_json(version)};\n"
        "var host = element; host.textContent = '';\n"
        f"var head = document.createElement('div'); head.innerHTML = {script_json(str(before))}; host.appendChild(head);\n"
        "var box = document.createElement('div');\n"
        "box.style.cssText = 'display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start';\n"
        "host.appendChild(box);\n"
        f"var tail = document.createElement('div'); tail.innerHTML = {script_json(str(after))}; host.appendChild(tail);\n"
        "var slots = items.map(function () { var d = document.createElement('div'); d.className = 'wb-chart';\n"
        f"  d.style.cssText = 'flex:0 1 {basis};min-width:0'; box.appendChild(d); return d; }});\n"
        "var t0 = Date.now();\n"
        "(function draw() {\n"
        "  var B = window.Bokeh && (window.Bokeh[version] || window.Bokeh);\n"
        "  if (B && B.embed && host.isConnected) {\n"
        "    items.forEach(function (item, i) { B.embed.embed_item(item, slots[i]); });\n"
        "  } else if (Date.now() - t0 < 60000) {\n"
        "    setTimeout(draw, Date.now() - t0 < 5000 ? 50 : 500);\n"
        "  } else if (!B) {\n"
        "    box.textContent = 'BokehJS is not loaded: run the charts set-up cell near the top of the notebook.';\n"
        "  }\n"
        "})();\n"
        "})();\n")


def _json_item(chart: Any) -> dict[str, Any]:
    from bokeh.embed import json_item
    from bokeh.model import Model

    if not isinstance(chart, Model):
        import holoviews as hv

        chart = hv.render(chart, backend="bokeh")
    return json_item(chart)


class HTML:
    """Escaped HTML (:class:`~workbench.reports.safe.Markup`) with a plain-text form, as one output.

    ``text/html`` for every viewer, ``text/plain`` for terminals and tests.
    """

    def __init__(self, markup: Markup, text: str = ""):
        if not isinstance(markup, Markup):
            raise TypeError(f"embed.HTML takes Markup built by workbench.reports.safe, got {type(markup).__name__}")
        self.markup = markup
        self.text = str(text)

    def _repr_html_(self) -> str:
        return str(self.markup)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/html": str(self.markup), "text/plain": self.text}

    def __repr__(self) -> str:
        return self.text or "HTML(…)"
