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

import os

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


def tool_environment(connection, appname, base=None):
    """The whole environment for libpq tools run by a host-side program.

    ``base`` (default: ``os.environ``) without any inherited PG* variable --
    so cron and a run by hand behave the same, and a stray PGPASSWORD never
    wins over the passfile -- with a default PATH, plus :func:`libpq_env`.
    """
    base = os.environ if base is None else base
    env = dict((key, value) for key, value in base.items() if not key.startswith("PG"))
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(libpq_env(connection, appname=appname))
    return env


def database_environment(env, db):
    """``env`` connecting to database ``db`` (in PGDATABASE, never as an argument)."""
    result = dict(env)
    result["PGDATABASE"] = db
    return result
