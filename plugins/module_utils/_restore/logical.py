# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logical restore of the dump runner's dumps: finding the dump and proving it is the one its manifest names,
turning it into something ``pg_restore -j`` can read in parallel, and the partial restore of one table or schema
into a scratch schema beside production.

The runner writes custom archives as ``pg_dump -Fc -Z0 | zstd`` (once compressed, fast): ``pg_restore`` cannot read
a pipe in parallel, so the dump is decompressed into a file first -- zstd decompresses far faster than pg_restore
restores, so this costs little (benchmarks/bench_restore.py) -- and hashed on the way, against the manifest. The
dump format the runner writes stays as it is.

A partial restore never touches the live objects: the selected table (with its primary key, unique and check
constraints; not its foreign keys, which would tie the copy to live tables) or schema is restored into a temporary
database, its schema renamed there, and that schema alone moved into the target database with pg_dump/pg_restore.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import _as
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import stream
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_file, hash_tree
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.libpq import libpq_env
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.log import stderr_summary
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import parse_artifact_name

# Longest first: "TABLE DATA" before "TABLE".
_TOC_KINDS = ('MATERIALIZED VIEW DATA', 'FK CONSTRAINT', 'TABLE DATA', 'SEQUENCE SET', 'SEQUENCE OWNED BY', 'CONSTRAINT',
              'SEQUENCE', 'DEFAULT', 'TABLE', 'INDEX', 'SCHEMA', 'COMMENT', 'ACL', 'VIEW', 'TRIGGER', 'FUNCTION', 'TYPE')
_TOC_RE = re.compile(r'^(\d+); (\d+) (\d+) (.*)$')
_IDENT_RE = re.compile(r'^[a-z_][a-z0-9_$]{0,62}$')


class DumpError(Exception):
    """A dump that cannot be restored as asked, in words."""


def find_dump(dump_dir, database, stamp=None):
    """The runner manifest of the newest good dump of ``database`` in ``dump_dir`` (or the one of ``stamp``)."""
    try:
        names = sorted(os.listdir(dump_dir), reverse=True)
    except OSError as exc:
        raise DumpError('cannot list the dumps in %s: %s' % (dump_dir, exc))
    seen = []
    for name in names:
        parsed = parse_artifact_name(name)
        if not parsed or parsed['kind'] != 'manifest' or parsed['db'] != database or (stamp and parsed['stamp'] != stamp):
            continue
        try:
            data = json.loads(_files.read_regular(os.path.join(dump_dir, name), 1 << 22) or b'null')
        except (OSError, ValueError, _files.UnsafePath):
            continue
        seen.append(name)
        if isinstance(data, dict) and data.get('status') == 'ok' and data.get('kind') == 'database' and data.get('path'):
            data['path'] = os.path.join(dump_dir, os.path.basename(data['path']))
            if os.path.lexists(data['path']):
                return data
    raise DumpError('no good dump of %s in %s%s (manifests seen: %s)' % (
        database, dump_dir, ' with stamp %s' % stamp if stamp else '', ', '.join(seen[:5]) or 'none'))


def manifest_of(path):
    """The runner manifest beside a dump file ``path`` (``DB-STAMP.manifest.json``), or None."""
    parsed = parse_artifact_name(os.path.basename(path.rstrip('/')))
    if not parsed or parsed['kind'] != 'dump':
        return None
    try:
        data = json.loads(_files.read_regular(os.path.join(os.path.dirname(path), '%s-%s.manifest.json' % (
            parsed['db'], parsed['stamp']))) or b'null')
    except (OSError, ValueError, _files.UnsafePath):
        return None
    return data if isinstance(data, dict) else None


def check_dump(manifest, path):
    """Read-only: the dump (file or directory) is the one its manifest names (its SHA-256 or its files')."""
    if os.path.isdir(path) and not os.path.islink(path):
        if manifest.get('files') and hash_tree(path).listing() != manifest['files']:
            raise DumpError('directory dump %s does not match its manifest (its files or their SHA-256 changed)' % path)
        return
    try:
        got = hash_file(path).hexdigest()
    except OSError as exc:
        raise DumpError('cannot read %s: %s' % (path, exc))
    if manifest.get('sha256') and got != manifest['sha256']:
        raise DumpError('%s is not the dump its manifest names: SHA-256 %s, the manifest says %s; restore another one'
                        % (path, got, manifest['sha256']))


def prepare_archive(manifest, path, work_dir, identity):
    """A file or directory pg_restore can read in parallel, proven to be the dump the manifest names.

    Compressed custom archives are decompressed into ``work_dir`` (hashed on the way); an uncompressed one and a
    directory-format dump are hashed where they are and used in place. Returns ``(archive path, format)``.
    """
    parsed = parse_artifact_name(os.path.basename(path.rstrip('/'))) or {}
    fmt = parsed.get('format') or (manifest or {}).get('format') or 'custom'
    expected = (manifest or {}).get('sha256')
    try:
        compressed = fmt != 'directory' and stream.compression_of(path)
    except stream.StreamError as exc:
        raise DumpError(str(exc))
    if not compressed:
        check_dump(manifest or {}, path)
        return path, fmt
    target = os.path.join(work_dir, 'archive%s' % ('.sql' if fmt == 'plain' else '.dump'))
    try:
        got = stream.decompress_to(path, target, identity)['sha256']
    except stream.StreamError as exc:
        raise DumpError(str(exc))
    if expected and got != expected:
        raise DumpError('%s is not the dump its manifest names: SHA-256 %s, the manifest says %s; restore another one'
                        % (path, got, expected))
    return target, fmt


def parse_toc(text):
    """``[{id, kind, schema, tag, line}]`` from ``pg_restore --list`` output (comments skipped)."""
    entries = []
    for line in text.splitlines():
        match = _TOC_RE.match(line.strip())
        if not match:
            continue
        rest = match.group(4)
        kind = next((k for k in _TOC_KINDS if rest.startswith(k + ' ')), rest.split(' ', 1)[0])
        fields = rest[len(kind) + 1:].split(' ')
        schema, tag = fields[0], ' '.join(fields[1:-1])
        entries.append(dict(id=int(match.group(1)), kind=kind, schema=schema, tag=tag, line=line.strip()))
    return entries


_IDENT = r'("(?:[^"]|"")+"|[^\s."]+)'
_INDEX_SQL_RE = re.compile(r'^CREATE (?:UNIQUE )?INDEX %s ON (?:ONLY )?%s\.%s USING ' % (_IDENT, _IDENT, _IDENT), re.MULTILINE)


def _unquote(name):
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name


def index_tables(sql):
    """``{(schema, index): table}`` from the SQL pg_restore writes for INDEX entries (``CREATE INDEX i ON s.t USING``)."""
    return dict(((_unquote(schema), _unquote(index)), _unquote(table)) for index, schema, table in _INDEX_SQL_RE.findall(sql))


def select_entries(entries, tables=None, schemas=None, indexes=None):
    """The TOC lines of a partial restore: each table with its data, its own constraints and indexes (no foreign
    keys), or every object of each schema except foreign keys. ``indexes``: :func:`index_tables` of the dump.
    ValueError when a selection names nothing in the dump."""
    chosen = []
    indexes = indexes or {}
    for schema, table in tables or []:
        found = [e for e in entries if e['schema'] == schema and (
            (e['kind'] in ('TABLE', 'TABLE DATA') and e['tag'] == table)
            or (e['kind'] == 'CONSTRAINT' and e['tag'].split(' ', 1)[0] == table)
            or (e['kind'] == 'INDEX' and indexes.get((schema, e['tag'])) == table))]
        if not any(e['kind'] == 'TABLE' for e in found):
            raise ValueError('the dump has no table %s.%s' % (schema, table))
        chosen.extend(found)
    for schema in schemas or []:
        found = [e for e in entries if (e['schema'] == schema and e['kind'] not in ('FK CONSTRAINT', 'ACL'))
                 or (e['kind'] == 'SCHEMA' and e['tag'] == schema)]
        if not found:
            raise ValueError('the dump has no schema %s' % schema)
        chosen.extend(found)
    order = dict((e['id'], i) for i, e in enumerate(entries))
    unique = dict((e['id'], e) for e in chosen)
    return [unique[key]['line'] for key in sorted(unique, key=lambda key: order[key])]


def toc_tables(entries):
    """``schema.table`` of every table whose data the dump holds (its TABLE DATA entries)."""
    return sorted('%s.%s' % (e['schema'], e['tag']) for e in entries if e['kind'] == 'TABLE DATA')


def check_identifier(name, what):
    """A schema or database name dbfleet creates: lower-case letters, digits, ``_`` (nothing to quote or escape)."""
    if not _IDENT_RE.match(name or ''):
        raise ValueError('%s %r must be a plain lower-case identifier (letters, digits, _; at most 63)' % (what, name))
    return name


def tool_env(connection, passfile, dbname=None):
    """The libpq environment of a PostgreSQL tool (no PG* inherited; the password only through ``passfile``)."""
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C'}
    values = dict(connection)
    if dbname:
        values['dbname'] = dbname
    env.update(libpq_env(values, passfile=passfile, appname='dbfleet-restore'))
    return env


def run_tool(argv, env, identity, what, timeout=24 * 3600):
    """Run a PostgreSQL tool as ``identity``; its stdout; DumpError with its last words when it fails."""
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd='/',
                          timeout=timeout, check=False, **_as(identity))
    if proc.returncode != 0:
        raise DumpError('%s failed (exit %d): %s' % (what, proc.returncode,
                                                     stderr_summary(proc.stderr.decode('utf-8', 'replace'), 4)))
    return proc.stdout.decode('utf-8', 'replace')


def dbname_conninfo(name):
    """``dbname='...'``: a database name as a libpq connection string, so no name (one with ``=``, a URI) is
    ever read as more than a name."""
    return "dbname='%s'" % name.replace('\\', '\\\\').replace("'", "\\'")


def pg_restore_argv(pg_bin, archive, fmt, jobs, dbname=None, create=False, list_file=None):
    """``pg_restore`` (or ``psql -f`` for a plain dump) restoring ``archive``, owners and privileges left out."""
    target = dbname_conninfo('postgres' if create else dbname)
    if fmt == 'plain':
        return [os.path.join(pg_bin, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target, '-f', archive]
    argv = [os.path.join(pg_bin, 'pg_restore'), '--no-owner', '--no-privileges', '--jobs=%d' % max(1, jobs), '--dbname', target]
    if create:
        argv.append('--create')
    if list_file:
        argv += ['--use-list=%s' % list_file]
    return argv + [archive]
