# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a database holds, as numbers that can be compared: per-table SHA-256 and row counts, the schema as
normalised lines, amcheck on the btree indexes. Runs in a child process as the OS user that may connect
(``_restore.verify`` sends this module's source to ``python -I -c``), so it needs only the standard library and,
in :func:`main`, psycopg 3.

Rows are streamed with ``COPY (SELECT ... ORDER BY ...) TO STDOUT`` and hashed in Python as they arrive: nothing
builds a big string in SQL or holds a table in memory. The text COPY writes depends on a few settings, pinned for
every session (:data:`SESSION_SETTINGS`), and on the order, which is the primary key's (or every column's) with
strings compared in the "C" collation, so two servers with different default collations agree.

Every database's snapshot is taken before any of them is read (REPEATABLE READ, read-only), so the reference of
a whole cluster is as close to one moment as PostgreSQL allows (it has no snapshot across databases); the
insert LSN read after the last snapshot is the point a point-in-time restore compares against.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re
import sys
import time

SESSION_SETTINGS = (("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"),
                    ("extra_float_digits", "1"), ("bytea_output", "hex"), ("statement_timeout", "0"),
                    ("lock_timeout", "30s"), ("search_path", "pg_catalog"))
# Type categories (pg_type.typcategory) whose btree order is the same on every server: numbers, booleans,
# date/time, intervals, bit strings, enums (by their declared order). Strings sort in "C"; anything else
# (arrays, json, geometry, ...) by its text in "C".
NATIVE_ORDER = frozenset("NBDTVE")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")

TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2, 3"""
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation <> 0, t.typcategory
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
PRIMARY_KEY_SQL = """
SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord"""
SCHEMA_SQL = (
    ("table", """SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"""),
    ("column", """SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
        coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attgenerated::text, a.attidentity::text FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped"""),
    ("constraint", """SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"""),
    ("index", """SELECT n.nspname, t.relname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace"""),
    ("view", """SELECT n.nspname, c.relname, md5(pg_get_viewdef(c.oid)) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')"""),
    ("function", """SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"""),
    ("enum", """SELECT n.nspname, t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
        JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace GROUP BY 1, 2"""),
    ("extension", "SELECT 'database', extname, extversion FROM pg_extension"),
)
BTREE_INDEXES_SQL = """
SELECT c.oid, n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't' ORDER BY 2, 3"""
_INDEX_DEF_RE = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (ONLY )?\S+ (USING .*)$")


def quote_ident(name):
    """An identifier as PostgreSQL quotes it (always quoted here: simplest, and always right)."""
    return '"%s"' % name.replace('"', '""')


def order_expression(column, collatable, category):
    """The ORDER BY item for one column: the same order on every server."""
    ident = quote_ident(column)
    if category in NATIVE_ORDER:
        return ident
    if category == "S" and collatable:
        return '%s COLLATE "C"' % ident
    return '(%s)::text COLLATE "C"' % ident


def copy_statement(schema, table, columns, order_by):
    """``COPY (SELECT cols FROM ONLY schema.table ORDER BY ...) TO STDOUT``.

    ``columns``: ``[(name, type, collatable, category)]`` in attnum order; ``order_by``: the column names to sort by.
    """
    info = dict((col[0], col) for col in columns)
    order = [order_expression(name, info[name][2], info[name][3]) for name in order_by]
    return "COPY (SELECT %s FROM ONLY %s.%s%s) TO STDOUT" % (
        ", ".join(quote_ident(col[0]) for col in columns) or "NULL", quote_ident(schema), quote_ident(table),
        " ORDER BY " + ", ".join(order) if order else "")


def normalise_schema_row(kind, row):
    """One schema line as a list of strings; an index definition loses its ``ON schema.table`` (kept in the fields)."""
    row = ["" if value is None else str(value) for value in row]
    if kind == "index":
        match = _INDEX_DEF_RE.match(row[3])
        if match:
            row[3] = "%sINDEX %s" % (match.group(1) or "", match.group(4))
    return [kind] + row


def _hash_copy(cur, statement):
    digest, rows, size = hashlib.sha256(), 0, 0
    with cur.copy(statement) as copy:
        for data in copy:
            chunk = bytes(data)
            digest.update(chunk)
            rows += chunk.count(b"\n")
            size += len(chunk)
    return digest.hexdigest(), rows, size


def scan_tables(conn, wanted=None, reference=None):
    """``{"schema.table": {rows, sha256, bytes, columns, order_by, persistence, seconds}}`` for the tables of ``conn``.

    ``wanted``: ``{"schema.table": "reference schema.table"}``, only those tables (None: every user table);
    ``reference``: a previous scan's tables, whose sort orders are used for the tables it has (a table restored
    without its primary key, or into another schema, still sorts like the original).
    """
    cur = conn.cursor()
    found = {}
    for oid, schema, table, persistence in cur.execute(TABLES_SQL).fetchall():
        name = "%s.%s" % (schema, table)
        if wanted is not None and name not in wanted:
            continue
        columns = [tuple(row) for row in cur.execute(COLUMNS_SQL, (oid,)).fetchall()]
        ref = (reference or {}).get(wanted[name] if wanted is not None else name) or {}
        names = [col[0] for col in columns]
        order_by = ref.get("order_by") or [row[0] for row in cur.execute(PRIMARY_KEY_SQL, (oid,)).fetchall()] or names
        order_by = [col for col in order_by if col in names]
        started = time.monotonic()
        sha256, rows, size = _hash_copy(cur, copy_statement(schema, table, columns, order_by))
        found[name] = dict(rows=rows, sha256=sha256, bytes=size, columns=[[c[0], c[1]] for c in columns],
                           order_by=order_by, persistence=persistence, seconds=round(time.monotonic() - started, 3))
    return found


def scan_schema(conn):
    """The schema of ``conn``'s database (outside the system schemas) as sorted lines."""
    cur = conn.cursor()
    lines = []
    for kind, statement in SCHEMA_SQL:
        for row in cur.execute(statement).fetchall():
            if kind != "extension" and (row[0] in SYSTEM_SCHEMAS or row[0].startswith(("pg_toast", "pg_temp_"))):
                continue
            lines.append(normalise_schema_row(kind, row))
    return sorted(lines)


def run_amcheck(conn, heapallindexed):
    """bt_index_check on every btree index; ``{checked, failed: [{index, error}], seconds}``."""
    started = time.monotonic()
    cur = conn.cursor()
    failed, checked = [], 0
    for oid, schema, name in cur.execute(BTREE_INDEXES_SQL).fetchall():
        try:
            cur.execute("SELECT bt_index_check(%s::regclass, %s)", (oid, heapallindexed))
            checked += 1
        except Exception as exc:  # pylint: disable=broad-except  # one bad index is a finding, not the end
            failed.append(dict(index="%s.%s" % (schema, name), error=str(exc).strip()))
    return dict(checked=checked, failed=failed, seconds=round(time.monotonic() - started, 3))


def _session(psycopg, conninfo, db):
    conn = psycopg.connect(autocommit=True, **dict(conninfo, dbname=db))
    for name, value in SESSION_SETTINGS:
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    return conn


def scan(psycopg, req):
    """Every database of the request: snapshots first, then tables, schema and amcheck. Returns the reply dict."""
    sessions, reply = {}, {"databases": {}}
    try:
        for db in req["databases"]:
            try:
                conn = _session(psycopg, req["conninfo"], db)
            except Exception as exc:  # pylint: disable=broad-except
                reply["databases"][db] = {"error": "cannot connect to database %s: %s" % (db, str(exc).strip())}
                continue
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = conn.execute("SELECT clock_timestamp(), pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() "
                               "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END::text").fetchone()
            sessions[db] = conn
            reply["databases"][db] = {"snapshot_at": row[0].isoformat(), "in_recovery": row[1], "lsn": row[2]}
        point = sessions and next(iter(sessions.values())).execute(
            "SELECT clock_timestamp(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
            "ELSE pg_current_wal_insert_lsn() END::text").fetchone()
        if point:
            reply["point"] = {"time": point[0].isoformat(), "lsn": point[1]}
        for db, conn in sessions.items():
            out = reply["databases"][db]
            wanted = (req.get("tables") or {}).get(db)
            try:
                started = time.monotonic()
                out["tables"] = scan_tables(conn, wanted, (req.get("reference") or {}).get(db))
                out["schema"] = scan_schema(conn) if req.get("schema", True) else None
                out["scan_seconds"] = round(time.monotonic() - started, 3)
                conn.execute("COMMIT")
                if req.get("amcheck"):
                    if req.get("amcheck_install") and not out["in_recovery"]:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
                    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone():
                        out["amcheck"] = run_amcheck(conn, bool(req.get("heapallindexed")))
                    else:
                        out["amcheck"] = {"skipped": "the amcheck extension is not installed in %s" % db}
            except Exception as exc:  # pylint: disable=broad-except
                out["error"] = "reading database %s failed: %s" % (db, str(exc).strip())
    finally:
        for conn in sessions.values():
            conn.close()
    return reply


def main():
    """The child: one JSON request on stdin, one JSON reply on stdout; exit 3 without psycopg."""
    req = json.loads(sys.stdin.read())
    try:
        import psycopg  # pylint: disable=import-outside-toplevel,import-error
    except ImportError as exc:
        sys.stdout.write(json.dumps({"error": "psycopg is not importable: %s" % exc, "stage": "import"}))
        return 3
    sys.stdout.write(json.dumps(scan(psycopg, req), default=str))
    return 0
