# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the restore modules (pitr_restore, dump_restore, restore_verify) share: their options, the context a
restore runs in (who the server runs as, where its binaries are, how to reach it), installing the WAL restore
program, and verifying a restored copy against a reference in one call.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import sys
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._look import MAX_CONNECT_TIMEOUT
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, query
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import connection_settings, find_pg_tool
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import verify
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import program

DEFAULT_RESTORE_ROOT = '/srv/dbfleet-restore'
WAL_RESTORE_PROGRAM = '/opt/dbfleet/bin/dbfleet-wal-restore'
DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
_MAJOR_RE = re.compile(r'^(\d+)')


def verify_argument_spec():
    """The ``verify`` option: content verification of the restored copy, before it is thrown away."""
    return dict(type='dict', options=dict(
        databases=dict(type='list', elements='str'),
        reference=dict(type='dict'),
        amcheck=dict(type='bool', default=True),
        heapallindexed=dict(type='bool', default=False),
        schema=dict(type='bool', default=True),
    ))


def restore_argument_spec():
    """Options every restore module takes besides the connection options."""
    return dict(
        run_as=dict(type='str', default='postgres'),
        pg_bin=dict(type='path'),
        restore_root=dict(type='path', default=DEFAULT_RESTORE_ROOT),
        port=dict(type='int', default=0),
        keep=dict(type='bool', default=False),
        connect_timeout=dict(type='int', default=10),
        timeout=dict(type='int', default=3600),
        verify=verify_argument_spec(),
        fail_on_mismatch=dict(type='bool', default=True),
    )


class Context:
    """One restore: the module, its options, the OS user (``identity``), the live server's connection."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.run_as = self.params['run_as']
        try:
            self.identity = _desired.ids(self.run_as)
        except KeyError:
            module.fail_json(msg='run_as=%s: no such user on this host' % self.run_as)
        self.connection = connection_settings(self.params)
        self.password = self.params.get('login_password')
        self.connect_timeout = self.params['connect_timeout']
        if not 1 <= self.connect_timeout <= MAX_CONNECT_TIMEOUT:
            module.fail_json(msg='connect_timeout must be from 1 to %d seconds, got %d' % (MAX_CONNECT_TIMEOUT, self.connect_timeout))
        self.superuser = self.params.get('login_user') or self.run_as
        self.interpreter = sys.executable
        self.warnings, self.notes = [], []
        self.live = None
        self.bin_dir = None
        self.instance = None
        self.program = None

    def find_bin_dir(self, major):
        """The PostgreSQL ``major`` server binaries: ``pg_bin``, then Debian's and PGDG's places, then PATH."""
        explicit = self.params.get('pg_bin')
        candidates = [explicit] if explicit else ['/usr/lib/postgresql/%s/bin' % major, '/usr/pgsql-%s/bin' % major]
        found = find_pg_tool('postgres')
        if not explicit and found:
            candidates.append(os.path.dirname(found))
        for directory in candidates:
            if directory and os.access(os.path.join(directory, 'postgres'), os.X_OK):
                return directory
        self.module.fail_json(msg='the PostgreSQL %s server binaries (postgres, pg_ctl, pg_verifybackup) are not in %s: '
                                  'install the server package or set pg_bin' % (major, ' or '.join(c for c in candidates if c)))
        return None

    def databases(self, connection):
        """The databases of a server that accept connections (templates left out)."""
        rows = query(self.module, connection, DATABASES_SQL, run_as=self.run_as, password=self.password,
                     connect_timeout=self.connect_timeout)
        return [row['datname'] for row in rows]


def major_of(version):
    """``15`` from ``"15.18 (Debian 15.18-0+deb12u1)"``; None when there is no number."""
    match = _MAJOR_RE.match(str(version or ''))
    return int(match.group(1)) if match else None


def program_items(program_path):
    """The desired state of the WAL restore program: its directory and the one file, root-owned 0755."""
    return [_desired.DesiredDir(os.path.dirname(program_path), mode=0o755),
            _desired.DesiredFile(program_path, program.build_program('dbfleet-wal-restore', sys.executable), mode=0o755,
                                 shown=False)]


def verify_copy(ctx, connection, options, table_map=None, schema_map=None, skip_unlogged=False,
                checksums_must_match=True, amcheck_install=True, database_map=None, schema_must_match=True):
    """Scan the restored copy at ``connection`` and compare it with ``options['reference']`` (when given).

    ``database_map``: ``{restored database: reference database}`` (a scratch database). Returns ``{verdict, problems,
    databases: {reference database: comparison or scan summary}, seconds}``; ``verdict`` is ``verified`` (equal to
    the reference), ``failed`` or ``scanned`` (no reference to compare with).
    """
    database_map = database_map or {}
    reference = dict((restored, ((options.get('reference') or {}).get('databases') or {}).get(original))
                     for restored, original in database_map.items())
    reference.update((db, data) for db, data in ((options.get('reference') or {}).get('databases') or {}).items()
                     if db not in database_map.values())
    reference = dict((db, data) for db, data in reference.items() if data is not None)
    started = time.monotonic()
    try:
        databases = options.get('databases') or (sorted(reference) if reference else ctx.databases(connection))
        tables = None
        if table_map:
            tables = dict((db, table_map) for db in databases)
        reply = verify.scan(connection, databases, run_as=ctx.run_as, password=ctx.password, tables=tables, reference=reference,
                            schema=options.get('schema', True), amcheck=options.get('amcheck', True),
                            amcheck_install=amcheck_install, heapallindexed=options.get('heapallindexed', False))
    except (verify.VerifyError, PgQueryError) as exc:
        return dict(verdict='failed', problems=['the restored copy could not be verified: %s' % exc], databases={})
    out, problems = {}, []
    for db in databases:
        shown = database_map.get(db, db)
        got = reply['databases'].get(db) or {'error': 'not scanned'}
        if got.get('error'):
            problems.append('%s: %s' % (shown, got['error']))
            out[shown] = dict(error=got['error'])
            continue
        if db not in reference:
            if reference:
                problems.append('%s: not in the reference' % shown)
            tables = dict((name, dict(rows=t['rows'], sha256=t['sha256'])) for name, t in got['tables'].items())
            out[shown] = dict(tables=tables, amcheck=got.get('amcheck'))
            if not verify.amcheck_ok(got.get('amcheck')):
                alone = dict(problems=[], missing_tables=[], tables={}, schema=dict(equal=True), amcheck=got.get('amcheck'))
                problems.extend(verify.verdict_problems(shown, alone))
            continue
        comparison = verify.compare_database(reference[db], got, table_map, schema_map, skip_unlogged)
        problems.extend(verify.verdict_problems(shown, comparison, checksums_must_match, schema_must_match))
        out[shown] = comparison
    verdict = 'failed' if problems else ('verified' if reference else 'scanned')
    return dict(verdict=verdict, problems=problems, databases=out, point=reply.get('point'),
                seconds=round(time.monotonic() - started, 3))
