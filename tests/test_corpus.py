"""The hostile-input corpus (tests/corpus, issue 13): every malformed incident document is refused by
`workbench incident import` with one line naming the file, and the knowledge base is left as it was."""
from __future__ import annotations

import re
import time

import pytest

from conftest import CORPUS
from workbench.cli import main

DOCUMENTS = sorted((CORPUS / "documents").glob("*.yaml"))


def test_the_corpus_is_there():
    assert len(DOCUMENTS) >= 12


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.stem for p in DOCUMENTS])
def test_a_malformed_document_is_one_line_naming_the_file_and_changes_nothing(workspace, path, capsys):
    expect = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    with workspace.knowledge_base() as kb:
        kb.create_incident(title="Already here", started="2026-11-01T00:00:00Z", services=["a"], who="test")
        before = ([i.to_dict() for i in kb.list_incidents()], len(kb.history()))
    t0 = time.perf_counter()
    assert main(["incident", "import", str(path), "-w", str(workspace.root)]) == 2
    assert time.perf_counter() - t0 < 5  # never a hang (an alias bomb ran for minutes)
    err = capsys.readouterr().err
    assert err.startswith(f"workbench: error: {path}") and err.count("\n") == 1, err[:300]
    assert re.search(expect, err), (expect, err[:300])
    assert len(err) < 2000  # a 100,000-character title is not echoed back whole
    with workspace.knowledge_base() as kb:
        assert ([i.to_dict() for i in kb.list_incidents()], len(kb.history())) == before
