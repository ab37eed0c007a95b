# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Queries from modules, through psycopg 3, as the operating-system user the connection needs.

Modules run as root, but local PostgreSQL connections usually authenticate by peer (the OS user
must be ``postgres``) or with a passfile in that user's home. So each query runs in a short child
process as ``run_as`` (``runuser``), which connects with psycopg and prints the rows as JSON. The
request, password included, travels on the child's stdin: never on a command line or in an
environment another user could read. Connections never prompt and give up after
``connect_timeout`` seconds; a password-only host fails in seconds with words, never hangs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import sys

DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_STATEMENT_TIMEOUT_MS = 60000
PSYCOPG_HINT = ('install psycopg 3 for %s on this host: python3-psycopg on Debian/Ubuntu, python3-psycopg3 (EPEL) '
                'on RHEL-family hosts' % sys.executable)

# The child: read one request, run its statements in one transaction, print JSON. Exit 3 when
# psycopg is missing, 4 when the connection fails, 5 when a statement fails.
_CHILD = r'''
import json, sys
req = json.loads(sys.stdin.read())
try:
    import psycopg
except ImportError as exc:
    print(json.dumps({"error": "psycopg is not importable: %s" % exc, "stage": "import"}))
    sys.exit(3)
params = dict((k, v) for k, v in req["conninfo"].items() if v not in (None, ""))
try:
    conn = psycopg.connect(autocommit=req["autocommit"], **params)
except Exception as exc:
    print(json.dumps({"error": str(exc).strip(), "stage": "connect", "sqlstate": getattr(exc, "sqlstate", None)}))
    sys.exit(4)
results = []
try:
    with conn:
        for sql, args in req["statements"]:
            cur = conn.execute(sql, args or None)
            if cur.description is None:
                results.append({"columns": [], "rows": [], "rowcount": cur.rowcount})
            else:
                results.append({"columns": [d.name for d in cur.description], "rows": cur.fetchall(),
                                "rowcount": cur.rowcount})
        if req["rollback"]:
            conn.rollback()
except Exception as exc:
    print(json.dumps({"error": str(exc).strip(), "stage": "query", "sqlstate": getattr(exc, "sqlstate", None),
                      "done": len(results)}))
    sys.exit(5)
print(json.dumps({"results": results}, default=str))
'''


class PgQueryError(Exception):
    """A query could not run; ``stage`` is import, connect or query; the message says what to do."""

    def __init__(self, message, stage=None, sqlstate=None):
        super(PgQueryError, self).__init__(message)
        self.stage = stage
        self.sqlstate = sqlstate


def describe_target(connection, run_as=None):
    user = connection.get('user') or run_as or 'the current user'
    where = connection.get('host') or 'the local socket'
    return '%s@%s:%s (database %s)' % (user, where, connection.get('port') or 5432, connection.get('dbname') or 'postgres')


def conninfo(connection, password=None, read_only=True, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
             statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS, appname='dbfleet'):
    """psycopg keyword arguments for ``connection`` (a dict from ``_postgres.connection_settings``)."""
    options = ['-c statement_timeout=%d' % int(statement_timeout_ms)]
    if read_only:
        options.append('-c default_transaction_read_only=on')
    return dict(host=connection.get('host'), port=connection.get('port'), user=connection.get('user'),
                dbname=connection.get('dbname') or 'postgres', sslmode=connection.get('sslmode'), password=password,
                connect_timeout=int(connect_timeout), application_name=appname, options=' '.join(options))


def _child_argv(run_as):
    me = pwd.getpwuid(os.geteuid()).pw_name
    argv = [sys.executable, '-I', '-c', _CHILD]
    if run_as and run_as != me:
        if os.geteuid() != 0:
            raise PgQueryError('this task runs as %s but must connect as the OS user %s: use become (root)' % (me, run_as))
        return ['runuser', '-u', run_as, '--'] + argv
    return argv


def run_statements(module, connection, statements, password=None, run_as=None, read_only=True, rollback=False,
                   autocommit=False, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                   statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS):
    """Run ``statements`` (``[(sql, params), ...]``) in one transaction; a list of ``{columns, rows}``.

    ``rollback`` rolls the transaction back at the end (a dry run); ``autocommit`` runs each
    statement on its own (``ALTER SYSTEM`` cannot run in a transaction block).
    """
    request = dict(conninfo=conninfo(connection, password, read_only, connect_timeout, statement_timeout_ms),
                   statements=[[sql, list(params or [])] for sql, params in statements], rollback=rollback,
                   autocommit=autocommit)
    # The child's own deadline is the connect timeout plus every statement's timeout; ours is a
    # little longer, so a child that hangs anyway is killed rather than waited for.
    timeout = connect_timeout + (statement_timeout_ms / 1000.0) * max(1, len(statements)) + 15
    rc, out, err = _run(module, _child_argv(run_as), json.dumps(request, default=str), timeout)
    try:
        reply = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except ValueError:
        reply = {}
    if rc == 0 and 'results' in reply:
        return reply['results']
    target = describe_target(connection, run_as)
    stage = reply.get('stage')
    if rc == 3 or stage == 'import':
        raise PgQueryError('psycopg 3 is missing on this host (%s): %s' % (reply.get('error') or err.strip(), PSYCOPG_HINT),
                           stage='import')
    if rc == 4 or stage == 'connect':
        words = reply.get('error') or err.strip() or 'exit %d' % rc
        hint = ''
        lowered = words.lower()
        if 'password' in lowered and ('no password supplied' in lowered or 'authentication failed' in lowered
                                      or 'fe_sendauth' in lowered):
            hint = (' This host asks for a password: give the login user and password (login_user/login_password; '
                    'in the roles, backup_admin_user/backup_admin_password or their dbfleet_pg_admin_* inventory '
                    'variables).')
        elif 'timeout' in lowered or 'timed out' in lowered:
            hint = ' PostgreSQL did not answer within %d seconds: is it running and reachable?' % connect_timeout
        elif 'no such file or directory' in lowered or 'connection refused' in lowered:
            hint = ' Is PostgreSQL running, and listening where login_host/login_port/login_unix_socket point?'
        raise PgQueryError('could not connect to PostgreSQL as %s: %s.%s' % (target, words.rstrip('.'), hint),
                           stage='connect', sqlstate=reply.get('sqlstate'))
    if rc == 5 or stage == 'query':
        raise PgQueryError('query failed as %s: %s' % (target, reply.get('error')), stage='query',
                           sqlstate=reply.get('sqlstate'))
    raise PgQueryError('could not query PostgreSQL as %s: %s' % (target, (err or out).strip()[-2000:] or 'exit %s' % rc))


def _run(module, argv, data, timeout):
    """Run the child with ``data`` on stdin; ``(rc, out, err)``; killed after ``timeout`` seconds."""
    import subprocess  # pylint: disable=import-outside-toplevel
    try:
        proc = subprocess.run(argv, input=data.encode('utf-8'), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, cwd='/', check=False, env=_child_env())
    except subprocess.TimeoutExpired:
        return 124, '', 'gave up after %d seconds' % timeout
    except OSError as exc:
        return 127, '', str(exc)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')


def _child_env():
    # Inherited PG* variables would change where the child connects; the request says it all.
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env['PGCONNECT_TIMEOUT'] = str(DEFAULT_CONNECT_TIMEOUT)
    env.setdefault('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')
    return env


def query(module, connection, sql, params=None, **kwargs):
    """Rows of one read-only query as dicts (column name -> value)."""
    result = run_statements(module, connection, [(sql, params)], **kwargs)[0]
    return [dict(zip(result['columns'], row)) for row in result['rows']]
