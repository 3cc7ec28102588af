"""What ``workbench run`` does to an executed notebook so that it displays when opened, without a kernel.

Measured with JupyterLab 4.6, ipywidgets 8.1.9 and jupyterlab_widgets 3.0.17 (the findings behind
this module; upstream jupyterlab/jupyterlab#15361, jupyter-widgets/ipywidgets#3823 and #3888):

- A notebook executed by papermill is *untrusted* where it is opened: JupyterLab then uses only the
  renderers marked safe. The widget renderer is not, so a widget output falls back to its
  ``text/plain`` part, the Python repr (``VBox(children=(HTML(value=…``); scripts (every chart) do
  not run either.
- Trusted, a widget output still does not come back: without a kernel the widget manager never
  reads the saved state (``Loading widget...`` forever); with a fresh kernel it rebuilds the views
  without comms, dead controls that look live; without saved state it says "model not found".
  The renderer never falls back to another part of the bundle.

So, after papermill has written the notebook, the runner (:mod:`.runner`):

1. drops (:func:`static_outputs`) the widget view from each widget output that also carries a static ``text/html``
   rendering (the workbench's widgets do), and replaces a widget output that has none with a note
   saying the cell needs a kernel — never the repr; re-running the cell gives the live widget;
2. drops the saved widget state (``metadata.widgets``: hundreds of models nobody can restore);
3. signs (:func:`sign_file`) the notebook for the user who ran it (what ``jupyter trust`` does: a signature in that
   user's Jupyter data folder), so JupyterLab runs the notebook's own scripts, the charts. The
   outputs are the workbench's own HTML, whose data strings are escaped where they are built.
"""
from __future__ import annotations

import html
import os
import warnings
from typing import Any

#: Mimetype of a widget view in a cell output, and the notebook metadata key of the saved state.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_KEY = "widgets"
#: Shown (HTML and text) in place of a widget output that has no static rendering.
NEEDS_KERNEL = "Interactive widget: run this cell in JupyterLab (with a kernel) to use it."


def static_outputs(nb: Any) -> int:
    """Make every widget output of ``nb`` (an nbformat v4 notebook, changed in place) static;
    returns how many outputs were changed."""
    changed = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data")
            if not data or WIDGET_VIEW not in data:
                continue
            del data[WIDGET_VIEW]
            if "text/html" not in data:
                data["text/html"] = f'<div style="color:#57606a">{html.escape(NEEDS_KERNEL)}</div>'
                data["text/plain"] = NEEDS_KERNEL
            changed += 1
    nb.get("metadata", {}).pop(WIDGET_STATE_KEY, None)
    return changed


def sign(nb: Any) -> bool:
    """Mark ``nb`` (an nbformat notebook) as trusted for this user, what ``jupyter trust`` does;
    False, with a warning, when the signature store cannot be written (the notebook still opens,
    its charts then draw after ``jupyter trust``)."""
    try:
        from nbformat.sign import NotebookNotary

        NotebookNotary().sign(nb)
    except Exception as exc:  # noqa: BLE001 - a read-only data folder or a broken sqlite must not fail a run
        warnings.warn(f"could not mark the notebook as trusted ({type(exc).__name__}: {exc}); its charts draw "
                      f"after `jupyter trust`", RuntimeWarning, stacklevel=2)
        return False
    return True


def sign_file(path: str | os.PathLike[str]) -> bool:
    """:func:`sign` the notebook at ``path`` as JupyterLab will read it (see :func:`sign`)."""
    import nbformat

    return sign(nbformat.read(str(path), as_version=4))
