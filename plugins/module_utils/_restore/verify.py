# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content verification: scan a server's databases (``contentscan`` in a child, as the OS user that may connect)
and compare a restored copy with a reference taken at the target.

Row counts are the fast first gate; equal per-table SHA-256 over a deterministic order is the proof; the schema
is compared as normalised lines; amcheck's ``bt_index_check`` looks at every btree index of the restored copy.
:func:`compare_database` is pure and decides nothing by itself beyond "equal or not": the callers say what a
difference means (a point-in-time restore must match; a nightly dump is expected to be older than the reference).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import json
import os
import subprocess
import sys

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _pgquery
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import PgError, as_user
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import contentscan

UNLOGGED_NOTE = 'unlogged table: its rows never reach WAL, so a point-in-time restore brings it back empty'


class VerifyError(Exception):
    """The scan could not run (no psycopg, no connection); the message says what to do."""


def scan(connection, databases, run_as=None, password=None, tables=None, reference=None, schema=True, amcheck=False,
         amcheck_install=False, heapallindexed=False, timeout=6 * 3600):
    """Scan ``databases`` on the server of ``connection`` (``_postgres.connection_settings`` shape).

    ``tables``: ``{db: {"schema.table": "reference schema.table"}}`` to scan only those; ``reference``: a previous
    scan (its ``databases``), whose sort orders are reused. Returns the child's reply: ``point`` (time, lsn) and
    ``databases`` ``{db: {tables, schema, amcheck, lsn, snapshot_at, error?}}``.
    """
    info = _pgquery.conninfo(connection, password, read_only=not amcheck_install, statement_timeout_ms=0,
                             appname='dbfleet-verify')
    info.pop('dbname', None)
    request = dict(conninfo=info, databases=list(databases), tables=tables,
                   reference=dict((db, (data or {}).get('tables')) for db, data in (reference or {}).items()),
                   schema=schema, amcheck=amcheck, amcheck_install=amcheck_install, heapallindexed=heapallindexed)
    source = inspect.getsource(contentscan) + '\nsys.exit(main())\n'
    try:
        argv = as_user([sys.executable, '-I', '-c', source], run_as)
    except PgError as exc:
        raise VerifyError(str(exc))
    try:
        proc = subprocess.run(argv, input=json.dumps(request).encode('utf-8'), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, cwd='/', check=False, env=_clean_env())
    except subprocess.TimeoutExpired:
        raise VerifyError('verifying %s took longer than %d seconds and was stopped' % (', '.join(databases), timeout))
    try:
        reply = json.loads(proc.stdout.decode('utf-8', 'replace') or '{}')
    except ValueError:
        reply = {}
    if proc.returncode == 3 or reply.get('stage') == 'import':
        raise VerifyError('psycopg 3 is missing on this host: %s' % _pgquery.PSYCOPG_HINT)
    if proc.returncode != 0 or 'databases' not in reply:
        raise VerifyError('the content scan of %s failed (exit %d): %s' % (
            _pgquery.describe_target(connection, run_as), proc.returncode,
            proc.stderr.decode('utf-8', 'replace').strip()[-2000:] or reply.get('error') or 'no output'))
    return reply


def _clean_env():
    """The environment without inherited PG* variables: the request says where to connect."""
    return dict((key, value) for key, value in os.environ.items() if not key.startswith('PG'))


def _schema_lines(lines, schema_map, names):
    """The schema lines of a scan, with restored schema names mapped back; with ``names`` (``schema.table`` as in
    that scan), only the lines of those tables, foreign keys left out (a partial restore never brings them)."""
    kept = set()
    tables = set(tuple(name.split('.', 1)) for name in names) if names is not None else None
    for line in lines or []:
        if tables is not None and (line[0] == 'extension' or (line[1], line[2]) not in tables
                                   or (line[0] == 'constraint' and line[4] == 'f')):
            continue
        kept.add(tuple([line[0], schema_map.get(line[1], line[1])] + list(line[2:])))
    return kept


def compare_database(reference, restored, table_map=None, schema_map=None, skip_unlogged=False):
    """Reference vs restored scan of one database (each ``{tables, schema, amcheck}``).

    ``table_map``: ``{"restored schema.table": "reference schema.table"}`` for a partial restore (only those are
    compared); ``schema_map``: ``{restored schema: reference schema}`` for its schema lines; ``skip_unlogged``:
    unlogged tables are expected empty (a point-in-time restore). Returns ``{equal, tables: {name: {reference,
    restored, equal, note}}, missing_tables, extra_tables, schema: {equal, missing, extra}, amcheck, problems}``.
    """
    schema_map = schema_map or {}
    ref_tables = reference.get('tables') or {}
    got_tables = restored.get('tables') or {}
    pairs = sorted(table_map.items(), key=lambda item: item[1]) if table_map else [(name, name) for name in sorted(ref_tables)]
    result = dict(tables={}, missing_tables=[], extra_tables=[], problems=[])
    for got_name, ref_name in pairs:
        ref, got = ref_tables.get(ref_name), got_tables.get(got_name)
        if ref is None:
            result['problems'].append('%s is not in the reference' % ref_name)
            continue
        entry = dict(reference=_digest(ref), restored=_digest(got), equal=None, note=None)
        if skip_unlogged and ref.get('persistence') == 'u':
            entry['note'] = UNLOGGED_NOTE
        elif got is None:
            result['missing_tables'].append(ref_name)
            entry['note'] = 'missing from the restored copy'
        else:
            entry['equal'] = (ref['rows'], ref['sha256']) == (got['rows'], got['sha256'])
            if not entry['equal']:
                entry['note'] = '%d rows restored, %d in the reference%s' % (
                    got['rows'], ref['rows'], '' if got['rows'] != ref['rows'] else ', same count but other content')
        result['tables'][ref_name] = entry
    if not table_map:
        result['extra_tables'] = sorted(set(got_tables) - set(ref_tables))
    ref_lines = _schema_lines(reference.get('schema'), {}, table_map.values() if table_map else None)
    got_lines = _schema_lines(restored.get('schema'), schema_map, table_map.keys() if table_map else None)
    compared = reference.get('schema') is not None and restored.get('schema') is not None
    result['schema'] = dict(compared=compared, equal=not compared or ref_lines == got_lines,
                            missing=[list(x) for x in sorted(ref_lines - got_lines)][:50] if compared else [],
                            extra=[list(x) for x in sorted(got_lines - ref_lines)][:50] if compared else [])
    result['amcheck'] = restored.get('amcheck')
    result['equal'] = (not result['missing_tables'] and not result['problems']
                       and all(t['equal'] is not False for t in result['tables'].values()) and result['schema']['equal'])
    return result


def _digest(scan_entry):
    if scan_entry is None:
        return None
    return dict(rows=scan_entry['rows'], sha256=scan_entry['sha256'])


def amcheck_ok(amcheck):
    """Whether an amcheck result found nothing wrong (skipped counts as not failed)."""
    return not amcheck or not amcheck.get('failed')


def verdict_problems(database, comparison, checksums_must_match=True, schema_must_match=True):
    """Sentences for what is wrong with a compared database (empty: verified).

    ``checksums_must_match`` False (a dump older than the reference): differing content and tables the copy lacks
    are reported in the comparison, not problems; ``schema_must_match`` False: a schema difference neither.
    """
    problems = ['%s: %s' % (database, text) for text in comparison['problems']]
    if comparison['missing_tables'] and checksums_must_match:
        problems.append('%s: tables missing from the restored copy: %s' % (database, ', '.join(comparison['missing_tables'])))
    differing = [name for name, entry in comparison['tables'].items() if entry['equal'] is False]
    if differing and checksums_must_match:
        problems.append('%s: content differs from the reference in %s' % (database, ', '.join(
            '%s (%s)' % (name, comparison['tables'][name]['note']) for name in differing)))
    if not comparison['schema']['equal'] and schema_must_match:
        problems.append('%s: the schema differs from the reference (%d line(s) missing, %d extra), e.g. %s' % (
            database, len(comparison['schema']['missing']), len(comparison['schema']['extra']),
            (comparison['schema']['missing'] + comparison['schema']['extra'])[0]))
    if not amcheck_ok(comparison['amcheck']):
        problems.append('%s: amcheck found broken indexes: %s' % (database, '; '.join(
            '%s: %s' % (item['index'], item['error']) for item in comparison['amcheck']['failed'])))
    return problems
