# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three ways dump_restore restores a dump: into a throwaway instance (a fresh cluster, as in a drill), into a
scratch database on a server, or -- the commonest restore -- one table or schema into a scratch schema beside
production. Each keeps its work files in ``RESTORE_ROOT/NAME`` (root-owned; ``work`` inside belongs to the OS user
the tools run as) and cleans up after itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import query, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import passfile_line
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import instance, logical

SCHEMA_EXISTS_SQL = 'SELECT 1 FROM pg_namespace WHERE nspname = %s'
DATABASE_EXISTS_SQL = 'SELECT 1 FROM pg_database WHERE datname = %s'
TABLES_SQL = ("SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE c.relkind IN ('r', 'p')")


class Workspace:
    """``RESTORE_ROOT/NAME`` (root, 0755) with ``work`` (the OS user's, 0700): the decompressed dump, list files,
    the passfile."""

    def __init__(self, root, name, identity, connection=None, password=None):
        self.directory = os.path.join(root, name)
        self.work = os.path.join(self.directory, 'work')
        self.identity = identity
        _files.ensure_dir(root, 0, 0, 0o755)
        _files.ensure_dir(self.directory, 0, 0, 0o755)
        _files.ensure_dir(self.work, identity[0], identity[1], 0o700)
        self.passfile = None
        if password:
            self.passfile = os.path.join(self.work, 'pgpass')
            _files.write_file(self.passfile, passfile_line(connection, password).encode('utf-8'), identity[0], identity[1], 0o600)

    def remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)


def into_instance(ctx, archive_ready, database, jobs, inst):
    """A fresh throwaway instance with the dump restored into it (``--create``: the dump's own database name).

    ``archive_ready()`` returns ``(archive, format)`` once the dump is ready to read (it is decompressed meanwhile:
    initdb and the start overlap with it).
    """
    inst.prepare()
    inst.initdb(ctx.superuser)
    settings = instance.instance_settings(inst.port, inst.directory)
    inst.write_config(settings)
    inst.start(settings)
    inst.wait_started(ctx.params['timeout'])
    env = logical.tool_env(inst.connection(ctx.superuser), None)
    archive, fmt = archive_ready()
    started = time.monotonic()
    if database in ('postgres', 'template1'):  # a fresh cluster has them: restore into the one there
        argv = logical.pg_restore_argv(ctx.bin_dir, archive, fmt, jobs, dbname=database)
    elif fmt == 'plain':
        logical.run_tool([os.path.join(ctx.bin_dir, 'createdb'), '--', database], env, ctx.identity, 'createdb')
        argv = logical.pg_restore_argv(ctx.bin_dir, archive, fmt, jobs, dbname=database)
    else:
        argv = logical.pg_restore_argv(ctx.bin_dir, archive, fmt, jobs, create=True)
    logical.run_tool(argv, env, ctx.identity, 'restoring %s into the throwaway instance' % database)
    return round(time.monotonic() - started, 3), inst.connection(ctx.superuser, database)


def incomplete(ctx, archive, connection, env, rename=None):
    """The tables the dump holds data for that the restored database lacks (``rename``: their schema there)."""
    entries = logical.parse_toc(logical.run_tool([os.path.join(ctx.bin_dir, 'pg_restore'), '--list', archive], env,
                                                 ctx.identity, 'pg_restore --list'))
    present = set(row['name'] for row in query(ctx.module, connection, TABLES_SQL, run_as=ctx.run_as, password=ctx.password,
                                               connect_timeout=ctx.connect_timeout))
    wanted = logical.toc_tables(entries)
    if rename:
        wanted = [name for name in wanted if name.split('.', 1)[0] in rename]
        wanted = ['%s.%s' % (rename[name.split('.', 1)[0]], name.split('.', 1)[1]) for name in wanted]
    return [name for name in wanted if name not in present]


def _exists(ctx, connection, sql, name):
    return bool(query(ctx.module, connection, sql, [name], run_as=ctx.run_as, password=ctx.password,
                      connect_timeout=ctx.connect_timeout))


def _admin(ctx, connection, statements):
    run_statements(ctx.module, connection, statements, password=ctx.password, run_as=ctx.run_as, read_only=False,
                   autocommit=True, statement_timeout_ms=600000)


def create_database(ctx, connection, name):
    """CREATE DATABASE ``name`` (a plain identifier) on the server; ValueError when it exists already."""
    logical.check_identifier(name, 'scratch database')
    if _exists(ctx, connection, DATABASE_EXISTS_SQL, name):
        raise ValueError('database %s exists already: dbfleet restores only into a database it creates; choose another '
                         'name' % name)
    _admin(ctx, connection, [('CREATE DATABASE %s TEMPLATE template0' % name, None)])


def drop_database(ctx, connection, name):
    _admin(ctx, connection, [('DROP DATABASE IF EXISTS %s WITH (FORCE)' % logical.check_identifier(name, 'database'), None)])


def into_database(ctx, archive, fmt, jobs, workspace, name):
    """The dump restored into a new scratch database on the server of the connection options."""
    create_database(ctx, ctx.connection, name)
    env = logical.tool_env(ctx.connection, workspace.passfile)
    started = time.monotonic()
    logical.run_tool(logical.pg_restore_argv(ctx.bin_dir, archive, fmt, jobs, dbname=name), env, ctx.identity,
                     'restoring into %s' % name)
    return round(time.monotonic() - started, 3), dict(ctx.connection, dbname=name)


def into_schema(ctx, archive, workspace, database, into, tables, schemas, stamp):
    """One table or schema of the dump into the new schema ``into`` of ``database``; the live objects untouched.

    Returns ``(seconds, connection, table_map)``: ``table_map`` maps the restored tables to their original names.
    """
    into = logical.check_identifier(into, 'into_schema')
    target = dict(ctx.connection, dbname=database)
    if _exists(ctx, target, SCHEMA_EXISTS_SQL, into):
        raise ValueError('schema %s exists already in %s: a partial restore never writes over anything; choose another '
                         'into_schema or drop it' % (into, database))
    sources = sorted(set([schema for schema, _table in tables] + list(schemas)))
    if len(sources) != 1:
        raise ValueError('a partial restore takes tables of one schema, or one schema (got %s)' % ', '.join(sources))
    env = logical.tool_env(ctx.connection, workspace.passfile)
    entries = logical.parse_toc(logical.run_tool([os.path.join(ctx.bin_dir, 'pg_restore'), '--list', archive], env,
                                                 ctx.identity, 'pg_restore --list'))
    list_file = os.path.join(workspace.work, 'selection.list')
    indexes = {}
    if tables:  # which table each index is on: the TOC does not say, the SQL it restores does
        _write_list(list_file, [e['line'] for e in entries if e['kind'] == 'INDEX'], ctx.identity)
        indexes = logical.index_tables(logical.run_tool([os.path.join(ctx.bin_dir, 'pg_restore'), '--use-list=%s' % list_file,
                                                         '--file=-', archive], env, ctx.identity, 'pg_restore of the index list'))
    _write_list(list_file, logical.select_entries(entries, tables, schemas, indexes), ctx.identity)
    staging = 'dbfleet_partial_%s' % stamp.lower()
    started = time.monotonic()
    create_database(ctx, ctx.connection, staging)
    try:
        staged = dict(ctx.connection, dbname=staging)
        if tables and sources[0] != 'public':
            _admin(ctx, staged, [('CREATE SCHEMA %s' % _quote(sources[0]), None)])
        logical.run_tool(logical.pg_restore_argv(ctx.bin_dir, archive, 'custom', 1, dbname=staging, list_file=list_file),
                         env, ctx.identity, 'restoring the selection into the staging database %s' % staging)
        _admin(ctx, staged, [('ALTER SCHEMA %s RENAME TO %s' % (_quote(sources[0]), into), None)])
        moved = os.path.join(workspace.work, 'moved.dump')
        logical.run_tool([os.path.join(ctx.bin_dir, 'pg_dump'), '--format=custom', '--schema=%s' % into, '--file=%s' % moved,
                          '--no-owner', '--no-privileges', '--dbname', logical.dbname_conninfo(staging)], env, ctx.identity,
                         'pg_dump of the staged schema')
        logical.run_tool(logical.pg_restore_argv(ctx.bin_dir, moved, 'custom', 1, dbname=database), env, ctx.identity,
                         'restoring schema %s into %s' % (into, database))
    finally:
        drop_database(ctx, ctx.connection, staging)
    names = [t for _s, t in tables] or [e['tag'] for e in entries if e['kind'] == 'TABLE' and e['schema'] == sources[0]]
    table_map = dict(('%s.%s' % (into, t), '%s.%s' % (sources[0], t)) for t in names)
    return round(time.monotonic() - started, 3), target, table_map


def _write_list(path, lines, identity):
    _files.write_file(path, ('\n'.join(lines) + '\n').encode('utf-8'), identity[0], identity[1], 0o600)


def _quote(name):
    return '"%s"' % name.replace('"', '""')
