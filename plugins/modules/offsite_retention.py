#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: offsite_retention
short_description: Keep the newest copies a backup host received from one source, and only ever prune its own
version_added: 0.2.0
description:
  - Runs on a backup host, on the directory that holds one source host's off-site copies (such as
    C(/srv/offsite/db-primary)). A ledger in that directory (C(.dbfleet-offsite.json)) lists the copies shipped there
    (O(record) adds them, as C(playbooks/ship_offsite.yml) does after each verified copy) with their manifests.
  - Per database, the newest O(keep) copies in the ledger are kept, whatever their age; older ledger copies (the dump
    and its manifest) are removed. Nothing that is not in the ledger is ever removed or even looked at, so a directory
    someone else writes to, or a copy put there by hand, is safe.
  - A ledger recorded for another source is refused, so pointing the module at the wrong directory removes nothing.
  - Check and plan mode report what would be removed.
extends_documentation_fragment:
  - dbfleet.postgresql.safety
options:
  path:
    description:
      - The directory of one source's copies.
    type: path
    required: true
  source:
    description:
      - The source host the copies come from (its inventory name); recorded in the ledger and checked against it.
    type: str
    required: true
  keep:
    description:
      - How many of the newest copies of each database to keep (at least 1).
    type: int
    default: 7
  record:
    description:
      - Copies just shipped into O(path), to add to the ledger before pruning - each C(name) (the dump's file or
        directory name), C(sha256) and C(manifest) (the manifest's file name beside it).
      - A copy is recorded only when it is there and named like a runner dump (C(DB-STAMP.EXT)).
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    description: Removes and records nothing; RV(pruned) says what would go.
    support: full
  diff_mode:
    description: Not supported; RV(pruned) and RV(kept) say what changes.
    support: none
notes:
  - Removals are not backed up in C(edit) mode - removing old copies is the point; the newest O(keep) stay.
seealso:
  - module: dbfleet.postgresql.send_file
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Record tonight's copy from db-primary and keep the newest 7 per database
  dbfleet.postgresql.offsite_retention:
    path: /srv/offsite/db-primary
    source: db-primary
    keep: 7
    record:
      - name: app_prod-20260618T030000Z.dump.zst
        sha256: "{{ shipped.sha256 }}"
        manifest: app_prod-20260618T030000Z.manifest.json
'''

RETURN = r'''
kept:
  description: Ledger copies kept, newest first per database (names).
  returned: always
  type: list
  elements: str
pruned:
  description: Copies removed (or that would be, in check mode), each with its manifest.
  returned: always
  type: list
  elements: str
recorded:
  description: Copies added to the ledger by this run.
  returned: always
  type: list
  elements: str
forgotten:
  description: Ledger entries dropped because their copy was no longer there (removed by someone else).
  returned: always
  type: list
  elements: str
'''

import json
import os
import stat

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.landing import remove_tree_at
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import iso, parse_artifact_name, utcnow
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

LEDGER = '.dbfleet-offsite.json'
LEDGER_LIMIT = 16 * 1024 * 1024


def read_ledger(module, path, source):
    raw = _files.read_regular(os.path.join(path, LEDGER), LEDGER_LIMIT)
    if raw is None:
        return {'source': source, 'copies': {}}
    try:
        ledger = json.loads(raw.decode('utf-8'))
    except ValueError:
        module.fail_json(msg='the ledger %s/%s is not JSON: fix or remove it (nothing was pruned)' % (path, LEDGER))
    if not isinstance(ledger, dict) or not isinstance(ledger.get('copies'), dict):
        module.fail_json(msg='the ledger %s/%s is not a dbfleet off-site ledger: nothing was pruned' % (path, LEDGER))
    if ledger.get('source') != source:
        module.fail_json(msg='%s holds the copies of %r, not of %r: wrong directory? nothing was pruned'
                             % (path, ledger.get('source'), source))
    return ledger


def plan(copies, keep):
    """``(kept, pruned)`` names: per database the newest ``keep`` ledger copies by the stamp in their names."""
    by_db = {}
    for name in copies:
        parsed = parse_artifact_name(name)
        if parsed is not None:
            by_db.setdefault(parsed['db'], []).append((parsed['stamp'], name))
    kept, pruned = [], []
    for db in sorted(by_db):
        ordered = [name for _stamp, name in sorted(by_db[db], reverse=True)]
        kept.extend(ordered[:keep])
        pruned.extend(ordered[keep:])
    return kept, pruned


def _present(dir_fd, name):
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)


def main():
    module = DbfleetModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            source=dict(type='str', required=True),
            keep=dict(type='int', default=7),
            record=dict(type='list', elements='dict', default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = params['path'].rstrip('/') or '/'
    module.require_write_destination(path, 'path')
    if params['keep'] < 1:
        module.fail_json(msg='keep must be at least 1: the newest copy always stays')
    try:
        dir_fd = _files.open_dir(path)
    except (OSError, _files.UnsafePath) as exc:
        module.fail_json(msg='cannot open %s: %s' % (path, exc))
    try:
        ledger = read_ledger(module, path, params['source'])
        copies = ledger['copies']
        recorded, forgotten = [], []
        for item in params['record']:
            name = str(item.get('name') or '')
            parsed = parse_artifact_name(name)
            if parsed is None or parsed['kind'] != 'dump' or not _present(dir_fd, name):
                module.fail_json(msg='cannot record %r: not a dump name (DB-STAMP.EXT) or not in %s' % (name, path))
            manifest = item.get('manifest')
            if manifest is not None and (parse_artifact_name(str(manifest)) or {}).get('kind') != 'manifest':
                module.fail_json(msg='cannot record manifest %r of %s: not a manifest name' % (manifest, name))
            if copies.get(name, {}).get('sha256') != item.get('sha256') or name not in copies:
                copies[name] = dict(sha256=item.get('sha256'), manifest=manifest, recorded_at=iso(utcnow()))
                recorded.append(name)
        for name in sorted(copies):
            if not _present(dir_fd, name):
                forgotten.append(name)
                del copies[name]
        kept, pruned = plan(copies, params['keep'])
        removed = []
        for name in pruned:
            entry = copies.pop(name)
            removed.append(name)
            manifest = entry.get('manifest')
            described = parse_artifact_name(manifest) if isinstance(manifest, str) else None
            if described is not None and described['kind'] == 'manifest' and _present(dir_fd, manifest):
                removed.append(manifest)
        changed = bool(recorded or forgotten or removed)
        if changed and not module.check_mode:
            for name in removed:
                remove_tree_at(dir_fd, name)
            os.fsync(dir_fd)
            data = (json.dumps(ledger, indent=2, sort_keys=True) + '\n').encode('utf-8')
            _files.write_file(os.path.join(path, LEDGER), data, 0, 0, 0o640)
    except (OSError, _files.UnsafePath) as exc:
        module.fail_json(msg='off-site retention in %s failed: %s' % (path, exc))
    finally:
        os.close(dir_fd)
    note = ' (check mode: nothing removed)' if module.check_mode and removed else ''
    module.exit_json(changed=changed, kept=kept, pruned=removed, recorded=recorded, forgotten=forgotten,
                     msg='%s: %d kept, %d removed%s' % (path, len(kept), len(pruned), note))


if __name__ == '__main__':
    main()
