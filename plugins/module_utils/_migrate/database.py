# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate's SQL: the version table, the advisory lock and who holds it, the steps that apply or revert a
migration (for ``_pgquery.Session``), and what a failed step means, in words.

The version table (``dbfleet.schema_migrations`` by default) has one row per applied migration:
version, name, checksum (SHA-256 of the file), applied_at, duration_seconds, non_transactional,
applied_by. A transactional migration and its row are one transaction: the database never has the one
without the other. A non-transactional one gets its row after its last statement succeeded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

TABLE_RE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]{0,62})\.([A-Za-z_][A-Za-z0-9_]{0,62})$')
COLUMNS = ('version', 'name', 'checksum', 'applied_at', 'duration_seconds', 'non_transactional')
LOCK_NOT_AVAILABLE = '55P03'
MAX_TIMEOUT_SECONDS = 2147483  # PostgreSQL's timeouts are int milliseconds


def parse_table(value):
    """``(schema, table)`` from ``schema.table`` (plain identifiers); ValueError in words otherwise."""
    match = TABLE_RE.match(value or '')
    if not match:
        raise ValueError('table=%r: give the version table as schema.table, plain identifiers (letters, digits, _), '
                         'e.g. dbfleet.schema_migrations; an unqualified name would depend on search_path, which a '
                         'migration can change' % value)
    return match.group(1), match.group(2)


def quoted(schema, table):
    return '"%s"."%s"' % (schema, table)


def lock_key(schema, table):
    """The advisory lock key (a signed 64-bit number) of one version table; advisory locks are per database."""
    digest = hashlib.sha256(('dbfleet.pg_migrate:%s.%s' % (schema, table)).encode('utf-8')).digest()
    value = int.from_bytes(digest[:8], 'big')
    return value - (1 << 64) if value >= 1 << 63 else value


def lock_parts(key):
    """``(classid, objid)`` as pg_locks shows a bigint advisory lock key (objsubid is 1)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def timeout_ms(seconds, option):
    """Milliseconds for a PostgreSQL timeout; ValueError when it does not fit (0 would mean "wait for ever")."""
    if seconds > MAX_TIMEOUT_SECONDS:
        raise ValueError('%s is at most %d seconds (about 24 days), got %s' % (option, MAX_TIMEOUT_SECONDS, seconds))
    return max(1, int(round(seconds * 1000)))


# --- statements ------------------------------------------------------------------------------------------------

def server_statement(schema, table):
    return ("SELECT pg_is_in_recovery() AS in_recovery, to_regclass(%s) IS NOT NULL AS table_exists",
            [quoted(schema, table)])


def create_table_statements(schema, table):
    name = quoted(schema, table)
    return [
        ('CREATE SCHEMA IF NOT EXISTS "%s"' % schema, None),
        ('CREATE TABLE IF NOT EXISTS %s (version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, '
         'applied_at timestamptz NOT NULL DEFAULT now(), duration_seconds double precision NOT NULL, '
         'non_transactional boolean NOT NULL DEFAULT false, applied_by text NOT NULL DEFAULT current_user)' % name, None),
        ("COMMENT ON TABLE %s IS 'dbfleet.postgresql pg_migrate: one row per applied migration (do not edit)'" % name,
         None),
    ]


def select_applied_statement(schema, table):
    return ('SELECT %s FROM %s ORDER BY version' % (', '.join(COLUMNS), quoted(schema, table)), None)


def applied_from_result(result):
    """``{version: row}`` from the result of :func:`select_applied_statement`."""
    rows = [dict(zip(result['columns'], row)) for row in result['rows']]
    return dict((row['version'], row) for row in rows)


def insert_statement(schema, table, migration, seconds=None):
    """The version row of ``migration``; ``seconds`` None: the time since the transaction began (the file's)."""
    duration = 'extract(epoch FROM clock_timestamp() - now())' if seconds is None else '%s::double precision'
    params = [migration['version'], migration['name'], migration['up']['checksum']]
    params += [] if seconds is None else [seconds]
    params.append(migration['up']['non_transactional'])
    return ('INSERT INTO %s (version, name, checksum, duration_seconds, non_transactional) VALUES (%%s, %%s, %%s, %s, '
            '%%s)' % (quoted(schema, table), duration), params)


def delete_statement(schema, table, migration):
    return ('DELETE FROM %s WHERE version = %%s' % quoted(schema, table), [migration['version']])


def try_lock_statement(key):
    return ('SELECT pg_try_advisory_lock(%s)', [key])


def unlock_statement(key):
    return ('SELECT pg_advisory_unlock(%s)', [key])


def holder_statement(key):
    classid, objid = lock_parts(key)
    return ("SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.client_port, a.usename, "
            "a.backend_start, a.state, a.query_start, left(a.query, 200) AS query, "
            "extract(epoch FROM now() - a.backend_start)::int AS connected_seconds "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s", [classid, objid])


def describe_holder(row):
    """Who holds the migration lock, from a row of :func:`holder_statement` (None: nobody any more)."""
    if not row:
        return 'the session that held it has let it go since: run again'
    client = '%s:%s' % (row['client_addr'], row['client_port']) if row.get('client_addr') else 'the local socket'
    words = 'pid %s (application_name %r, user %s, client %s), connected since %s (%ss ago)' % (
        row['pid'], row.get('application_name') or '', row.get('usename') or '?', client, row.get('backend_start'),
        row.get('connected_seconds'))
    if row.get('query'):
        words += ', %s: %r since %s' % (row.get('state') or '?', row['query'], row.get('query_start'))
    return words + ('. If that session is stuck, end it with SELECT pg_terminate_backend(%s), then run again'
                    % row['pid'])


# --- steps -----------------------------------------------------------------------------------------------------

def file_settings(sql_file, lock_timeout, statement_timeout):
    """``(settings, lock seconds, statement seconds)`` for one file: its markers win over the options."""
    lock = sql_file['lock_timeout'] or lock_timeout
    statement = sql_file['statement_timeout'] or statement_timeout
    settings = dict(lock_timeout='%dms' % timeout_ms(lock, 'lock_timeout'),
                    statement_timeout='%dms' % timeout_ms(statement, 'statement_timeout'))
    return settings, lock, statement


def file_deadline(sql_file, lock, statement):
    """Seconds the child may take for the file before it is killed: every statement's timeouts, plus slack."""
    return (lock + statement) * max(1, len(sql_file['statements'])) + 30


def file_statements(sql_file):
    """What is sent for a file: the whole text (one simple query) in a transaction, else each statement."""
    if sql_file['non_transactional']:
        return [(statement['text'], None) for statement in sql_file['statements']]
    return [(sql_file['text'], None)]


def dry_run_statements(state, todo, schema, table, table_exists, lock_timeout, statement_timeout):
    """``(statements, groups, deadline)`` of the dry run: every transactional migration of ``todo`` up to the first
    non-transactional one, in one transaction to be rolled back. ``groups`` are ``(migration, first, end)``: the
    statements ``first`` to ``end - 1`` are that migration's (its settings, its file, its version row; the
    migration is None for creating the version table); ``first + 1`` is its file's text."""
    statements, groups, deadline = [], [], 30
    if not table_exists and state == 'up':
        statements.extend(create_table_statements(schema, table))
        groups.append((None, 0, len(statements)))
    for migration in todo:
        sql_file = migration['up'] if state == 'up' else migration['down']
        if sql_file['non_transactional']:
            break
        settings, lock, statement = file_settings(sql_file, lock_timeout, statement_timeout)
        first = len(statements)
        statements.append(("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                           [settings['lock_timeout'], settings['statement_timeout']]))
        statements.extend(file_statements(sql_file))
        statements.append(insert_statement(schema, table, migration) if state == 'up'
                          else delete_statement(schema, table, migration))
        groups.append((migration, first, len(statements)))
        deadline += file_deadline(sql_file, lock, statement)
    return statements, groups, deadline


def group_of(groups, index):
    """The ``(migration, first, end)`` of :func:`dry_run_statements` that statement ``index`` belongs to."""
    for group in groups:
        if group[1] <= index < group[2]:
            return group
    return None, index, index


# --- errors ----------------------------------------------------------------------------------------------------

def failure(answer, sql_file, statement=None, recording=False):
    """What went wrong with ``sql_file`` from a failed step's answer: dict ``error`` (one line), ``sqlstate``,
    ``line`` (in the file, when PostgreSQL says where), ``detail``, ``hint``, ``context``. ``statement``: the
    statement of a non-transactional file that failed; ``recording``: the file ran, its version row failed."""
    message = answer.get('primary') or (answer.get('error') or 'failed').splitlines()[0]
    if recording:
        message = 'recording it in the version table failed: %s' % message
    line = None
    position = None if recording else answer.get('statement_position')
    if position:
        base = statement['offset'] if statement else 0
        line = sql_file['text'].count('\n', 0, base + int(position) - 1) + 1
    elif statement and not recording:
        line = statement['line']
    info = dict(file=sql_file['file'], error=message, sqlstate=answer.get('sqlstate'), line=line)
    for key in ('detail', 'hint', 'context'):
        if answer.get(key):
            info[key] = answer[key]
    if answer.get('sqlstate') == LOCK_NOT_AVAILABLE:
        info['hint'] = ('another session holds a lock this migration needs (lock_timeout ran out rather than queue '
                        'every query behind it): run again when it is quieter, or raise lock_timeout')
    elif answer.get('sqlstate') == '57014':
        info['hint'] = 'statement_timeout ran out: raise it for this file with -- dbfleet:statement-timeout=<duration>'
    return info


def failure_sentence(info):
    """``0002_widgets.sql line 3: relation "widgets" already exists (SQLSTATE 42P07). HINT ...``"""
    words = '%s%s: %s (SQLSTATE %s)' % (info['file'], ' line %d' % info['line'] if info.get('line') else '',
                                        info['error'], info.get('sqlstate') or '?')
    if info.get('detail'):
        words += '. %s' % info['detail']
    if info.get('hint'):
        words += '. Hint: %s' % info['hint']
    return words
