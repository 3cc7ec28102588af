"""Reading YAML the workbench is given: incident documents, manifests, option values.

One loader for every YAML the workbench reads, stricter than ``yaml.safe_load`` where a document
could hurt or mislead:

- anchors and aliases are refused (incident documents and manifests never need them, and nested
  aliases expand a few hundred bytes into gigabytes: the "billion laughs");
- a key given twice in one mapping is an error naming both lines (``safe_load`` keeps the last
  silently: a manifest with ``metrics:`` twice would skip a file);
- the text is capped (:data:`MAX_BYTES`) and so is the nesting depth (:data:`MAX_DEPTH`);
- a syntax error is one line naming the source, the line and the column.

libyaml's parser is used when PyYAML was built with it (the same documents, about ten times faster).
"""
from __future__ import annotations

from typing import Any

import yaml

from .errors import WorkbenchError

#: Largest YAML text read (bytes of UTF-8).
MAX_BYTES = 8 * 1024 * 1024
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[misc, valid-type]
    """The safe loader, refusing a key that is given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first at line {seen[key]})", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: the base constructor names it
                continue
        return super().construct_mapping(node, deep=deep)


def load(text: str | bytes, source: str, error: type[Exception] = WorkbenchError, *, max_bytes: int = MAX_BYTES,
         max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` as one YAML document with the rules of the module docstring.

    Parameters
    ----------
    text : str or bytes
        The YAML (bytes are decoded as UTF-8).
    source : str
        Named in every error (a file path, ``--parameter note``).
    error : exception class
        Raised for every problem, with a one-line message that starts with ``source``.

    Raises
    ------
    error
        Too large, too deep, an anchor or alias, a duplicate key, or malformed YAML.
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise error(f"{source}: {size:,} bytes of YAML; at most {max_bytes:,} are read")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_BASE):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                what = "an alias (*name)" if isinstance(event, yaml.AliasEvent) else "an anchor (&name)"
                raise error(f"{source}: line {event.start_mark.line + 1}, column {event.start_mark.column + 1}: "
                            f"{what}: anchors and aliases are not accepted; write the value out")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise error(f"{source}: line {event.start_mark.line + 1}: nested deeper than {max_depth} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "not valid YAML").split())
        raise error(f"{source}: malformed YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: malformed YAML: {' '.join(str(exc).split())}") from None
