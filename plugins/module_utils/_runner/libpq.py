# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every PostgreSQL client call here connects: libpq's PG* environment variables.

Connection settings reach libpq only through the environment (never as
arguments: libpq reads a database name containing ``=`` as a connection
string), and a password only through a passfile (``PGPASSFILE``).  Modules
(``_postgres``) and the host-side programs use the same definitions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import os
import shutil
import stat
import tempfile

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_VARIABLES = (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("dbname", "PGDATABASE"),
              ("passfile", "PGPASSFILE"), ("sslmode", "PGSSLMODE"), ("connect_timeout", "PGCONNECT_TIMEOUT"))


def libpq_env(connection, passfile=None, appname="dbfleet", connect_timeout=10):
    """libpq environment variables for ``connection``.

    ``connection`` is a dict with the keys ``host``, ``port``, ``user``,
    ``dbname``, ``sslmode`` and optionally ``passfile`` and
    ``connect_timeout`` (None or '' leaves a variable out).  ``passfile``, if
    given, wins over the connection's; ``connect_timeout`` is the default when
    the connection has none, so no call waits for a server forever.
    """
    values = dict(connection)
    if passfile:
        values["passfile"] = passfile
    if values.get("connect_timeout") in (None, ""):
        values["connect_timeout"] = connect_timeout
    env = {"PGAPPNAME": appname}
    for key, var in _VARIABLES:
        if values.get(key) not in (None, ""):
            env[var] = str(values[key])
    return env


def private_passfile(source):
    """A copy of ``source`` that libpq accepts: mode 0600, owned by this process's user, removed at exit.

    The module installs passfiles owned by root and readable by the run user's group (0640), so
    the run user can read but never change them; libpq ignores a passfile with group access,
    so each run reads it and works from a private copy in a fresh 0700 directory.
    """
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("passfile %s is not a regular file" % source)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    directory = tempfile.mkdtemp(prefix="dbfleet-pgpass-")
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, "pgpass")
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(b"".join(chunks))
        while view:
            view = view[os.write(out, view):]
    finally:
        os.close(out)
    return path


def tool_environment(connection, appname, base=None):
    """The whole environment for libpq tools run by a host-side program.

    ``base`` (default: ``os.environ``) without any inherited PG* variable --
    so cron and a run by hand behave the same, and a stray PGPASSWORD never
    wins over the passfile -- with a default PATH, plus :func:`libpq_env`.
    A passfile libpq would ignore (group-readable, or not this user's) is replaced by
    :func:`private_passfile`; one that cannot be read is left for libpq to report.
    """
    base = os.environ if base is None else base
    env = dict((key, value) for key, value in base.items() if not key.startswith("PG"))
    env.setdefault("PATH", DEFAULT_PATH)
    passfile = connection.get("passfile")
    if passfile:
        try:
            info = os.stat(passfile)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                passfile = private_passfile(passfile)
        except OSError:
            pass
    env.update(libpq_env(connection, passfile=passfile, appname=appname))
    return env


def database_environment(env, db):
    """``env`` connecting to database ``db`` (in PGDATABASE, never as an argument)."""
    result = dict(env)
    result["PGDATABASE"] = db
    return result
