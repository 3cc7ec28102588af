"""Panel reports of the workbench (importable as ``workbench.reports``); filled by the reports issue."""
