"""Every YAML the workbench reads goes through workbench.yamlio: an alias bomb, a duplicate key, a
too-deep or too-large document and a syntax error are each one clear error naming the file, fast,
and an import of such a document changes nothing."""
from __future__ import annotations

import time

import pytest

from workbench import yamlio
from workbench.cli import main
from workbench.errors import WorkbenchError

# Eight levels of nested aliases in an incident document's evidence: ~500 bytes that safe_load
# expands to 9^8 (43 million) strings.
BOMB = "id: INC-BOMB\ntitle: t\nstarted: 2026-11-02T14:00:00Z\nservices: [a]\nhypotheses:\n- service: a\n" \
       "  cause: change\n  summary: s\n  score: 0.5\n  evidence: &h [" \
       + "".join(f"&l{i} [" for i in range(8)) + "x" + ("]" * 8) + ", *l0, *l0]\n"


def test_an_alias_bomb_is_refused_at_once_naming_the_file():
    t0 = time.perf_counter()
    with pytest.raises(WorkbenchError, match=r"bomb\.yaml: line 10, column \d+: an anchor \(&name\)"):
        yamlio.load(BOMB, "bomb.yaml")
    assert time.perf_counter() - t0 < 1.0


def test_a_plain_alias_is_refused_too():
    with pytest.raises(WorkbenchError, match=r"an anchor|an alias"):
        yamlio.load("a: &x 1\nb: *x\n", "doc.yaml")


@pytest.mark.parametrize("text, message", [
    ("title: one\nseverity: SEV2\ntitle: two\n", r"doc\.yaml: .*line 3.*key 'title' is given twice \(first at line 1\)"),
    ("tables:\n  metrics: {path: a.csv}\n  metrics: {path: b.csv}\n", r"key 'metrics' is given twice"),
    ("{a: 1, a: 2}\n", r"key 'a' is given twice"),
    ("a: [1, 2\n", r"doc\.yaml: malformed YAML at line 2, column 1: "),
    ("- " * 70 + "x\n", r"doc\.yaml: line 1: nested deeper than 64 levels"),
])
def test_each_problem_is_one_line_naming_the_file(text, message):
    with pytest.raises(WorkbenchError, match=message) as exc:
        yamlio.load(text, "doc.yaml")
    assert "\n" not in str(exc.value)


def test_size_is_capped_before_parsing():
    with pytest.raises(WorkbenchError, match="at most 1,000 are read"):
        yamlio.load("a: " + "x" * 2000, "big.yaml", max_bytes=1000)


def test_plain_documents_load_as_safe_load_does():
    assert yamlio.load("a: 1\nb: [x, {c: 2026-11-02}]\n", "ok.yaml") == {"a": 1, "b": ["x", {"c": __import__("datetime").date(2026, 11, 2)}]}


def test_importing_a_bomb_or_a_duplicate_key_changes_nothing(workspace, tmp_path, capsys):
    bomb, dup = tmp_path / "bomb.yaml", tmp_path / "dup.yaml"
    bomb.write_text(BOMB, encoding="utf-8")
    dup.write_text("id: INC-DUP\ntitle: one\nstarted: 2026-11-02T14:00:00Z\nservices: [a]\ntitle: two\n",
                   encoding="utf-8")
    for path in (bomb, dup):
        assert main(["incident", "import", str(path), "-w", str(workspace.root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"workbench: error: {path}: ") and err.count("\n") == 1
    with workspace.knowledge_base() as kb:
        assert kb.list_incidents() == []
