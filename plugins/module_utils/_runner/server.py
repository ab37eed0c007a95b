# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL client tools and what the server says: versions, the databases, facts for manifests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess

from .libpq import database_environment
from .log import hint, stderr_summary
from .pipeline import describe_exit
from .wal import wal_segment_size_problem

_PG_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?\S*(?:\s.*)?)$")


def find_tool(pg_bin, env, name):
    """Path of the client tool ``name``: in ``pg_bin`` when set, else on the PATH of ``env``."""
    if pg_bin:
        return os.path.join(pg_bin, name)
    return shutil.which(name, path=env.get("PATH")) or name


def tool_version(path, name, env):
    """``(full_version, major, None)`` of a PostgreSQL client tool, or ``(None, None, error)``."""
    try:
        proc = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, None, "cannot run %s --version: %s (install the PostgreSQL client or set pg_bin)" % (path, exc)
    out = proc.stdout.decode("utf-8", "replace").strip()
    match = _PG_VERSION_RE.search(out)
    if proc.returncode != 0 or not match:
        return None, None, ("cannot tell the %s version from %r (exit %s): %s"
                            % (name, out, proc.returncode, stderr_summary(proc.stderr.decode("utf-8", "replace"))))
    return match.group(1).strip(), int(match.group(2)), None


# Names travel hex-encoded: whatever a name holds (a newline, a '|'), it arrives exactly as the server has it.
_LIST_SQL = "SELECT encode(convert_to(datname, 'UTF8'), 'hex'), datallowconn, datistemplate FROM pg_database ORDER BY 1"


def list_databases(run):
    """The databases on the server, and why ``databases: all`` leaves some out.

    Returns ``(dbs, left_out)``: ``dbs`` the names to dump, exactly as the
    server has them (never stripped or altered); ``left_out`` ``[{"db",
    "reason", "excluded"}]`` for every other database -- a template, one that
    does not allow connections, one in exclude_databases (``excluded``).  With
    a list of databases in the config: that list and ``[]``.  ``(None, [])``
    with an error recorded when the server cannot be asked.
    """
    cfg = run.cfg
    if cfg["databases"] != "all":
        return list(cfg["databases"]), []
    argv = [run.tools["psql"], "-X", "-A", "-t", "-w", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", _LIST_SQL]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run.env, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        run.errors.append("cannot list databases: %s" % exc)
        return None, []
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        run.log("psql: " + err.strip())
        summary = stderr_summary(err)
        run.errors.append("cannot list databases (psql %s): %s%s" % (describe_exit(proc.returncode), summary, hint(summary)))
        return None, []
    exclude = set(cfg["exclude_databases"])
    dbs, left_out = [], []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        fields = line.split("|")
        try:
            name = bytes.fromhex(fields[0]).decode("utf-8", "surrogateescape")
        except ValueError:
            fields = []
        if len(fields) != 3:
            run.errors.append("cannot list databases: psql printed %r, not a database" % (line,))
            return None, []
        reasons = []
        if fields[2] == "t":
            reasons.append("it is a template (datistemplate)")
        if fields[1] != "t":
            reasons.append("it does not allow connections (ALLOW_CONNECTIONS false)")
        if name in exclude:
            reasons.append("it is listed in exclude_databases")
        if reasons:
            # Templates and excluded databases are left out by design: named, not warned about.
            expected = name in exclude or fields[2] == "t"
            left_out.append({"db": name, "reason": " and ".join(reasons), "excluded": expected})
        else:
            dbs.append(name)
    return dbs, left_out


def server_info(run, db):
    """One psql round trip before each artifact: what the manifest records, never fatal.

    Returns :func:`parse_server_info`'s dict (``reads_role_passwords``,
    ``wal_segment_size``, ``db_size_bytes``, ``server_version``; all None
    when the query fails -- pg_dump/pg_basebackup then say why).  ``db``
    None connects to ``connection.dbname``.
    """
    sql = ("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT'), "
           "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
           "pg_database_size(current_database()), current_setting('server_version')")
    argv = [run.tools["psql"], "-X", "-A", "-t", "-w", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql]
    env = run.env if db is None else database_environment(run.env, db)
    unknown = parse_server_info("")
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        run.log("could not read server version/size of %s: %s" % (db or "the server", exc))
        return unknown
    if proc.returncode != 0:
        run.log("could not read server version/size of %s: %s" % (db or "the server", stderr_summary(proc.stderr.decode("utf-8", "replace"))))
        return unknown
    return parse_server_info(proc.stdout.decode("utf-8", "replace"))


def parse_server_info(text):
    """Parse the runner's one-row server query (``psql -A -t -F '|'``) into a dict.

    Columns: whether the current user may read ``pg_catalog.pg_authid``, i.e.
    role passwords (``has_table_privilege``, ``t``/``f``), wal_segment_size in
    bytes, pg_database_size of the current database, server_version (last: it
    is free text).  Unknown or empty values become None.
    """
    fields = text.strip().split("|", 3)
    fields += [""] * (4 - len(fields))
    reads_role_passwords = {"t": True, "f": False, "true": True, "false": False}.get(fields[0].strip())
    sizes = []
    for item in fields[1:3]:
        try:
            sizes.append(int(item.strip()))
        except ValueError:
            sizes.append(None)
    if sizes[0] is not None and wal_segment_size_problem(sizes[0]):
        sizes[0] = None
    return {"reads_role_passwords": reads_role_passwords, "wal_segment_size": sizes[0], "db_size_bytes": sizes[1],
            "server_version": fields[3].strip() or None}
