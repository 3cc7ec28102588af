"""ipywidgets layer of the workbench (importable as ``workbench.widgets``); filled by the notebook issue."""
