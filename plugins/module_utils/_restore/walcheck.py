# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is the archived WAL continuous from a base backup's start to the target? Pure: the archive's file names,
mtimes and timeline history files in, a verdict naming every missing segment out.

PostgreSQL reads each segment from the newest timeline on the way to the target timeline that had begun by that
segment, so that is the file checked for each segment number. Segments inside the base backup (its pg_wal.tar,
from the start WAL file to the end WAL file) need not be archived. Which segment holds a target time, xid or
restore point is only known by reading WAL, so for those every archived segment up to the newest one must be
there (a gap after the target then aborts too; an LSN target is checked only up to its own segment).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.wal import (
    WAL_FILE_RE,
    format_lsn,
    parse_lsn,
    wal_segment_name,
    wal_segment_number,
)

MAX_NAMED = 20


def segment_number(name, segment_size):
    """The segment number of WAL file ``name`` (its log and segment parts)."""
    return wal_segment_number(name[8:16], name[16:24], segment_size)


segment_name = wal_segment_name


def history_name(timeline):
    return '%08X.history' % timeline


def parse_history(text):
    """``[(parent_timeline, switchpoint_lsn)]`` from a timeline history file, oldest first (comments skipped)."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split(None, 2)
        try:
            entries.append((int(fields[0]), parse_lsn(fields[1])))
        except (ValueError, IndexError):
            raise ValueError('malformed timeline history line %r' % line)
    return entries


def timeline_path(histories, timeline):
    """``[(timeline, begin_lsn, end_lsn or None)]`` from timeline 1 (or the oldest known) to ``timeline``."""
    entries = histories.get(timeline, []) if timeline != 1 else []
    path, begin = [], 0
    for parent, switch in entries:
        path.append((parent, begin, switch))
        begin = switch
    path.append((timeline, begin, None))
    return path


def choose_timeline(histories, backup_timeline, wanted):
    """The target timeline: ``wanted`` (an int), ``current`` (the backup's) or ``latest``.

    ``latest`` is what PostgreSQL picks: the newest timeline whose history file exists, counting up from the
    backup's timeline without a gap.
    """
    if wanted in (None, 'latest'):
        newest = backup_timeline
        while newest + 1 in histories:
            newest += 1
        return newest
    if wanted == 'current':
        return backup_timeline
    return int(wanted)


def check_continuity(backup, names, histories, target, wanted_timeline='latest', mtimes=None, tail=()):
    """The WAL verdict for restoring ``backup`` (a base backup's runner manifest) to ``target``.

    ``names``: the file names in the WAL archive; ``histories``: ``{timeline: parse_history(...)}`` of the history
    files found there; ``target`` from ``targets.parse_target``; ``mtimes``: ``{name: epoch seconds}`` (for a time
    target: is anything archived after it?); ``tail``: segments found elsewhere (a disaster restore: the live
    ``pg_wal``), which count only after the newest archived one -- what the archiver has not shipped yet. A hole in
    the archive before that is a broken archive, whatever ``pg_wal`` happens to hold today. Returns a dict: ``ok``,
    ``problems`` (sentences), ``missing`` (the names of missing segments, at most MAX_NAMED, with
    ``missing_count``), ``timeline``, ``timeline_path``, ``first_needed``/``last_needed`` (file names),
    ``from_archive`` (how many segments come from the archive), ``from_tail``, and ``fetch``: every file the restore
    reads that is not in the base backup, in order - the history files of the timelines on the way, the segments, and
    for an LSN target the segment after its own when it is archived (a record may end in it) - with ``fetch_tail``
    the ones of them that come from ``tail``.
    """
    size = backup['wal_segment_size']
    names = set(names)
    tail = set(tail) - names
    base_tli = backup['timeline']
    result = dict(ok=False, problems=[], missing=[], missing_count=0, timeline=None, timeline_path=[],
                  first_needed=None, last_needed=None, from_archive=0, from_tail=0, newest_archived=None)
    tli = choose_timeline(histories, base_tli, wanted_timeline)
    path = timeline_path(histories, tli)
    result['timeline'] = tli
    result['timeline_path'] = [dict(timeline=t, begin=format_lsn(b), end=format_lsn(e) if e is not None else None)
                               for t, b, e in path]
    on_path = dict((t, (b, e)) for t, b, e in path)
    if tli != base_tli and history_name(tli) not in names:
        result['problems'].append('the history file of target timeline %d (%s) is not in the archive' % (tli, history_name(tli)))
    if base_tli not in on_path:
        result['problems'].append('timeline %d does not descend from the base backup\'s timeline %d (its history: %s): '
                                  'set target_timeline' % (tli, base_tli, result['timeline_path']))
        return result
    switch = on_path[base_tli][1]
    if switch is not None and parse_lsn(backup['end_lsn']) > switch:
        result['problems'].append('timeline %d left timeline %d at %s, before the base backup ended (%s)'
                                  % (tli, base_tli, format_lsn(switch), backup['end_lsn']))
        return result
    first = segment_number(backup['start_wal_file'], size)
    in_backup = segment_number(backup['end_wal_file'], size)
    newest = _last_segment(backup, names, path, dict(kind='latest'), size, in_backup)[1]
    last = _last_segment(backup, names | tail, path, target, size, in_backup)[0]
    effective = [(segno, segment_name(_timeline_for(path, segno, size), segno, size)) for segno in range(first, last + 1)]
    archived_last = max([segno for segno, name in effective if name in names] or [in_backup])
    result['newest_archived'] = newest
    if target['kind'] == 'time' and mtimes is not None:
        after = [n for n in names | tail if WAL_FILE_RE.match(n) and mtimes.get(n, 0) >= target['when'].timestamp()]
        if not after:
            result['problems'].append(
                'nothing was archived after the target %s (newest archived segment: %s): the WAL of that moment may '
                'still be in the server\'s current segment -- switch WAL on the server (pg_switch_wal) or wait for '
                'archive_timeout' % (target['text'], newest or 'none'))
    missing = []
    result['fetch'] = fetch = [history_name(t) for t, _b, _e in path if history_name(t) in names]
    result['fetch_tail'] = []
    for segno, name in effective:
        if segno <= in_backup and int(name[:8], 16) == base_tli:
            continue  # in the base backup's pg_wal.tar
        if name in names:
            result['from_archive'] += 1
        elif name in tail and segno > archived_last:
            result['from_tail'] += 1
            result['fetch_tail'].append(name)
        else:
            missing.append(name)
            continue
        fetch.append(name)
    if target['kind'] == 'lsn':
        following = segment_name(_timeline_for(path, last + 1, size), last + 1, size)
        if following in names:
            fetch.append(following)
    result['first_needed'] = segment_name(_timeline_for(path, first, size), first, size)
    result['last_needed'] = segment_name(_timeline_for(path, last, size), last, size)
    result['missing_count'] = len(missing)
    result['missing'] = missing[:MAX_NAMED]
    if missing:
        shown = ', '.join(missing[:MAX_NAMED]) + (' and %d more' % (len(missing) - MAX_NAMED) if len(missing) > MAX_NAMED else '')
        result['problems'].append('WAL is not continuous from the base backup to the target: %d segment(s) missing from '
                                  'the archive: %s' % (len(missing), shown))
    result['ok'] = not result['problems']
    return result


def _timeline_for(path, segno, size):
    """The newest timeline of ``path`` that had begun by segment ``segno``."""
    chosen = path[0][0]
    for timeline, begin, _end in path:
        if begin // size <= segno:
            chosen = timeline
    return chosen


def _last_segment(backup, names, path, target, size, in_backup):
    """``(last segment number needed, newest archived segment name on the path)``."""
    newest_segno, newest = in_backup, None
    for name in names:
        if not WAL_FILE_RE.match(name):
            continue
        timeline, segno = int(name[:8], 16), segment_number(name, size)
        if any(t == timeline and begin // size <= segno and (end is None or segno <= end // size) for t, begin, end in path):
            if segno > newest_segno or (segno == newest_segno and newest is None):
                newest_segno, newest = segno, name
    if target['kind'] == 'immediate':
        return in_backup, newest
    if target['kind'] == 'lsn':
        return max(in_backup, target['lsn'] // size), newest
    return newest_segno, newest
