#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: dump_restore
short_description: Restore a dump runner's dump into a throwaway instance, a scratch database, or one table into a scratch schema
version_added: 0.3.0
description:
  - Restores a logical dump the dump runner made (O(dump), or the newest good one of O(database) in O(dump_dir)),
    never over anything that exists - O(into=instance) a fresh throwaway cluster on a spare port (socket only,
    C(archive_mode=off)), as a drill does; O(into=database) a new scratch database on the server of the connection
    options; O(into=schema) - the commonest restore - only O(tables) (or O(schemas)) of it into the new schema
    O(into_schema) of O(target_database) beside the live objects, which are not touched.
  - The dump must be the one its manifest names (SHA-256 while it is read). A compressed custom archive
    (C(.dump.zst), what the runner writes) is decompressed into a file first, so C(pg_restore) restores it in
    parallel (O(jobs)); owners and privileges are left out (the copy belongs to the restoring role).
  - Verifies the restored copy when O(verify) is given (checksums, row counts, schema and amcheck against a
    reference from M(dbfleet.postgresql.restore_verify)), then removes the instance or scratch database unless
    O(keep=true). A partial restore is kept (that is its point).
  - To restore from the bucket, fetch the dump with M(dbfleet.postgresql.s3_copy) (O(dbfleet.postgresql.s3_copy#module:direction=download),
    verified against its manifest) and point O(dump) at it; to restore from a backup host, run this module there
    (C(delegate_to)), into its own throwaway instance or into a server it reaches over TCP.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.restore
options:
  dump:
    description: The dump file (or directory-format dump); its runner manifest is read from beside it.
    type: path
  dump_dir:
    description: Where to find the newest good dump of O(database) (by its manifest), when O(dump) is not given.
    type: path
    default: /srv/backups
  database:
    description: The database whose dump to restore (with O(dump_dir)); also its name in a throwaway instance.
    type: str
  stamp:
    description: A dump's stamp (C(20260612T030000Z)) instead of the newest.
    type: str
  into:
    description: Where the dump goes - V(instance), V(database) or V(schema).
    type: str
    choices: [instance, database, schema]
    default: instance
  scratch_database:
    description: Name of the new database (O(into=database)); C(restore_DB_STAMP) by default. Must not exist.
    type: str
  target_database:
    description: The database the scratch schema is made in (O(into=schema)), e.g. the live one.
    type: str
  into_schema:
    description: The new schema (O(into=schema)); C(restore_STAMP) by default. Must not exist.
    type: str
  tables:
    description: Tables to restore (O(into=schema)), C(schema.table) or C(table) (in C(public)), all of one schema.
    type: list
    elements: str
    default: []
  schemas:
    description: A schema to restore whole instead (O(into=schema)); foreign keys are left out.
    type: list
    elements: str
    default: []
  jobs:
    description: Parallel C(pg_restore) jobs.
    type: int
    default: 2
  name:
    description: Name of the work directory (and instance) in O(restore_root); C(dump-DB-STAMP) by default.
    type: str
  checksums_must_match:
    description: A table whose content differs from O(verify.reference), or that the copy lacks, or a schema difference,
      is a failure; V(false) for a dump that is expected to be older than the reference - those are then reported, and
      only an incomplete restore (a table of the dump's own table of contents missing) or amcheck fail.
    type: bool
    default: true
attributes:
  check_mode:
    description: Finds the dump, checks its SHA-256 and reports the plan; restores nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
requirements:
  - psycopg 3 on the host; PostgreSQL client (and, for O(into=instance), server) binaries of the dump's major version
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Drill - last night's app_prod dump into a throwaway instance, verified, then removed
  dbfleet.postgresql.dump_restore:
    database: app_prod
    verify:
      reference: "{{ reference }}"
    checksums_must_match: false

- name: Someone deleted rows in orders at 14:02 - bring last night's table back beside the live one
  dbfleet.postgresql.dump_restore:
    database: app_prod
    into: schema
    target_database: app_prod
    tables: [public.orders]
    into_schema: restore_orders
'''

RETURN = r'''
dump:
  description: The dump restored - C(path), C(stamp), C(started_at) (its snapshot time), C(sha256), C(size).
  returned: always
  type: dict
into:
  description: Where it went - C(kind), C(database), C(schema), C(instance) (directory, socket_directory, port), C(removed).
  returned: always
  type: dict
restore_seconds:
  description: Seconds pg_restore took.
  returned: when restored
  type: float
rto_seconds:
  description: Seconds from the start to a restored copy (decompress, instance, restore).
  returned: when restored
  type: float
rpo_seconds:
  description: Seconds between the dump's snapshot and the reference (what a restore of this dump loses).
  returned: when O(verify.reference) is given
  type: float
verification:
  description: Reference vs restored per database (C(verdict), C(problems), C(databases)).
  returned: when O(verify) was given
  type: dict
'''

import threading
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import postgres_common_argument_spec
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import common, dumprun, instance, logical
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import TargetError, parse_time
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import format_stamp, utcnow
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(common.restore_argument_spec())
    spec.update(
        dump=dict(type='path'),
        dump_dir=dict(type='path', default='/srv/backups'),
        database=dict(type='str'),
        stamp=dict(type='str'),
        into=dict(type='str', choices=['instance', 'database', 'schema'], default='instance'),
        scratch_database=dict(type='str'),
        target_database=dict(type='str'),
        into_schema=dict(type='str'),
        tables=dict(type='list', elements='str', default=[]),
        schemas=dict(type='list', elements='str', default=[]),
        jobs=dict(type='int', default=2),
        name=dict(type='str'),
        checksums_must_match=dict(type='bool', default=True),
    )
    return spec


class Background:
    """A call running in a thread (the dump decompresses while the throwaway instance is made); :meth:`result` waits."""

    def __init__(self, call, *args):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call, args))
        self.thread.start()

    def _run(self, call, args):
        try:
            self.value = call(*args)
        except Exception as exc:  # pylint: disable=broad-except  # raised again in the caller's thread
            self.error = exc

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def locate(params):
    """``(manifest, path)`` of the dump to restore."""
    if params['dump']:
        manifest = logical.manifest_of(params['dump'])
        if manifest is None:
            raise logical.DumpError('%s has no runner manifest beside it (DB-STAMP.manifest.json): dbfleet restores only '
                                    'dumps it can prove intact' % params['dump'])
        return manifest, params['dump']
    if not params['database']:
        raise logical.DumpError('give dump (a file) or database (with dump_dir)')
    manifest = logical.find_dump(params['dump_dir'], params['database'], params['stamp'])
    return manifest, manifest['path']


def split_tables(tables):
    return [tuple(name.split('.', 1)) if '.' in name else ('public', name) for name in tables]


def rpo(manifest, reference):
    """Seconds between the dump's snapshot (its start) and the reference's point, when both are known."""
    try:
        return round((parse_time((reference or {}).get('point', {}).get('time', '').replace('+00:00', 'Z'))
                      - parse_time(manifest.get('started_at') or '')).total_seconds(), 3)
    except (TargetError, AttributeError):
        return None


def main():
    module = DbfleetModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[('into', 'schema', ('target_database',))])
    params = module.params
    ctx = common.Context(module)
    module.require_write_destination(params['restore_root'], 'restore_root')
    started = time.monotonic()
    try:
        manifest, path = locate(params)
    except logical.DumpError as exc:
        module.fail_json(msg=str(exc))
    database = manifest.get('db') or params['database']
    stamp = format_stamp(utcnow())
    ctx.bin_dir = ctx.find_bin_dir(common.major_of(manifest.get('pg_dump_version')))
    result = dict(changed=not module.check_mode, dump=dict((key, manifest.get(key)) for key in (
        'path', 'stamp', 'started_at', 'sha256', 'size', 'format', 'compression')), into=dict(kind=params['into']))
    result['dump']['path'] = path
    if params['into'] == 'schema' and not (params['tables'] or params['schemas']):
        module.fail_json(msg='into=schema restores tables or schemas: give tables (or schemas)', **result)
    if module.check_mode:
        try:
            logical.check_dump(manifest, path)
        except logical.DumpError as exc:
            module.fail_json(msg=str(exc), **result)
        module.exit_json(**result)
    name = params['name'] or 'dump-%s-%s' % (database, stamp)
    workspace = inst = ready = None
    scratch = None
    try:
        workspace = dumprun.Workspace(params['restore_root'], name, ctx.identity, ctx.connection, ctx.password)
        table_map = schema_map = None
        if params['into'] == 'instance':
            inst = instance.Instance(params['restore_root'], name + '-instance', ctx.identity, ctx.bin_dir,
                                     params['port'] or instance.spare_port())
            ready = Background(logical.prepare_archive, manifest, path, workspace.work, ctx.identity)
            seconds, connection = dumprun.into_instance(ctx, ready.result, database, params['jobs'], inst)
            archive, fmt = ready.result()
            result['into'].update(database=database, instance=dict(directory=inst.directory, socket_directory=inst.socket_dir,
                                                                   port=inst.port))
        elif params['into'] == 'database':
            archive, fmt = logical.prepare_archive(manifest, path, workspace.work, ctx.identity)
            scratch = params['scratch_database'] or 'restore_%s_%s' % (database.lower(), stamp.lower())
            seconds, connection = dumprun.into_database(ctx, archive, fmt, params['jobs'], workspace, scratch)
            result['into'].update(database=scratch)
        else:
            archive, fmt = logical.prepare_archive(manifest, path, workspace.work, ctx.identity)
            into = params['into_schema'] or 'restore_%s' % stamp.lower()
            seconds, connection, table_map = dumprun.into_schema(ctx, archive, workspace, params['target_database'], into,
                                                                 split_tables(params['tables']), params['schemas'], stamp)
            schema_map = dict((name.split('.', 1)[0], ref.split('.', 1)[0]) for name, ref in table_map.items())
            result['into'].update(database=params['target_database'], schema=into, tables=sorted(table_map))
        result.update(restore_seconds=seconds, rto_seconds=round(time.monotonic() - started, 3))
        if params['into'] != 'schema' and fmt != 'plain':
            lacking = dumprun.incomplete(ctx, archive, connection, logical.tool_env({}, None))
            if lacking:
                raise logical.DumpError('the restore is incomplete: the dump holds data of %s, which the restored database '
                                        'lacks (see pg_restore\'s errors above)' % ', '.join(lacking))
        if params['verify'] is not None:
            options = dict(params['verify'])
            options['databases'] = options.get('databases') or [connection['dbname']]
            if params['into'] == 'schema':
                options['amcheck'] = False
            result['verification'] = common.verify_copy(
                ctx, connection, options, table_map, schema_map, checksums_must_match=params['checksums_must_match'],
                amcheck_install=params['into'] != 'schema', database_map={connection['dbname']: database},
                schema_must_match=params['checksums_must_match'])
            result['rpo_seconds'] = rpo(manifest, options.get('reference'))
    except (logical.DumpError, instance.InstanceError, ValueError, PgQueryError, OSError, UnsafePath) as exc:
        if ready is not None:
            ready.thread.join()
        cleanup(ctx, params, workspace, inst, scratch, result)
        module.fail_json(msg='Restore of %s failed: %s' % (path, exc), **result)
    cleanup(ctx, params, workspace, inst, scratch, result)
    verification = result.get('verification')
    if verification and verification['verdict'] == 'failed' and params['fail_on_mismatch']:
        module.fail_json(msg='The restored copy of %s does not match: %s' % (path, '; '.join(verification['problems'])),
                         **result)
    module.exit_json(**result)


def cleanup(ctx, params, workspace, inst, scratch, result):
    """Remove what the restore made, unless keep: the instance, the scratch database, the work files."""
    keep = params['keep']
    if inst is not None and not keep:
        inst.remove()
    if scratch and not keep:
        try:
            dumprun.drop_database(ctx, ctx.connection, scratch)
        except (PgQueryError, ValueError):
            result.setdefault('warnings_left', []).append('scratch database %s could not be dropped' % scratch)
    if workspace is not None:
        workspace.remove()
    result['into']['removed'] = not keep and params['into'] != 'schema'


if __name__ == '__main__':
    main()
