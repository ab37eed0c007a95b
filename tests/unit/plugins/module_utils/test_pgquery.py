# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_pgquery's query process, where it needs no server: a host without psycopg 3 is told what to install."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _pgquery


def test_a_host_without_psycopg_is_told_which_package_to_install(monkeypatch):
    # The real child program, in a Python where `import psycopg` fails as it does where the package is missing.
    monkeypatch.setattr(_pgquery, '_CHILD', 'import sys\nsys.modules["psycopg"] = None\n' + _pgquery._CHILD)
    with pytest.raises(_pgquery.PgQueryError) as caught:
        _pgquery.Session(None, dict(host=None, port=5432, user=None, dbname='postgres'))
    assert caught.value.stage == 'import'
    assert 'psycopg 3 is missing on this host' in str(caught.value) and 'python3-psycopg' in str(caught.value)
