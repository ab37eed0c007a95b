#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: restore_verify
short_description: Per-table checksums, row counts and schema of a server's databases - a reference, or a comparison with one
version_added: 0.3.0
description:
  - Reads every table of the given databases in one consistent snapshot per database (REPEATABLE READ, read-only),
    streaming its rows in a deterministic order (primary key, or every column; strings in the C collation, so two
    servers agree whatever their default collation) and hashing them with SHA-256 as they arrive; counts the rows;
    lists the schema (tables, columns, constraints, indexes, views, functions, enums, extensions) as normalised lines.
  - Every database's snapshot is taken before any is read, and RV(point) is the WAL insert location right after -
    the target a point-in-time restore of this moment uses (M(dbfleet.postgresql.pitr_restore) C(target.lsn)).
  - Without O(reference) the result is a reference to keep (register it). With O(reference) it compares - equal row
    counts are the fast first gate, equal checksums the proof - and says per table what differs.
  - O(amcheck) runs amcheck's C(bt_index_check) on every btree index, where the extension is installed (or
    O(amcheck_install) may install it - never on production unless you say so).
  - Changes nothing, unless O(amcheck_install=true) creates the amcheck extension.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
options:
  databases:
    description: Databases to read; every database that accepts connections (templates left out) by default.
    type: list
    elements: str
  tables:
    description: Only these tables (C(schema.table)), in each database; all by default.
    type: list
    elements: str
  schema_map:
    description: For a copy restored into another schema - restored schema name to original schema name; it is compared as the original.
    type: dict
    default: {}
  reference:
    description: A previous result of this module to compare with.
    type: dict
  checksums_must_match:
    description: A table whose content differs from O(reference) is a failure (V(false) - reported only, as for a dump
      expected to be older than the reference).
    type: bool
    default: true
  amcheck:
    description: Check every btree index with amcheck.
    type: bool
    default: false
  amcheck_install:
    description: Create the amcheck extension where it is missing (a change to each database).
    type: bool
    default: false
  heapallindexed:
    description: With O(amcheck), also check that every row is in each index.
    type: bool
    default: false
  schema:
    description: Read (and compare) the schema too.
    type: bool
    default: true
  fail_on_mismatch:
    description: Fail when the comparison finds a difference.
    type: bool
    default: true
attributes:
  check_mode:
    description: Read-only; runs the same in check mode (amcheck is not installed in check mode).
    support: full
  diff_mode:
    description: Never changes anything.
    support: none
requirements:
  - psycopg 3 on the host
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Take a reference now (keep it with the drill's target)
  dbfleet.postgresql.restore_verify:
    databases: [app_prod]
  register: reference

- name: Compare a copy restored into schema restore_orders with the live table
  dbfleet.postgresql.restore_verify:
    databases: [app_prod]
    tables: [restore_orders.orders]
    schema_map: {restore_orders: public}
    reference: "{{ reference_at_dump_time }}"
'''

RETURN = r'''
point:
  description: C(time) and C(lsn) (WAL insert location, or replay location on a standby) right after the last snapshot.
  returned: always
  type: dict
databases:
  description: Per database - C(tables) (C(schema.table) - rows, sha256, bytes, columns, order_by, persistence, seconds),
    C(schema) (lines), C(amcheck), C(lsn) and C(snapshot_at) of its snapshot, or C(error).
  returned: always
  type: dict
verification:
  description: With O(reference) - C(verdict) (verified or failed), C(problems), per database the comparison.
  returned: when O(reference) is given
  type: dict
'''

from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import postgres_common_argument_spec
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import common, verify
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        databases=dict(type='list', elements='str'),
        tables=dict(type='list', elements='str'),
        schema_map=dict(type='dict', default={}),
        reference=dict(type='dict'),
        checksums_must_match=dict(type='bool', default=True),
        amcheck=dict(type='bool', default=False),
        amcheck_install=dict(type='bool', default=False),
        heapallindexed=dict(type='bool', default=False),
        schema=dict(type='bool', default=True),
        fail_on_mismatch=dict(type='bool', default=True),
        run_as=dict(type='str', default='postgres'),
        connect_timeout=dict(type='int', default=10),
    )
    return spec


def table_map(tables, schema_map):
    """``{restored schema.table: reference schema.table}`` for ``tables`` (None: every table)."""
    if not tables:
        return None
    mapped = {}
    for name in tables:
        schema, _dot, table = name.partition('.')
        if not table:
            raise ValueError('tables: %r is not schema.table' % name)
        mapped[name] = '%s.%s' % (schema_map.get(schema, schema), table)
    return mapped


def main():
    module = DbfleetModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    ctx = common.Context(module)
    try:
        tables = table_map(params['tables'], params['schema_map'])
        databases = params['databases'] or ctx.databases(ctx.connection)
    except (ValueError, PgQueryError) as exc:
        module.fail_json(msg=str(exc))
    if params['reference'] is not None:
        options = dict(databases=databases, reference=params['reference'], amcheck=params['amcheck'],
                       heapallindexed=params['heapallindexed'], schema=params['schema'])
        result = common.verify_copy(ctx, ctx.connection, options, tables, params['schema_map'],
                                    checksums_must_match=params['checksums_must_match'],
                                    amcheck_install=params['amcheck_install'] and not module.check_mode)
        out = dict(changed=False, verification=result, point=result.get('point'), databases=result['databases'])
        if result['verdict'] == 'failed' and params['fail_on_mismatch']:
            module.fail_json(msg='Not equal to the reference: %s' % '; '.join(result['problems']), **out)
        module.exit_json(**out)
    try:
        reply = verify.scan(ctx.connection, databases, run_as=ctx.run_as, password=ctx.password,
                            tables=dict((db, tables) for db in databases) if tables else None, schema=params['schema'],
                            amcheck=params['amcheck'], heapallindexed=params['heapallindexed'],
                            amcheck_install=params['amcheck_install'] and not module.check_mode)
    except verify.VerifyError as exc:
        module.fail_json(msg=str(exc))
    errors = ['%s: %s' % (db, data['error']) for db, data in reply['databases'].items() if data.get('error')]
    if errors:
        module.fail_json(msg='; '.join(errors), **reply)
    module.exit_json(changed=False, **reply)


if __name__ == '__main__':
    main()
