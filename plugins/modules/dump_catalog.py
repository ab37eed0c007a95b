#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: dump_catalog
short_description: List the dumps in a backup directory from their manifests, and the newest good one per database
version_added: 0.2.0
description:
  - Reads the manifests the dump runner writes beside each dump (C(DB-STAMP.manifest.json)) in O(path) and returns every
    (database, stamp) set with its status, and per database the newest one whose manifest says C(ok) and whose dump
    is there - what to ship off-site or restore from.
  - The same rules as the runner's retention - newest by the stamp in the name, never by mtime; a dump stamped in the
    future is listed but never the newest; a manifest that says C(ok) for a dump that is gone is C(missing).
  - Never changes anything.
extends_documentation_fragment:
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  path:
    description:
      - The backup directory, such as C(/srv/backups).
    type: path
    required: true
  databases:
    description:
      - Only these databases (artifact names; C(globals) is the globals dump, C(base) base backups). All by default.
    type: list
    elements: str
    default: []
  kinds:
    description:
      - Only these manifest kinds.
    type: list
    elements: str
    choices: [database, globals, basebackup]
    default: [database, globals, basebackup]
seealso:
  - module: dbfleet.postgresql.backup_status
    description: The same facts per schedule, with freshness and size verdicts.
  - module: dbfleet.postgresql.send_file
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: What is the newest good dump of each database here?
  dbfleet.postgresql.dump_catalog:
    path: /srv/backups
  register: catalog

- name: Ship them
  dbfleet.postgresql.send_file:
    path: "{{ item.path }}"
    to: backup-box
    dest: "/srv/offsite/{{ inventory_hostname }}/{{ item.name }}"
  loop: "{{ catalog.newest }}"
'''

RETURN = r'''
newest:
  description:
    - Per database, the newest good dump, oldest database name first - db, stamp, kind, name, path, manifest (its
      path), manifest_name, size, sha256 (a tree SHA-256 for a directory), is_dir, files (how many, for a directory).
  returned: always
  type: list
  elements: dict
entries:
  description: Every (database, stamp) set found - db, stamp, status (ok, failed, missing, unknown, future), dumps, manifest.
  returned: always
  type: list
  elements: dict
missing_good:
  description: Databases that have dumps here but no good one.
  returned: always
  type: list
  elements: str
'''

import datetime
import json
import os

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath, read_regular
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import parse_artifact_name, utcnow
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.retention import FUTURE_SLACK, collect_entries
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

MANIFEST_LIMIT = 4 * 1024 * 1024


def _kind(manifest_path):
    """The ``kind`` the manifest records (database, globals, basebackup), or None."""
    try:
        data = json.loads((read_regular(manifest_path, MANIFEST_LIMIT) or b'null').decode('utf-8'))
    except (OSError, ValueError, UnsafePath):
        return None
    return data.get('kind') if isinstance(data, dict) else None


def catalog(path, databases, kinds, now):
    """``(entries, newest, missing_good)`` of the backup directory ``path``."""
    names = os.listdir(path)
    dbs = set(parsed['db'] for parsed in (parse_artifact_name(name) for name in names) if parsed)
    if databases:
        dbs &= set(databases)
    entries, newest, seen = [], {}, set()
    for entry in collect_entries(path, dbs):
        kind = _kind(entry['manifest']) if entry['manifest'] else None
        if kind is not None and kind not in kinds:
            continue
        seen.add(entry['db'])
        status = entry['status']
        when = parse_artifact_name(os.path.basename((entry['dumps'] or [entry['manifest']])[0]))['when']
        if when > now + FUTURE_SLACK:
            status = 'future'
        entries.append(dict(db=entry['db'], stamp=entry['stamp'], status=status, kind=kind, manifest=entry['manifest'],
                            dumps=entry['dumps']))
        if status != 'ok':
            continue
        recorded = entry['recorded']
        dump = os.path.join(path, os.path.basename(recorded['path']))
        best = newest.get(entry['db'])
        if best is None or best['stamp'] < entry['stamp']:
            newest[entry['db']] = dict(
                db=entry['db'], stamp=entry['stamp'], kind=kind, name=os.path.basename(dump), path=dump,
                manifest=entry['manifest'], manifest_name=os.path.basename(entry['manifest']), size=recorded['size'],
                sha256=recorded['sha256'], is_dir=recorded.get('files') is not None,
                files=len(recorded['files']) if recorded.get('files') else None)
    return entries, [newest[db] for db in sorted(newest)], sorted(seen - set(newest))


def main():
    module = DbfleetModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            databases=dict(type='list', elements='str', default=[]),
            kinds=dict(type='list', elements='str', choices=['database', 'globals', 'basebackup'],
                       default=['database', 'globals', 'basebackup']),
        ),
        supports_check_mode=True,
    )
    path = module.params['path']
    if not os.path.isdir(path) or os.path.islink(path):
        module.fail_json(msg='%s is not a directory (or is a symlink): no backups there to list' % path)
    try:
        entries, newest, missing = catalog(path, module.params['databases'], module.params['kinds'], utcnow())
    except OSError as exc:
        module.fail_json(msg='cannot read the backup directory %s: %s' % (path, exc))
    for item in newest:
        module.require_allowed_path(item['path'], 'path')
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    module.exit_json(changed=False, entries=entries, newest=newest, missing_good=missing, listed_at=stamp,
                     msg='%d database(s) with a good dump in %s%s' % (
                         len(newest), path, '; none good for: %s' % ', '.join(missing) if missing else ''))


if __name__ == '__main__':
    main()
