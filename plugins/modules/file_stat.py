#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: file_stat
short_description: Prove a backup file is there, fresh, the right size and readable
version_added: 0.1.0
description:
  - Looks at one file, given by O(path), or at the newest file matching a glob O(pattern), and returns its size,
    modification time, age and optionally its SHA-256 (streamed, one pass).
  - Gives verdicts an operator can act on. O(max_age) catches a backup that did not run, O(min_size) a file that
    is too small, O(max_size_drop_pct) a dump that suddenly shrank against the previous matching file (a 42 GB
    dump followed by a 200 KB one almost always means C(pg_dump) failed and only an error message was written).
  - O(validate=pg_archive) checks the archive is readable by C(pg_restore --list) (custom, tar and directory
    formats, also when compressed with zstd, gzip or lz4, whose whole stream is checked in the same pass as the
    hash); a plain SQL dump is checked for the closing line C(pg_dump) writes when it finished.
  - Every problem found is a sentence in RV(violations). With O(fail_on_violation=true) any violation fails the
    host, so one stale backup shows up red in the play recap while the other hosts still report.
  - Never changes anything on the host.
extends_documentation_fragment:
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  path:
    description:
      - The file (or directory-format dump, or base backup directory) to look at.
      - Mutually exclusive with O(pattern).
    type: path
  pattern:
    description:
      - An absolute glob; the newest match (by modification time) is looked at and the one before it is the
        previous file for O(max_size_drop_pct).
      - Files ending in C(.manifest.json) are skipped unless the pattern itself ends that way, so
        C(/srv/backups/app_prod-*) finds dumps, not their manifests.
    type: str
  checksum:
    description:
      - Compute the SHA-256 of the file, streamed in one pass (for a directory-format dump or a base backup, a
        SHA-256 over the sorted C(sha256sum)-style listing of its files).
    type: bool
    default: false
  max_age:
    description:
      - Maximum age of the file, as seconds or a duration like V(26h), V(90m), V(1d12h). Older is a violation.
    type: str
  min_size:
    description:
      - Minimum size, as bytes or with a unit (V(200k), V(1.5GB), V(2GiB)). Smaller is a violation.
    type: str
  max_size_drop_pct:
    description:
      - Largest allowed shrink, in percent, of the newest file against the previous matching file. Needs O(pattern).
    type: float
  validate:
    description:
      - V(pg_archive) checks the file is a readable PostgreSQL dump (see the description); for a base backup, that
        its C(backup_manifest) is PostgreSQL's and every compressed tar file's stream is intact.
    type: str
    choices: [none, pg_archive]
    default: none
  pg_restore:
    description:
      - Path of the C(pg_restore) to use for O(validate=pg_archive). By default the newest one installed.
    type: path
  manifest:
    description:
      - Cross-check the file against the JSON manifest the dump runner writes beside each dump
        (C(app_prod-20261122T030000Z.manifest.json) for C(app_prod-20261122T030000Z.dump.zst)).
      - The manifest must say the dump succeeded, and its size must match; with O(checksum=true) its SHA-256 must
        match too. A mismatch means the file was truncated or changed after the dump, or is not the dump the
        manifest describes.
      - V(auto) checks when a manifest is there; V(required) also makes a missing manifest a violation; V(ignore)
        never looks.
    type: str
    choices: [auto, required, ignore]
    default: auto
  fail_on_violation:
    description:
      - Fail the host when RV(violations) is not empty.
    type: bool
    default: false
notes:
  - The path deny-list applies to O(path), to the directory part of O(pattern) and to every file the pattern matches.
seealso:
  - module: dbfleet.postgresql.pg_dump_schedule
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Did last night's dump run, and is it a readable archive of a plausible size?
  dbfleet.postgresql.file_stat:
    pattern: /srv/backups/app_prod-*.dump*
    max_age: 26h
    min_size: 1MB
    max_size_drop_pct: 50
    validate: pg_archive
    checksum: true
    manifest: required
    fail_on_violation: true

- name: Look at one file only
  dbfleet.postgresql.file_stat:
    path: /srv/offsite/app_prod-20260618T030000Z.dump.zst
  register: offsite
'''

RETURN = r'''
exists:
  description: Whether a file was found.
  returned: always
  type: bool
path:
  description: The file looked at (for O(pattern), the newest match).
  returned: when found
  type: str
  sample: /srv/backups/app_prod-20261122T030000Z.dump.zst
is_dir:
  description: Whether the path is a directory (a directory-format dump or a base backup).
  returned: when found
  type: bool
size:
  description: Size in bytes (for a directory, the sum of its files).
  returned: when found
  type: int
size_human:
  description: The size for people.
  returned: when found
  type: str
  sample: 41.8 GiB
mtime:
  description: Modification time, seconds since the epoch.
  returned: when found
  type: float
mtime_iso:
  description: Modification time, ISO 8601 in UTC.
  returned: when found
  type: str
age_seconds:
  description: Seconds since the last modification (host clock).
  returned: when found
  type: float
age_human:
  description: The age for people.
  returned: when found
  type: str
  sample: 7h 12m
sha256:
  description: SHA-256 of the file, when O(checksum=true).
  returned: when found and checksum is true
  type: str
matches:
  description: How many files matched O(pattern).
  returned: when pattern is used
  type: int
previous:
  description: The previous matching file (path, size, mtime), for the size-drop verdict.
  returned: when pattern matched at least two files
  type: dict
size_drop_pct:
  description: How much smaller, in percent, the newest file is than the previous one (negative when it grew).
  returned: when previous is returned
  type: float
compression:
  description: Compression detected from the file's magic bytes (zstd, gzip, lz4), or null.
  returned: when found
  type: str
manifest:
  description: The dump's manifest (path, status, size, sha256, finished_at) and whether the file matches it.
  returned: when a manifest was found
  type: dict
archive:
  description: What validation found (format, dbname, entries, dumped_from, created_at), when O(validate=pg_archive).
  returned: when validate is pg_archive and the file was found
  type: dict
valid:
  description: Whether validation passed; null when not requested.
  returned: always
  type: bool
violations:
  description: Every problem found, in words. Empty when all is well.
  returned: always
  type: list
  elements: str
ok:
  description: True when there are no violations.
  returned: always
  type: bool
'''

import datetime
import glob
import os
import stat
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _look
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import lstat_or_none
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import find_pg_tool
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import parse_artifact_name
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule, glob_static_prefix
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_duration, format_size
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify.artifact import (
    FUTURE_SLACK,
    READ_ERRORS,
    check_manifest,
    dir_stats as _dir_stats,  # pylint: disable=unused-import  # tests call file_stat._dir_stats
    entry_size,
    is_dump_dir as _is_dump_dir,
    measure,
    shrink_pct,
    validate_archive,
)


def _when(path, info):
    """When an artifact was made: the UTC stamp in a runner-made name, else its modification time.

    The same definition of "newest" as the runner's retention: copying or ``touch`` changes mtime,
    not the name.
    """
    parsed = parse_artifact_name(os.path.basename(path.rstrip('/')))
    return parsed['when'].timestamp() if parsed else info.st_mtime


def _find(module, pattern, violations):
    """Regular files and real dump directories matching ``pattern``, newest first; future stamps set aside."""
    if not pattern.startswith('/'):
        module.fail_json(msg='pattern=%r must be an absolute path glob, e.g. /srv/backups/app_prod-*.dump*' % pattern)
    module.require_allowed_path(glob_static_prefix(pattern), 'pattern')
    skip_manifests = not pattern.endswith('.manifest.json')
    candidates = []
    now = time.time()
    for match in glob.glob(pattern):
        if skip_manifests and match.endswith('.manifest.json'):
            continue
        info = lstat_or_none(match)
        if info is None or not (stat.S_ISREG(info.st_mode) or _is_dump_dir(match)):
            continue  # symlinks, FIFOs, sockets and devices are never backups (nor a way to fail this check)
        module.require_allowed_path(match, 'pattern')
        candidates.append((_when(match, info), match))
    paths, future = newest_first(candidates, now)
    violations.extend(future)
    return paths


def newest_first(candidates, now):
    """``(paths, violations)``: the paths of ``(when, path)`` candidates, newest first, and a sentence for each one
    stamped more than FUTURE_SLACK seconds after ``now``, which is set aside (sentences in the order given)."""
    horizon = now + FUTURE_SLACK
    found, violations = [], []
    for when, path in candidates:
        if when > horizon:
            violations.append('%s is stamped %s, in the future: not counted as the newest backup (a wrong clock, or a '
                              'file that was not made by this host\'s dumps)'
                              % (path, datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat()))
            continue
        found.append((when, path))
    found.sort(reverse=True)
    return [path for _when_, path in found], violations


def main():
    module = DbfleetModule(
        argument_spec=dict(
            path=dict(type='path'),
            pattern=dict(type='str'),
            checksum=dict(type='bool', default=False),
            max_age=dict(type='str'),
            min_size=dict(type='str'),
            max_size_drop_pct=dict(type='float'),
            validate=dict(type='str', choices=['none', 'pg_archive'], default='none'),
            pg_restore=dict(type='path'),
            manifest=dict(type='str', choices=['auto', 'required', 'ignore'], default='auto'),
            fail_on_violation=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('path', 'pattern')],
        required_one_of=[('path', 'pattern')],
        supports_check_mode=True,
    )
    params = module.params

    try:
        limits = _look.parse_thresholds(params, [('max_age', 'duration'), ('min_size', 'size')])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    max_age, min_size = limits['max_age'], limits['min_size']
    drop_limit = params['max_size_drop_pct']
    if drop_limit is not None and not 0 <= drop_limit <= 100:
        module.fail_json(msg='max_size_drop_pct must be between 0 and 100 (got %s)' % drop_limit)
    if drop_limit is not None and not params['pattern']:
        module.fail_json(msg='max_size_drop_pct compares the newest file with the previous one, so it needs pattern, not path')

    result = dict(changed=False, exists=False, valid=None, violations=[], ok=False)
    violations = result['violations']
    previous = None
    if params['pattern']:
        matches = _find(module, params['pattern'], violations)
        result['matches'] = len(matches)
        if not matches:
            violations.append('no file matches %s: the backup has not run here, or writes somewhere else' % params['pattern'])
        path = matches[0] if matches else None
        previous = matches[1] if len(matches) > 1 else None
    else:
        path = params['path']
        info = lstat_or_none(path)
        if info is None:
            violations.append('%s does not exist' % path)
            path = None
        elif stat.S_ISLNK(info.st_mode):
            module.fail_json(msg='%s is a symlink: file_stat looks only at the file itself (give its real path)' % path)
        elif stat.S_ISDIR(info.st_mode) and not _is_dump_dir(path):
            module.fail_json(msg='%s is a directory, not a file: give a file, a directory-format dump (one with toc.dat), '
                                 'a base backup (one with backup_manifest) or use pattern to pick the newest file inside'
                                 % path)
        elif not stat.S_ISDIR(info.st_mode) and not stat.S_ISREG(info.st_mode):
            module.fail_json(msg='%s is not a regular file (a FIFO, socket or device): refused' % path)

    if path:
        try:
            info = os.lstat(path)
            measured = measure(path, checksum=params['checksum'], inspect=params['validate'] == 'pg_archive')
        except READ_ERRORS as exc:
            module.fail_json(msg='cannot read %s: %s' % (path, exc), path=path)
        is_dir, size, sha256, compression = measured['is_dir'], measured['size'], measured['sha256'], measured['compression']
        age = time.time() - info.st_mtime
        result.update(
            exists=True, path=path, is_dir=is_dir, size=size, size_human=format_size(size),
            mtime=info.st_mtime,
            mtime_iso=datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc).isoformat(timespec='seconds'),
            age_seconds=round(age, 3), age_human=format_duration(age), compression=compression,
        )
        if params['checksum']:
            result['sha256'] = sha256

        if max_age is not None and age > max_age:
            violations.append('%s is %s old, older than max_age %s: the last backup did not run or did not finish'
                              % (path, format_duration(age), format_duration(max_age)))
        if min_size is not None and size < min_size:
            violations.append('%s is %s, smaller than min_size %s' % (path, format_size(size), format_size(min_size)))
        if previous:
            prev_size = entry_size(previous)
            result['previous'] = dict(path=previous, size=prev_size, mtime=os.lstat(previous).st_mtime)
            drop = shrink_pct(size, prev_size)
            result['size_drop_pct'] = drop
            if drop_limit is not None and drop > drop_limit:
                violations.append('%s is %s, %.1f%% smaller than the previous %s (%s): a dump that shrinks this much usually '
                                  'means pg_dump failed mid-run' % (path, format_size(size), drop, previous, format_size(prev_size)))
        if params['manifest'] != 'ignore':
            manifest, problems = check_manifest(path, size, sha256, params['manifest'])
            if manifest is not None:
                result['manifest'] = manifest
            violations.extend(problems)
        if params['validate'] == 'pg_archive':
            archive, problem = validate_archive(path, measured, find_pg_tool('pg_restore', params['pg_restore']))
            if archive is not None:
                result['archive'] = archive
            result['valid'] = problem is None
            if problem:
                violations.append(problem)

    result['ok'] = not violations
    _look.exit_with_verdict(module, result)


if __name__ == '__main__':
    main()
