# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module that talks to PostgreSQL, and finding and running its
client tools (pg_dump, pg_restore, ...). Queries go through ``_pgquery`` (psycopg 3).

Passwords never go on a command line: the host programs get them from a passfile, queries on
the child's stdin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import pwd
import re
import shutil

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.libpq import SSL_MODES


class PgError(Exception):
    """A PostgreSQL client tool could not be run as asked; the message says what to do."""


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
