# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module that talks to PostgreSQL, and running its client tools.

Passwords travel in a passfile (mode 0600, removed afterwards) named by PGPASSFILE: never on a
command line, never in an environment variable another user could read from /proc.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import pwd
import re
import shutil
import tempfile

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.libpq import SSL_MODES, libpq_env


class PgError(Exception):
    """A PostgreSQL client call failed; the message is the client's own words plus context."""


def postgres_common_argument_spec():
    """Connection options; extend per module with ``.update()``."""
    return dict(
        login_host=dict(type='str'),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        login_db=dict(type='str', default='postgres'),
        login_unix_socket=dict(type='path'),
        ssl_mode=dict(type='str', choices=list(SSL_MODES)),
    )


def connection_settings(params):
    """The connection options as the dump runner's config stores them (no password)."""
    return dict(
        host=params.get('login_unix_socket') or params.get('login_host'),
        port=params.get('login_port'),
        user=params.get('login_user'),
        dbname=params.get('login_db'),
        sslmode=params.get('ssl_mode'),
    )


def passfile_line(connection, password):
    """One ~/.pgpass line matching this connection, with ``:`` and ``\\`` escaped as libpq expects."""
    def esc(value):
        return str(value).replace('\\', '\\\\').replace(':', '\\:')
    host = connection.get('host') or '*'
    if host.startswith('/'):
        host = 'localhost'  # libpq matches unix-socket connections against "localhost"
    return '%s:%s:*:%s:%s\n' % (esc(host), esc(connection.get('port') or '*'), esc(connection.get('user') or '*'), esc(password))


class TemporaryPassfile:
    """A private passfile for one module run; nothing when there is no password."""

    def __init__(self, connection, password, owner=None):
        self.connection, self.password, self.owner = connection, password, owner
        self.path, self._dir = None, None

    def __enter__(self):
        if self.password:
            self._dir = tempfile.mkdtemp(prefix='dbfleet-pgpass-')
            self.path = os.path.join(self._dir, 'pgpass')
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w') as handle:
                handle.write(passfile_line(self.connection, self.password))
            if self.owner and os.geteuid() == 0:
                entry = pwd.getpwnam(self.owner)
                os.chown(self._dir, entry.pw_uid, entry.pw_gid)
                os.chown(self.path, entry.pw_uid, entry.pw_gid)
        return self.path

    def __exit__(self, *exc):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        return False


def as_user(argv, user):
    """Prefix ``argv`` so it runs as ``user`` when the module runs as root and ``user`` differs."""
    if not user or pwd.getpwuid(os.geteuid()).pw_name == user:
        return list(argv)
    if os.geteuid() != 0:
        raise PgError('this task runs as %s but must run commands as %s: use become (root) or become_user: %s'
                      % (pwd.getpwuid(os.geteuid()).pw_name, user, user))
    return ['runuser', '-u', user, '--'] + list(argv)


def find_pg_tool(name, explicit=None):
    """Path of a PostgreSQL client tool: the explicit one, the newest Debian/RHEL-style install, or PATH."""
    if explicit:
        return explicit
    candidates = glob.glob('/usr/lib/postgresql/*/bin/%s' % name) + glob.glob('/usr/pgsql-*/bin/%s' % name)

    def version(path):
        match = re.search(r'(\d+)(?:\.\d+)?/bin/', path.replace('pgsql-', ''))
        return int(match.group(1)) if match else 0

    for path in sorted(candidates, key=version, reverse=True):
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def psql_query(module, sql, connection, password=None, run_as=None, psql=None):
    """Run one read-only query with psql; returns the rows as lists of strings (``|``-separated)."""
    psql = psql or find_pg_tool('psql')
    if not psql:
        raise PgError('psql is not installed on this host: install the PostgreSQL client package')
    with TemporaryPassfile(connection, password, owner=run_as) as passfile:
        env = libpq_env(connection, passfile)
        env['PGOPTIONS'] = '-c default_transaction_read_only=on'
        argv = as_user([psql, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], run_as)
        rc, out, err = module.run_command(argv, environ_update=env, cwd='/')
    if rc != 0:
        target = '%s@%s:%s' % (connection.get('user') or run_as or 'current user', connection.get('host') or 'local socket',
                               connection.get('port') or 5432)
        raise PgError('could not query PostgreSQL as %s: %s' % (target, (err or out).strip() or 'psql exit %d' % rc))
    return [line.split('|') for line in out.splitlines() if line]
