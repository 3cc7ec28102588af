"""Notebook templates and their parameters: which templates there are, what they declare, and
whether given values may be passed to one, checked before any kernel starts.

:mod:`workbench.postmortem.runner` runs templates; this module only reads them (plain JSON, so checking
works without the ``notebook`` extra). Why the parameter rules are strict is in
:mod:`workbench.postmortem.runner`'s "Guarantees".
"""
from __future__ import annotations

import ast
import difflib
import keyword
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import NotebookError, TemplateParameterError, UnknownNameError
from ..formats import aware_time
from ..signals.detect import detectors
from .notebooks import cell_source, read_notebook

__all__ = ["ALLOWED_TYPES", "AUTO_PARAMETERS", "MAX_DEPTH", "PARAMETERS_TAG", "TEMPLATES_DIR", "lint_template",
           "run_values", "template_parameters", "template_path", "templates", "validate_parameters"]

#: Folder of the bundled templates: ``workbench/templates`` in an installed wheel (pyproject maps
#: ``notebooks/templates`` there), ``notebooks/templates`` of the checkout otherwise (editable).
_PACKAGE = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = next((p for p in (_PACKAGE / "templates", _PACKAGE.parent / "notebooks" / "templates") if p.is_dir()),
                     _PACKAGE.parent / "notebooks" / "templates")
#: Parameters :func:`workbench.postmortem.runner.run` sets itself; every template declares them.
AUTO_PARAMETERS = ("incident_id", "workspace")
#: Tag of the one cell that declares a template's parameters (papermill's convention).
PARAMETERS_TAG = "parameters"
#: What a parameter value may be made of.
ALLOWED_TYPES = "str, int, float (finite), bool, None, list, dict with str keys"
#: Nesting deeper than this is refused (and a list that contains itself stops here).
MAX_DEPTH = 64
#: Where the parameters cell's metadata declares each parameter's kind and range:
#: ``{"workbench": {"parameters": {"baseline_hours": {"type": "number", "min": 0.25, "max": 720}}}}``.
#: Types: ``text`` (``max_length``), ``time`` (ISO 8601 with a zone), ``number`` and ``integer``
#: (``min``/``max``, inclusive), ``detector`` (a registered detector name); ``"nullable": true``
#: also accepts None.
RULE_TYPES = ("text", "time", "number", "integer", "detector")
#: Longest text parameter unless a rule says otherwise.
MAX_TEXT = 10_000
#: Python refuses to turn longer ints into text (sys.int_info.default_max_str_digits is 4300).
_MAX_INT_BITS = 13_000
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]+")


# --------------------------------------------------------------------------- templates

def templates() -> list[str]:
    """Names of the bundled templates (``postmortem``, ``recurrence`` ...)."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.ipynb"))


def template_path(template: str | os.PathLike[str]) -> Path:
    """The notebook of ``template``: a bundled template's name, or the path of an ``.ipynb`` file.

    Raises
    ------
    UnknownNameError
        No bundled template has that name (the message suggests close names).
    TemplateParameterError
        A path that is not an existing ``.ipynb`` file.
    """
    text = os.fspath(template)
    if isinstance(template, os.PathLike) or text.endswith(".ipynb") or os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if path.suffix != ".ipynb" or not path.is_file():
            raise TemplateParameterError(f"template {text!r}: expected an existing .ipynb file")
        return path.resolve()
    path = TEMPLATES_DIR / f"{text}.ipynb"
    if not _TEMPLATE_NAME.fullmatch(text) or not path.is_file():
        raise UnknownNameError("template", text, templates(), where=str(TEMPLATES_DIR))
    return path


def template_parameters(template: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters a template declares, with their defaults, in order.

    The template must have exactly one code cell tagged ``parameters`` holding only simple
    assignments of literal values (``name = "text"``, ``name: int = 24``, comments allowed).

    Raises
    ------
    TemplateParameterError
        The template is not a notebook, has no or several parameters cells, or the cell holds
        anything but ``name = literal`` lines (the message names the line).
    """
    path = template_path(template)
    index, source = _parameters_cell(_read_template(path), path)
    where = f"{path.name}, cell {index} (tagged {PARAMETERS_TAG!r})"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TemplateParameterError(f"{where}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    out: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, value = stmt.target.id, stmt.value
        else:
            raise TemplateParameterError(f"{where}, line {stmt.lineno}: expected only `name = literal` "
                                         f"assignments, got {ast.unparse(stmt)[:80]!r}")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise TemplateParameterError(f"{where}, line {stmt.lineno}: the default of {name!r} must be a literal "
                                         f"(text, number, True/False/None, list, dict), got "
                                         f"{ast.unparse(value)[:80]!r}") from None
    return out


def validate_parameters(template: str | os.PathLike[str], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` against the template; return a copy that is safe to hand to papermill.

    Parameters
    ----------
    template : str or path
        A bundled template's name or a notebook path.
    params : mapping or None
        Parameter name -> value.

    Returns
    -------
    dict
        The parameters, containers copied.

    Raises
    ------
    TemplateParameterError
        A name that is not an identifier or is a keyword (papermill pastes names into code), a
        name the template does not declare (with the declared ones and the closest match), or a
        value that is not made of :data:`ALLOWED_TYPES` (naming the key path, e.g.
        ``filters['services'][2]``), a NaN/infinite float, or a string with a lone surrogate.
    """
    declared = template_parameters(template)
    rules = parameter_rules(template)
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TemplateParameterError(f"parameters: expected a mapping of name to value, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        if type(name) is not str or not name.isidentifier() or keyword.iskeyword(name):
            raise TemplateParameterError(
                f"parameter name {name!r} is not allowed: names must be Python identifiers that are not keywords "
                f"(papermill writes them into the notebook's code as they are)")
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise TemplateParameterError(f"parameter {name!r} is not declared by template "
                                         f"{template_path(template).name} (declared: {', '.join(declared) or 'none'})"
                                         f"{hint}")
        out[name] = _check_rule(name, _check_value(value, name, 0), rules.get(name))
    return out


def parameter_rules(template: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Each parameter's declared kind and range (see :data:`RULE_TYPES`), from the parameters cell's
    metadata; a parameter without a rule is only checked for its value types."""
    path = template_path(template)
    nb = _read_template(path)
    index, _ = _parameters_cell(nb, path)
    rules = nb["cells"][index].get("metadata", {}).get("workbench", {}).get("parameters", {})
    if not isinstance(rules, dict) or not all(isinstance(r, dict) and r.get("type") in RULE_TYPES
                                              for r in rules.values()):
        raise TemplateParameterError(f"{path.name}, cell {index}: metadata workbench.parameters must map each name "
                                     f"to a rule with a type among {', '.join(RULE_TYPES)}")
    return rules


def _check_rule(name: str, value: Any, rule: Mapping[str, Any] | None) -> Any:
    """``value`` if it fits ``rule``, else :class:`TemplateParameterError` naming the parameter."""
    if rule is None or (value is None and rule.get("nullable")):
        return value
    kind = rule["type"]

    def refuse(expected: str) -> TemplateParameterError:
        return TemplateParameterError(f"parameter {name!r}: expected {expected}, got {value!r:.80}")

    if kind in ("number", "integer"):
        numeric = (int,) if kind == "integer" else (int, float)
        if type(value) not in numeric:
            raise refuse("an integer" if kind == "integer" else "a number")
        lo, hi = rule.get("min"), rule.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise refuse(f"a {kind} from {lo} to {hi}")
        return value
    if type(value) is not str:
        raise refuse("text" if kind == "text" else f"a {kind} as text")
    if kind == "text":
        if len(value) > rule.get("max_length", MAX_TEXT):
            raise refuse(f"text of at most {rule.get('max_length', MAX_TEXT):,} characters")
    elif kind == "time":
        aware_time(value, f"parameter {name!r}", TemplateParameterError)
    elif kind == "detector":
        detectors.get(value)  # UnknownNameError with the registered names and a did-you-mean
    return value


def run_values(template: str | os.PathLike[str], params: Mapping[str, Any] | None, **auto: Any) -> dict[str, Any]:
    """The one check of a run's parameters: the template declares every parameter the runner sets
    (:data:`AUTO_PARAMETERS`), ``params`` pass :func:`validate_parameters` and do not set those
    themselves; returns ``params`` with ``auto`` (the runner's values, e.g. ``incident_id``) added.

    Raises
    ------
    TemplateParameterError
        Naming the parameter and what is wrong, before any kernel starts.
    """
    path = template_path(template)
    declared = template_parameters(path)
    missing = [p for p in AUTO_PARAMETERS if p not in declared]
    if missing:
        raise TemplateParameterError(f"template {path.name} does not declare {', '.join(missing)} in its parameters "
                                     f"cell; the runner sets them")
    given = validate_parameters(path, params)
    clash = [p for p in AUTO_PARAMETERS if p in given]
    if clash:
        raise TemplateParameterError(f"parameter {clash[0]!r} is set by the runner from its arguments; do not pass it")
    return {**given, **auto}


def lint_template(template: str | os.PathLike[str]) -> list[str]:
    """Problems of a template against the notebook rules (empty when it is fine).

    One ``parameters`` cell declaring ``incident_id`` and ``workspace``; no code cell defines a
    function or class or loops (``def``, ``class``, ``lambda``, ``for``, ``while``,
    comprehensions: if a cell needs one, the package is missing a function); no stored outputs or
    execution counts.
    """
    path = template_path(template)
    problems: list[str] = []
    try:
        declared = template_parameters(path)
    except TemplateParameterError as exc:
        return [str(exc)]
    problems += [f"the parameters cell does not declare {name!r}" for name in AUTO_PARAMETERS if name not in declared]
    try:
        rules = parameter_rules(path)
    except TemplateParameterError as exc:
        return problems + [str(exc)]
    problems += [f"parameter {name!r} has no rule in the parameters cell's metadata (workbench.parameters)"
                 for name in declared if name not in rules]
    problems += [f"parameter {name!r}: its default {declared[name]!r} breaks its own rule ({exc})"
                 for name in declared if name in rules for exc in _rule_problem(name, declared[name], rules[name])]
    banned = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.For, ast.AsyncFor, ast.While,
              ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    for i, cell in enumerate(_read_template(path)["cells"]):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i}: has stored outputs (clear them before committing)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: has an execution count (clear it before committing)")
        try:
            tree = ast.parse(cell_source(cell))
        except SyntaxError as exc:
            problems.append(f"cell {i}: not valid Python (line {exc.lineno}: {exc.msg})")
            continue
        found = sorted({type(n).__name__ for n in ast.walk(tree) if isinstance(n, banned)})
        if found:
            problems.append(f"cell {i}: contains {', '.join(found)}: move the logic into a package function")
    return problems


def _check_value(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TemplateParameterError(f"parameter {where}: nested deeper than {MAX_DEPTH} levels")
    kind = type(value)  # exact types: a subclass can change how papermill renders it into code
    if value is None or kind is bool:
        return value
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TemplateParameterError(f"parameter {where}: the text contains a lone surrogate, which is not "
                                         f"valid UTF-8 and cannot be saved in a notebook") from None
        return value
    if kind is int:
        if value.bit_length() > _MAX_INT_BITS:
            raise TemplateParameterError(f"parameter {where}: integer too large (at most about 3900 digits)")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise TemplateParameterError(f"parameter {where}: expected a finite float, got {value!r}")
        return value
    if kind is list:
        return [_check_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TemplateParameterError(f"parameter {where}: dict keys must be str, got {type(key).__name__} "
                                             f"key {key!r}")
            out[_check_value(key, f"{where} key {key!r}", depth + 1)] = _check_value(item, f"{where}[{key!r}]",
                                                                                   depth + 1)
        return out
    hint = {tuple: "; use a list", set: "; use a list", frozenset: "; use a list", bytes: "; decode it to str",
            bytearray: "; decode it to str"}.get(kind, "")
    if hasattr(value, "isoformat"):
        hint = "; pass an ISO 8601 string such as 2026-11-02T13:00:00Z"
    raise TemplateParameterError(f"parameter {where}: values of type {kind.__name__} are not allowed "
                                 f"(allowed: {ALLOWED_TYPES}){hint}")


def _rule_problem(name: str, value: Any, rule: Mapping[str, Any]) -> list[str]:
    try:
        _check_rule(name, value, rule)
    except (TemplateParameterError, UnknownNameError) as exc:
        return [str(exc)]
    return []


def _read_template(path: Path) -> dict[str, Any]:
    try:
        return read_notebook(path)
    except NotebookError as exc:  # a template that is no notebook is a template problem
        raise TemplateParameterError(str(exc)) from None


def _parameters_cell(nb: Mapping[str, Any], path: Path) -> tuple[int, str]:
    tagged = [i for i, c in enumerate(nb["cells"]) if PARAMETERS_TAG in (c.get("metadata", {}).get("tags") or [])]
    if len(tagged) != 1:
        raise TemplateParameterError(f"{path.name}: expected exactly one cell tagged {PARAMETERS_TAG!r}, found "
                                     f"{len(tagged)}" + (f" (cells {tagged})" if tagged else ""))
    cell = nb["cells"][tagged[0]]
    if cell.get("cell_type") != "code":
        raise TemplateParameterError(f"{path.name}: the cell tagged {PARAMETERS_TAG!r} (cell {tagged[0]}) is not "
                                     f"a code cell")
    return tagged[0], cell_source(cell)
