"""The IdP matrix's bookkeeping (tests/support/matrix.py): every persona of the test IdP has a row, and the page's
generated part is found, replaced and read back exactly."""
from __future__ import annotations

from tests.support.matrix import BEGIN, DOC, END, EXPECT, PERSONAS, Result, documented_table, render_table, splice
from tests.support.personas import PERSONAS as KNOWN


def test_every_persona_has_a_row_and_every_row_a_persona():
    assert set(KNOWN) <= set(PERSONAS)
    for row, expect in EXPECT.items():
        assert (expect.persona or row) in KNOWN, row
        assert row == (expect.persona or row) or row.startswith((expect.persona or row) + "+"), row


def test_the_table_replaces_only_the_generated_part():
    page = f"intro\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    table = render_table([Result("default", preset="oidc", browser="ok", notes="a | b")])
    new = splice(page, table)
    assert new.startswith("intro\n\n") and new.endswith(f"{END}\n\nafter\n") and "old table" not in new
    assert documented_table(new) == table and "a \\| b" in table
    assert splice(new, table) == new


def test_the_page_has_the_markers():
    text = DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)
