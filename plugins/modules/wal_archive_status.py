#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: wal_archive_status
short_description: Whether WAL archiving works - the last archived segment, failures, segments waiting - read-only
version_added: 0.2.0
description:
  - A server whose WAL archiving fails keeps running and keeps answering queries; only the next point-in-time
    restore finds out. This module looks at archiving from every side and gives a verdict.
  - From the server (C(pg_stat_archiver)) - the last archived segment and its age, failures since the last success
    (C(last_failed_time) after C(last_archived_time)) and the segment that fails; and C(archive_mode),
    C(archive_command) and C(archive_library).
  - From the host - the WAL segments waiting in C(pg_wal/archive_status/*.ready) when the data directory is known
    and readable, and with O(archive_dir) the newest segment file in the archive directory and its age.
  - Failing archiving (failures since the last success), an empty C(archive_command) with C(archive_mode) on, and
    C(archive_mode=off) on a primary are always violations; so are more ready segments than O(max_ready_segments)
    and archiving older than O(max_archive_age).
  - Idle-safe - a primary that writes nothing completes no segment and archives nothing. Archiving counts as behind
    only when a completed segment waits for it (a C(.ready) file, or a last archived segment before the one
    preceding the one C(pg_current_wal_lsn) is in); then the time the oldest waiting segment has waited (else the age of the
    last archived segment) is compared with O(max_archive_age).
  - On a replica with C(archive_mode=on) (not C(always)) archiving happens on the primary; the replica is reported
    healthy with RV(archiving_here=false). With C(archive_mode=always) it is judged like a primary.
  - Never prompts for a password and never waits longer than O(connect_timeout) seconds for a server. Changes
    nothing, in any mode.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  archive_dir:
    description:
      - The directory C(archive_command) archives to, when it is a directory on this host. Its newest WAL file is
        reported (names of 24 hexadecimal digits, optionally with C(.partial) or C(.backup) and a compression
        suffix C(.gz), C(.zst), C(.lz4), C(.xz) or C(.bz2); regular files only, symlinks are not followed).
      - The server claiming a segment newer than any in this directory is a violation (archive_command reports
        success but the files are not here).
    type: path
  max_archive_age:
    description:
      - How long a completed WAL segment may wait to be archived, in seconds or with a unit (V(15m), V(1h)). Judged
        only when a segment waits, so an idle primary stays healthy.
    type: str
  max_ready_segments:
    description: Most WAL segments that may wait in C(pg_wal/archive_status) to be archived.
    type: int
  fail_on_violation:
    description: Fail the host when RV(violations) is not empty.
    type: bool
    default: false
requirements:
  - psycopg 3 on the host (Debian/Ubuntu python3-psycopg, RHEL-family python3-psycopg3)
notes:
  - C(data_directory) is visible only to superusers and roles with C(pg_read_all_settings); without it the
    C(.ready) files are not counted (RV(ready_segments) is null) and the age of the last archived segment is what
    O(max_archive_age) is compared with.
  - The module reads the archive directory as root without following symlinks, and never reads a WAL file's
    content.
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Archiving works on every database host (replicas report that the primary archives)
  dbfleet.postgresql.wal_archive_status:
    archive_dir: /srv/wal-archive
    max_archive_age: 15m
    max_ready_segments: 10
    fail_on_violation: true

- name: A host whose local connections need a password
  dbfleet.postgresql.wal_archive_status:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_admin_password }}"
  register: archiving
'''

RETURN = r'''
healthy:
  description: True when there are no violations.
  returned: always
  type: bool
violations:
  description: Every problem found, one sentence each, with the failing segment and archive_command. Empty when all is
    well.
  returned: always
  type: list
  elements: str
role:
  description: V(primary) or V(replica).
  returned: always
  type: str
archiving_here:
  description: Whether this server archives WAL itself (false on a replica without C(archive_mode=always), and
    with C(archive_mode=off)).
  returned: always
  type: bool
note:
  description: Why a server that does not archive is still healthy (a replica whose primary archives).
  returned: when there is something to say
  type: str
archive_mode:
  description: V(on), V(always) or V(off).
  returned: always
  type: str
archive_command:
  description: The server's archive_command (null when the connecting role may not read it).
  returned: always
  type: str
data_directory:
  description: The server's data directory (null when the connecting role may not read it).
  returned: always
  type: str
archive_library:
  description: The server's archive_library (PostgreSQL 15 and later; empty when not used).
  returned: always
  type: str
current_lsn:
  description: The position WAL is written at (on a replica, the last position received or replayed).
  returned: always
  type: str
current_segment:
  description: The WAL segment being written now; every segment before it is complete and should be archived.
  returned: when the position is known
  type: str
wal_segment_size:
  description: WAL segment size in bytes.
  returned: always
  type: int
archiver:
  description: pg_stat_archiver - archived_count, last_archived_wal, last_archived_time, last_archived_age_seconds,
    failed_count, last_failed_wal, last_failed_time, last_failed_age_seconds, stats_reset.
  returned: always
  type: dict
last_archived_wal:
  description: The last WAL file the server archived successfully since its statistics were reset.
  returned: always
  type: str
last_archived_age_seconds:
  description: Seconds since that success.
  returned: always
  type: float
failing:
  description: True when the last archiving attempt failed (failures since the last success).
  returned: always
  type: bool
last_failed_wal:
  description: The WAL file whose archiving failed last.
  returned: always
  type: str
caught_up:
  description: True when no completed segment waits to be archived; null when that cannot be told.
  returned: always
  type: bool
ready_segments:
  description: Files waiting in pg_wal/archive_status (C(.ready)); null when the data directory is not readable.
  returned: always
  type: int
oldest_ready:
  description: The oldest waiting file's name and how long it has waited (C(name), C(age_seconds)).
  returned: when files wait
  type: dict
archive_dir:
  description: The archive directory as listed - C(path), C(segments) (WAL files found), C(newest) (its name,
    C(mtime), C(age_seconds)).
  returned: with O(archive_dir)
  type: dict
thresholds:
  description: max_archive_age in seconds and max_ready_segments, null where not given.
  returned: always
  type: dict
'''

import errno
import os
import re
import stat
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _look
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath, open_dir
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.wal import (
    parse_lsn,
    wal_segment_name as segment_name,
    wal_segment_number as segment_number,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_duration

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
SETTINGS = ('archive_mode', 'archive_command', 'archive_library', 'archive_timeout', 'data_directory', 'wal_segment_size')
# A WAL file in an archive: segment, optionally .partial or .NNNNNNNN.backup, optionally compressed.
ARCHIVE_FILE_RE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?'
                             r'(\.gz|\.zst|\.lz4|\.xz|\.bz2)?$')
# What pg_stat_archiver and archive_status name: segments, .partial, .backup and timeline .history files.
WAL_NAME_RE = re.compile(r'^([0-9A-F]{8})(?:([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?|(\.history))$')

STATEMENTS = [
    ("SELECT pg_is_in_recovery(), "
     "(CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) "
     "ELSE pg_current_wal_lsn() END)::text, "
     "CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn()) END, "
     "(SELECT (to_jsonb(w) ->> 'received_tli')::bigint FROM pg_stat_wal_receiver w LIMIT 1)", None),
    ("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]),
    ("SELECT archived_count, last_archived_wal, to_json(last_archived_time) #>> '{}', "
     "extract(epoch FROM now() - last_archived_time)::float, failed_count, last_failed_wal, to_json(last_failed_time) #>> '{}', "
     "extract(epoch FROM now() - last_failed_time)::float, "
     "(last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)), "
     "to_json(stats_reset) #>> '{}', extract(epoch FROM now() - stats_reset)::float FROM pg_stat_archiver", None),
]
ARCHIVER_COLUMNS = ('archived_count', 'last_archived_wal', 'last_archived_time', 'last_archived_age_seconds',
                    'failed_count', 'last_failed_wal', 'last_failed_time', 'last_failed_age_seconds', 'failing',
                    'stats_reset', 'stats_reset_age_seconds')


# --- pure logic ------------------------------------------------------------------------------------------------

def archived_through(name, segment_size):
    """The segment number archiving has certainly reached when ``name`` was archived, or None (a .history file).

    A segment counts as itself; a ``.backup`` file is written at the start of a backup, just after a WAL switch,
    so the segment before the one it names was complete (and archived first); a ``.partial`` file is its segment.
    """
    match = WAL_NAME_RE.match(name or '')
    if not match or match.group(5):
        return None
    segno = segment_number(match.group(2), match.group(3), segment_size)
    if match.group(4) and match.group(4).endswith('.backup'):
        return segno - 1
    return segno


def parse_thresholds(params):
    """The threshold options as numbers; ValueError with the option's name when one is not understood."""
    return _look.parse_thresholds(params, [('max_ready_segments', 'count'), ('max_archive_age', 'duration')])


def newest_archive_file(entries, segment_size):
    """The newest WAL file of ``entries`` (``(name, mtime)`` of regular files): highest segment, then timeline.

    Returns ``(name, mtime, segno, count)`` or None when no name looks like a WAL file.
    """
    best, count = None, 0
    for name, mtime in entries:
        match = ARCHIVE_FILE_RE.match(name)
        if not match:
            continue
        count += 1
        segno = segment_number(match.group(2), match.group(3), segment_size)
        through = segno - 1 if match.group(4) and match.group(4).endswith('.backup') else segno
        rank = 2 if not match.group(4) else (1 if match.group(4) == '.partial' else 0)
        key = (segno, int(match.group(1), 16), rank)
        if best is None or key > best[0]:
            best = (key, name, mtime, through)
    if best is None:
        return None
    return best[1], best[2], best[3], count


def ready_files(names):
    """The ``.ready`` entries of ``pg_wal/archive_status`` (WAL file names without the suffix), sorted."""
    return sorted(name[:-len('.ready')] for name in names
                  if name.endswith('.ready') and WAL_NAME_RE.match(name[:-len('.ready')]))


def judge(facts, thresholds):
    """``(caught_up, violations)`` for the facts gathered (see :func:`main`); ``archiving_here`` decides first."""
    if not facts['archiving_here']:
        if facts['role'] == 'primary':
            return None, ['WAL archiving is off on this primary (archive_mode=off): no WAL is archived, so '
                          'point-in-time restore from this server is impossible - set archive_mode=on and an '
                          'archive_command (a restart is needed), for example with dbfleet.postgresql.pg_wal_archiving']
        return None, []
    violations = []
    command = facts.get('archive_command')
    library = facts.get('archive_library')
    configured = bool(library) or command is None or command not in ('', '(disabled)')
    if library:
        what = "archive_library is '%s'" % library
    elif command is None:
        what = 'archive_command is not visible to the connecting role (connect as a superuser to see it)'
    else:
        what = "archive_command is '%s'" % command
    if not configured:
        violations.append('archive_mode is %s but archive_command is empty (and no archive_library is set): nothing is '
                          'archived and WAL piles up in pg_wal - set archive_command' % facts['archive_mode'])
    arch = facts['archiver']
    segsize = facts['wal_segment_size']
    ready = facts.get('ready_segments')
    oldest = facts.get('oldest_ready') or {}
    if arch.get('failing'):
        last_ok = ('the last success was %s at %s' % (arch['last_archived_wal'], arch['last_archived_time'])
                   if arch.get('last_archived_wal') else 'nothing was archived successfully since the statistics were '
                   'reset at %s' % arch.get('stats_reset'))
        waiting = ', %d segment(s) are waiting' % ready if ready else ''
        violations.append('WAL archiving is failing: %s could not be archived (last attempt %s, %s ago; %d failure(s) '
                          'since %s)%s; %s. The %s; its error output is in the server log. Until it succeeds WAL piles up in '
                          'pg_wal and point-in-time restore stops at the last archived segment.'
                          % (arch['last_failed_wal'], arch['last_failed_time'],
                             format_duration(arch.get('last_failed_age_seconds') or 0), arch['failed_count'] or 0,
                             arch.get('stats_reset'), waiting, last_ok, what))

    # Idle-safety: is a completed segment waiting? The .ready files say so directly; otherwise compare the last
    # archived segment (from the server, or the archive directory) with the one before the segment being written.
    current = facts.get('current_segno')
    through = [n for n in (archived_through(arch.get('last_archived_wal'), segsize),
                           (facts.get('archive_dir') or {}).get('newest_through')) if n is not None]
    if ready is not None:
        caught_up = ready == 0
    elif current is not None and through:
        caught_up = max(through) >= current - 1
    else:
        caught_up = None

    max_ready = thresholds.get('max_ready_segments')
    if max_ready is not None and ready is not None and ready > max_ready:
        violations.append('%d WAL file(s) are waiting to be archived (pg_wal/archive_status/*.ready), over '
                          'max_ready_segments %d; the oldest, %s, has waited %s. Archiving is not keeping up or is '
                          'stuck - %s.' % (ready, max_ready, oldest.get('name'), format_duration(oldest.get('age_seconds') or 0),
                                           what))
    max_age = thresholds.get('max_archive_age')
    if max_age is not None and caught_up is not True:
        if oldest.get('age_seconds') is not None:
            waited, words = oldest['age_seconds'], '%s has waited %s to be archived' % (
                oldest['name'], format_duration(oldest['age_seconds']))
        elif arch.get('last_archived_age_seconds') is not None:
            waited, words = arch['last_archived_age_seconds'], 'the last archived segment, %s, was archived %s ago' % (
                arch['last_archived_wal'], format_duration(arch['last_archived_age_seconds']))
        else:
            waited = arch.get('stats_reset_age_seconds')
            words = 'nothing was archived since the statistics were reset %s ago' % format_duration(waited or 0)
        if waited is not None and waited > max_age:
            segment = (' while %s is being written' % facts['current_segment']) if facts.get('current_segment') else ''
            violations.append('WAL archiving is behind: %s%s, over max_archive_age %s - %s.'
                              % (words, segment, format_duration(max_age), what))
    newest = (facts.get('archive_dir') or {}).get('newest')
    server_through = archived_through(arch.get('last_archived_wal'), segsize)
    archive_dir = facts.get('archive_dir')
    if archive_dir is not None and server_through is not None:
        if newest is None:
            violations.append('%s holds no WAL files, but the server archived %s: archive_dir is not where %s writes, '
                              'or the files are removed after archiving' % (archive_dir['path'], arch['last_archived_wal'],
                                                                            'archive_library' if library else 'archive_command'))
        elif archive_dir['newest_through'] < server_through:
            violations.append('the newest WAL file in %s is %s, older than %s which the server reports archived: %s reports '
                              'success without writing here, or archive_dir is the wrong directory - %s'
                              % (archive_dir['path'], newest['name'], arch['last_archived_wal'],
                                 'archive_library' if library else 'archive_command', what))
    return caught_up, violations


# --- the host ----------------------------------------------------------------------------------------------------

def list_archive_dir(path, segment_size, now=None):
    """The archive directory's newest WAL file; UnsafePath/OSError when it cannot be listed safely."""
    fd = open_dir(path)
    try:
        entries = []
        for entry in os.scandir(fd):
            try:
                info = os.lstat(entry.name, dir_fd=fd)
            except OSError:
                continue  # removed meanwhile (pg_archivecleanup)
            if stat.S_ISREG(info.st_mode):
                entries.append((entry.name, info.st_mtime))
    finally:
        os.close(fd)
    found = newest_archive_file(entries, segment_size)
    now = time.time() if now is None else now
    if found is None:
        return dict(path=path, segments=0, newest=None, newest_through=None)
    name, mtime, through, count = found
    return dict(path=path, segments=count, newest=dict(name=name, mtime=mtime, age_seconds=round(now - mtime, 3)),
                newest_through=through)


def archive_status(data_directory, now=None):
    """``(ready_count, oldest_ready)`` from pg_wal/archive_status, or ``(None, None)`` when it cannot be read."""
    if not data_directory:
        return None, None
    where = os.path.join(data_directory, 'pg_wal', 'archive_status')
    try:
        names = os.listdir(where)
    except OSError:
        return None, None
    ready = ready_files(names)
    if not ready:
        return 0, None
    now = time.time() if now is None else now
    oldest = None
    for name in ready:
        try:
            mtime = os.lstat(os.path.join(where, name + '.ready')).st_mtime
        except OSError:
            continue  # archived meanwhile
        if oldest is None or mtime < oldest['mtime']:
            oldest = dict(name=name, mtime=mtime, age_seconds=round(max(0.0, now - mtime), 3))
    return len(ready), oldest


def main():
    module = _look.LookModule(supports_check_mode=True, argument_spec=dict(
        archive_dir=dict(type='path'),
        max_archive_age=dict(type='str'),
        max_ready_segments=dict(type='int'),
    ))
    params = module.params
    try:
        thresholds = parse_thresholds(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params['archive_dir'] and not params['archive_dir'].startswith('/'):
        module.fail_json(msg='archive_dir=%r must be an absolute path, e.g. /srv/wal-archive' % params['archive_dir'])
    first, settings, archiver = module.query(STATEMENTS)
    in_recovery, current_lsn, walfile, received_tli = first['rows'][0]
    found = dict((name, None) for name in SETTINGS)
    found.update(dict(settings['rows']))
    try:
        segsize = int(found['wal_segment_size'])
    except (TypeError, ValueError):
        segsize = DEFAULT_SEGMENT_SIZE
    arch = dict(zip(ARCHIVER_COLUMNS, archiver['rows'][0]))
    role = 'replica' if in_recovery else 'primary'
    mode = found['archive_mode']
    facts = dict(role=role, archive_mode=mode, archive_command=found['archive_command'],
                 archive_library=found['archive_library'], wal_segment_size=segsize, current_lsn=current_lsn,
                 archiver=arch, data_directory=found['data_directory'],
                 archiving_here=mode == 'always' or (mode == 'on' and not in_recovery))
    if in_recovery and not facts['archiving_here']:
        facts['note'] = ('archive_mode=%s on a replica: archiving happens on the primary (archive_mode=always would '
                         'archive here too)' % mode)
    if current_lsn:
        segno = parse_lsn(current_lsn) // segsize
        if walfile:
            timeline = int(walfile[:8], 16)
        elif received_tli:
            timeline = int(received_tli)
        else:
            match = WAL_NAME_RE.match(arch.get('last_archived_wal') or '')
            timeline = int(match.group(1), 16) if match else 1
        facts.update(current_segno=segno, current_segment=segment_name(timeline, segno, segsize))
    facts['ready_segments'], facts['oldest_ready'] = archive_status(found['data_directory'])
    if params['archive_dir']:
        try:
            facts['archive_dir'] = list_archive_dir(params['archive_dir'], segsize)
        except UnsafePath as exc:
            module.fail_json(msg='archive_dir %s cannot be listed safely: %s' % (params['archive_dir'], exc))
        except OSError as exc:
            hint = (' - is archive_dir the directory archive_command writes to, on this host?'
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR) else '')
            module.fail_json(msg='cannot list archive_dir %s: %s%s' % (params['archive_dir'], exc.strerror or exc, hint))
    caught_up, violations = judge(facts, thresholds)
    result = dict(facts, changed=False, caught_up=caught_up, violations=violations, healthy=not violations,
                  thresholds=thresholds, last_archived_wal=arch['last_archived_wal'],
                  last_archived_age_seconds=arch['last_archived_age_seconds'], failing=bool(arch['failing']),
                  last_failed_wal=arch['last_failed_wal'])
    result.pop('current_segno', None)
    if result.get('archive_dir'):
        result['archive_dir'].pop('newest_through', None)
    _look.exit_with_verdict(module, result)


if __name__ == '__main__':
    main()
