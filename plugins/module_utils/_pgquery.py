# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Queries from modules, through psycopg 3, as the operating-system user the connection needs.

Modules run as root, but local PostgreSQL connections usually authenticate by peer (the OS user
must be ``postgres``) or with a passfile in that user's home. So queries run in a short child
process as ``run_as`` (``runuser``), which connects with psycopg and answers in JSON. The
request, password included, travels on the child's stdin: never on a command line or in an
environment another user could read. Connections never prompt and give up after
``connect_timeout`` seconds; a password-only host fails in seconds with words, never hangs.

Two ways in:

* :func:`run_statements` / :func:`query`: a list of statements in one transaction (or each on its
  own, ``autocommit``), for modules that look or make one change.
* :class:`Session` / :func:`run_session`: one connection kept for several *steps*, each a
  transaction (committed), a ``rollback`` (a dry run: run, then rolled back) or ``autocommit``
  statements (what cannot run in a transaction, such as ``CREATE INDEX CONCURRENTLY``), each with
  its own settings (``lock_timeout``, ``statement_timeout``), timing and error. Session-level
  state - an advisory lock - lasts from step to step. The child answers every step before it
  reads the next; when this process goes away, the child reads end-of-file, closes the
  connection and the server releases whatever the session held.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import select
import sys
import tempfile
import time

DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_STATEMENT_TIMEOUT_MS = 60000
STEP_MODES = ('transaction', 'rollback', 'autocommit')
PSYCOPG_HINT = ('install psycopg 3 for %s on this host: python3-psycopg on Debian/Ubuntu, python3-psycopg3 (EPEL) '
                'on RHEL-family hosts' % sys.executable)

# The child: a request line (connection), then one line per step; one JSON line back for each.
# Exit 3 when psycopg is missing, 4 when the connection fails; a failing step is an answer, not an exit.
_CHILD = r'''
import json, sys, time

def say(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()

def problem(exc, **more):
    out = {"error": str(exc).strip(), "sqlstate": getattr(exc, "sqlstate", None)}
    diag = getattr(exc, "diag", None)
    for key in ("message_primary", "message_detail", "message_hint", "statement_position", "context"):
        value = getattr(diag, key, None) if diag is not None else None
        if value:
            out[key.replace("message_", "")] = value
    out.update(more)
    return out

req = json.loads(sys.stdin.readline())
try:
    import psycopg
except ImportError as exc:
    say({"error": "psycopg is not importable: %s" % exc, "stage": "import"})
    sys.exit(3)
params = dict((k, v) for k, v in req["conninfo"].items() if v not in (None, ""))
try:
    conn = psycopg.connect(autocommit=True, **params)
except Exception as exc:
    say(problem(exc, stage="connect"))
    sys.exit(4)
say({"ready": True, "backend_pid": conn.info.backend_pid})

def run(statements, results):
    for sql, args in statements:
        began = time.monotonic()
        cur = conn.execute(sql, args or None)
        result = {"columns": [], "rows": [], "rowcount": cur.rowcount}
        if cur.description is not None:
            result.update(columns=[d.name for d in cur.description], rows=cur.fetchall())
        result["seconds"] = time.monotonic() - began
        results.append(result)

while True:
    line = sys.stdin.readline()
    if not line:
        break
    step = json.loads(line)
    if step.get("close"):
        break
    results, began = [], time.monotonic()
    settings = step.get("settings") or {}
    try:
        if step["mode"] == "autocommit":
            saved = [(k, conn.execute("SELECT current_setting(%s)", [k]).fetchone()[0]) for k in settings]
            try:
                for name, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
                run(step["statements"], results)
            finally:
                for name, value in saved:
                    conn.execute("SELECT set_config(%s, %s, false)", [name, value])
        else:
            with conn.transaction(force_rollback=step["mode"] == "rollback"):
                for name, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, true)", [name, str(value)])
                run(step["statements"], results)
        say({"ok": True, "results": results, "seconds": time.monotonic() - began})
    except Exception as exc:
        say(problem(exc, ok=False, stage="query", done=len(results), results=results,
                    seconds=time.monotonic() - began))
conn.close()
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


def _child_env():
    # Inherited PG* variables would change where the child connects; the request says it all.
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env['PGCONNECT_TIMEOUT'] = str(DEFAULT_CONNECT_TIMEOUT)
    env.setdefault('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')
    return env


def _connect_error(target, words, connect_timeout, sqlstate=None):
    """The PgQueryError for a connection that failed with ``words``, with what to do about it."""
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
    return PgQueryError('could not connect to PostgreSQL as %s: %s.%s' % (target, words.rstrip('.'), hint),
                        stage='connect', sqlstate=sqlstate)


def step_timeout(statements, statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS):
    """Seconds a step of ``statements`` may take before the child is killed: every statement's timeout, plus slack."""
    return (statement_timeout_ms / 1000.0) * max(1, len(statements)) + 15


class Session(object):
    """One connection, in a child process as ``run_as``, kept open for several steps (see :meth:`step`).

    A context manager; :meth:`close` ends the child (and so the connection and anything the session
    held, advisory locks included). Raises PgQueryError (stage import or connect) when it cannot connect.
    """

    def __init__(self, module, connection, password=None, run_as=None, read_only=True,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT, statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS,
                 appname='dbfleet'):
        import subprocess  # pylint: disable=import-outside-toplevel
        self.module = module
        self.target = describe_target(connection, run_as)
        self.statement_timeout_ms = statement_timeout_ms
        self._buffer = b''
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(_child_argv(run_as), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, cwd='/', env=_child_env(), close_fds=True)
        except OSError as exc:
            self._stderr.close()
            raise PgQueryError('could not start the query process as %s: %s' % (run_as, exc))
        request = dict(conninfo=conninfo(connection, password, read_only, connect_timeout, statement_timeout_ms, appname))
        reply = self._exchange(request, connect_timeout + 15)
        if not reply.get('ready'):
            words = reply.get('error') or self._stderr_text() or 'the query process ended (exit %s)' % self._proc.returncode
            self.close()
            stage = reply.get('stage')
            if stage == 'import' or self._proc.returncode == 3:
                raise PgQueryError('psycopg 3 is missing on this host (%s): %s' % (words, PSYCOPG_HINT), stage='import')
            raise _connect_error(self.target, words, connect_timeout, reply.get('sqlstate'))
        self.backend_pid = reply['backend_pid']

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def step(self, statements, mode='transaction', settings=None, timeout=None):
        """Run ``statements`` (``[(sql, params), ...]``) as one step; the child's answer as a dict.

        ``mode``: ``transaction`` (committed), ``rollback`` (rolled back at the end: a dry run) or
        ``autocommit`` (each statement on its own). ``settings`` (``{name: value}``) apply to this step
        only (``SET LOCAL`` in a transaction; set and restored around an autocommit step). The answer:
        ``ok``, ``seconds``, ``results`` (per statement ``columns``, ``rows``, ``rowcount``, ``seconds``)
        and, when a statement failed, ``error``, ``sqlstate``, ``done`` (statements that succeeded
        before it; in a transaction they were rolled back) and, where PostgreSQL gives them,
        ``primary`` (the message alone, without psycopg's LINE excerpt), ``detail``, ``hint``,
        ``statement_position`` (1-based, in the statement's text) and ``context``. PgQueryError when the child dies or
        the step outlives ``timeout`` seconds (the child is then killed, the connection with it).
        """
        if mode not in STEP_MODES:
            raise ValueError('step mode must be one of %s, not %r' % (', '.join(STEP_MODES), mode))
        request = dict(mode=mode, settings=settings or {}, statements=[[sql, list(params or [])] for sql, params in statements])
        if timeout is None:
            timeout = step_timeout(statements, self.statement_timeout_ms)
        reply = self._exchange(request, timeout)
        if 'ok' not in reply:
            words = self._stderr_text() or 'exit %s' % self._proc.returncode
            self.close()
            raise PgQueryError('the query process as %s ended during a step: %s' % (self.target, words))
        return reply

    def close(self):
        """End the child: it closes the connection. Safe to call twice."""
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.write(b'{"close": true}\n')
                proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                proc.wait(timeout=10)
            except Exception:  # pylint: disable=broad-except
                proc.kill()
                proc.wait()
        for handle in (proc.stdin, proc.stdout):
            try:
                handle.close()
            except (OSError, ValueError):
                pass
        self._stderr.close()

    def _stderr_text(self):
        if self._stderr.closed:
            return ''
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode('utf-8', 'replace').strip()[-2000:]
        except (OSError, ValueError):
            return ''

    def _exchange(self, request, timeout):
        """Send one request line, read one answer line within ``timeout`` seconds ({} when the child ended)."""
        try:
            self._proc.stdin.write(json.dumps(request, default=str).encode('utf-8') + b'\n')
            self._proc.stdin.flush()
        except (OSError, ValueError):
            self._proc.wait()
            return {}
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b'\n' not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._proc.kill()
                self._proc.wait()
                raise PgQueryError('could not query PostgreSQL as %s: gave up after %d seconds' % (self.target, timeout))
            chunk = os.read(fd, 65536)
            if not chunk:
                self._proc.wait()
                return {}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\n', 1)
        try:
            return json.loads(line.decode('utf-8'))
        except ValueError:
            return {}


def run_session(module, connection, steps, **kwargs):
    """Run ``steps`` (dicts with ``statements`` and optionally ``mode``, ``settings``, ``timeout``) in one
    connection, stopping at the first that fails; the list of answers (see :meth:`Session.step`).

    ``kwargs`` are :class:`Session`'s (password, run_as, read_only, connect_timeout, ...).
    """
    answers = []
    with Session(module, connection, **kwargs) as session:
        for step in steps:
            answers.append(session.step(step['statements'], mode=step.get('mode', 'transaction'),
                                        settings=step.get('settings'), timeout=step.get('timeout')))
            if not answers[-1]['ok']:
                break
    return answers


def run_statements(module, connection, statements, password=None, run_as=None, read_only=True, rollback=False,
                   autocommit=False, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                   statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS):
    """Run ``statements`` (``[(sql, params), ...]``) in one transaction; a list of ``{columns, rows}``.

    ``rollback`` rolls the transaction back at the end (a dry run); ``autocommit`` runs each
    statement on its own (``ALTER SYSTEM`` cannot run in a transaction block).
    """
    mode = 'autocommit' if autocommit else 'rollback' if rollback else 'transaction'
    answer = run_session(module, connection, [dict(statements=statements, mode=mode)], password=password,
                         run_as=run_as, read_only=read_only, connect_timeout=connect_timeout,
                         statement_timeout_ms=statement_timeout_ms)[0]
    if answer['ok']:
        return [dict(columns=r['columns'], rows=r['rows'], rowcount=r['rowcount']) for r in answer['results']]
    raise PgQueryError('query failed as %s: %s' % (describe_target(connection, run_as), answer.get('error')),
                       stage='query', sqlstate=answer.get('sqlstate'))


def query(module, connection, sql, params=None, **kwargs):
    """Rows of one read-only query as dicts (column name -> value)."""
    result = run_statements(module, connection, [(sql, params)], **kwargs)[0]
    return [dict(zip(result['columns'], row)) for row in result['rows']]
