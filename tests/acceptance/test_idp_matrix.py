"""The IdP conformance matrix (issue 10): every persona of the test IdP through the real tipd and tipctl,
moto and the Identity Center fake; the scenario is in tests/support/matrix.py.

All personas run at once (a module fixture, one thread each: own IdP process, own home, own tipd); then one
test per persona asserts its result, so each persona reports on its own, and one test checks that
docs/idp-matrix.md shows what this run saw. After a change that alters the table:

    TIPD_WRITE_MATRIX=1 .venv/bin/python -m pytest tests/acceptance/test_idp_matrix.py

TIPD_MATRIX=okta,entra runs only those rows (the docs check is skipped then); so does `-k okta` without the
docs check.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.support.matrix import DOC, PERSONAS, documented_table, render_table, run_matrix, selected, splice

pytestmark = pytest.mark.acceptance


def _wanted(request) -> tuple[str, ...]:
    """The rows this session's selected tests need: all of them for the page check, else those asked for
    (`-k okta` runs the okta rows only)."""
    mine = [item for item in request.session.items if item.module is request.module]
    if any(item.originalname == "test_docs_page_shows_this_run" for item in mine):
        return selected()
    asked = {item.callspec.params["persona"] for item in mine if hasattr(item, "callspec")}
    return tuple(n for n in selected() if n in asked)


@pytest.fixture(scope="module")
def matrix(request, fake):
    started = time.monotonic()
    results = run_matrix(fake, _wanted(request))
    seconds = time.monotonic() - started
    print(f"\nIdP matrix: {len(results)} personas in {seconds:.1f} s wall time "
          f"({', '.join(f'{n} {r.seconds:.0f} s' for n, r in results.items())})")
    return results


@pytest.mark.timeout(900)  # the first one waits for the whole matrix (the module fixture)
@pytest.mark.parametrize("persona", PERSONAS)
def test_persona(matrix, persona):
    if persona not in matrix:
        pytest.skip(f"TIPD_MATRIX leaves {persona} out")  # (or -k did, but then this test is not selected)
    r = matrix[persona]
    if r.skipped:
        pytest.skip(f"{persona}: {r.skipped}")
    assert r.passed, f"{persona}: {r.failure}\n\n" + "\n".join(r.log)


@pytest.mark.timeout(900)
def test_docs_page_shows_this_run(matrix):
    if tuple(matrix) != PERSONAS:
        pytest.skip("TIPD_MATRIX runs a subset: the page shows every persona")
    table = render_table(list(matrix.values()))
    page = DOC.read_text()
    if os.environ.get("TIPD_WRITE_MATRIX") == "1":
        DOC.write_text(splice(page, table))
        page = DOC.read_text()
    assert documented_table(page) == table, (
        f"{DOC} does not show what the matrix saw; regenerate it with "
        "`TIPD_WRITE_MATRIX=1 .venv/bin/python -m pytest tests/acceptance/test_idp_matrix.py`\n\n" + table)
