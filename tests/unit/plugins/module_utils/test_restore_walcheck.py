# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL continuity from a base backup to a target (_restore.walcheck): names and histories in, missing segments out."""

from __future__ import annotations

import datetime

from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import targets, walcheck

SEG = 16 * 1024 * 1024
BACKUP = {'timeline': 1, 'start_wal_file': '000000010000000000000004', 'end_wal_file': '000000010000000000000005',
          'end_lsn': '0/5000100', 'wal_segment_size': SEG}


def names(timeline, first, last):
    return ['%08X%08X%08X' % (timeline, 0, n) for n in range(first, last + 1)]


def check(archive, target=None, histories=None, wanted='latest', mtimes=None):
    return walcheck.check_continuity(BACKUP, archive, histories or {}, targets.parse_target(target or {}), wanted, mtimes)


def test_a_continuous_archive_passes_and_the_backup_own_wal_need_not_be_archived():
    result = check(names(1, 6, 9) + ['000000010000000000000004.00000028.backup'])
    assert result['ok'] and result['missing'] == []
    assert (result['first_needed'], result['last_needed'], result['from_archive']) == (
        '000000010000000000000004', '000000010000000000000009', 4)


def test_a_removed_segment_is_named():
    archive = [n for n in names(1, 6, 12) if n != '000000010000000000000008']
    result = check(archive)
    assert not result['ok'] and result['missing'] == ['000000010000000000000008']
    assert '000000010000000000000008' in result['problems'][0] and '1 segment(s) missing' in result['problems'][0]


def test_an_lsn_target_needs_wal_only_up_to_its_own_segment():
    archive = [n for n in names(1, 6, 12) if n != '00000001000000000000000A']
    assert check(archive, {'lsn': '0/9FFFFFF'})['ok']
    assert check(archive, {'lsn': '0/A000010'})['missing'] == ['00000001000000000000000A']
    assert check([], {'immediate': True})['ok']


def test_a_time_target_with_nothing_archived_after_it_is_a_problem():
    archive = names(1, 6, 7)
    when = datetime.datetime(2026, 6, 12, 9, 10, tzinfo=datetime.timezone.utc).timestamp()
    early = dict((n, when - 60) for n in archive)
    result = check(archive, {'time': '2026-06-12T09:10:00Z'}, mtimes=early)
    assert not result['ok'] and 'nothing was archived after the target' in result['problems'][0]
    assert check(archive, {'time': '2026-06-12T09:10:00Z'}, mtimes=dict(early, **{archive[-1]: when + 1}))['ok']


def test_a_new_timeline_is_followed_from_its_switch_point():
    histories = {2: walcheck.parse_history('1\t0/8000148\tbefore 2026-06-12 09:10:00+00\n')}
    archive = names(1, 6, 8) + names(2, 8, 10) + ['00000002.history', '000000010000000000000009']
    result = check(archive, histories=histories)
    assert result['ok'] and result['timeline'] == 2, result
    assert result['last_needed'] == '00000002000000000000000A'
    assert [step['timeline'] for step in result['timeline_path']] == [1, 2]
    missing = check([n for n in archive if n != '000000020000000000000008'], histories=histories)
    assert missing['missing'] == ['000000020000000000000008']  # the switch segment comes from the new timeline
    assert check(archive, histories=histories, wanted='current')['last_needed'] == '000000010000000000000009'


def test_history_trouble_is_said():
    histories = {2: [(1, 0x5000000)]}
    result = check(names(1, 6, 8) + ['00000002.history'], histories=histories)
    assert not result['ok'] and 'before the base backup ended' in result['problems'][0]
    foreign = {2: [(3, 0x9000000)]}
    result = check(names(1, 6, 8) + ['00000002.history'], histories=foreign)
    assert not result['ok'] and 'does not descend' in result['problems'][0]
    result = check(names(1, 6, 8), histories={2: [(1, 0x9000000)]})
    assert 'history file of target timeline 2' in result['problems'][0]


def test_parse_history_skips_comments_and_refuses_garbage():
    assert walcheck.parse_history('# c\n1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tx\n') == [
        (1, 0x3000158), (2, 0x5000000)]
    try:
        walcheck.parse_history('1 nonsense\n')
    except ValueError as exc:
        assert 'malformed' in str(exc)
    else:
        raise AssertionError('garbage accepted')


def test_many_missing_segments_are_counted_and_the_first_named():
    result = check(names(1, 6, 6) + names(1, 60, 60))
    assert result['missing_count'] == 53 and len(result['missing']) == walcheck.MAX_NAMED
    assert 'and 33 more' in result['problems'][0]


def test_the_live_pg_wal_covers_only_what_the_archiver_has_not_shipped_yet():
    pg_wal = names(1, 4, 12)
    tail_only = walcheck.check_continuity(BACKUP, names(1, 6, 9), {}, targets.parse_target({}), tail=pg_wal)
    assert tail_only['ok'] and (tail_only['from_archive'], tail_only['from_tail']) == (4, 3)
    assert tail_only['last_needed'] == '00000001000000000000000C'
    holed = [n for n in names(1, 6, 9) if n != '000000010000000000000007']
    broken = walcheck.check_continuity(BACKUP, holed, {}, targets.parse_target({}), tail=pg_wal)
    assert broken['missing'] == ['000000010000000000000007']  # a hole in the archive stays a hole


def test_after_a_restore_the_new_timelines_first_segment_may_be_only_in_pg_wal():
    histories = {2: [(1, 0x9000148)]}
    archive = names(1, 6, 10) + ['00000002.history']  # the old timeline went on to 10 before the restore
    result = walcheck.check_continuity(BACKUP, archive, histories, targets.parse_target({'xid': '999999'}),
                                       tail=['000000020000000000000009'])
    assert result['ok'] and result['last_needed'] == '000000020000000000000009' and result['from_tail'] == 1, result
