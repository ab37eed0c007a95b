# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""wal_archive_status's verdicts from given facts, the idle-safety rules and the safe directory listing."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath
from ansible_collections.dbfleet.postgresql.plugins.modules import wal_archive_status as was

SEG = 16 * 1024 * 1024
CMD = 'test ! -f /srv/wal-archive/%f && cp %p /srv/wal-archive/%f'


def archiver(**kwargs):
    row = dict(archived_count=10, last_archived_wal='000000010000000000000005',
               last_archived_time='2026-12-01T10:00:00+00:00', last_archived_age_seconds=7200.0, failed_count=0,
               last_failed_wal=None, last_failed_time=None, last_failed_age_seconds=None, failing=False,
               stats_reset='2026-12-01T09:00:00+00:00', stats_reset_age_seconds=10800.0)
    row.update(kwargs)
    return row


def facts(current_segno=6, ready=0, oldest=None, role='primary', mode='on', command=CMD, library='', arch=None,
          archive_dir=None):
    return dict(role=role, archive_mode=mode, archive_command=command, archive_library=library, wal_segment_size=SEG,
                archiver=arch or archiver(), current_segno=current_segno,
                current_segment=was.segment_name(1, current_segno, SEG), ready_segments=ready, oldest_ready=oldest,
                archive_dir=archive_dir,
                archiving_here=mode == 'always' or (mode == 'on' and role == 'primary'))


def thresholds(**kwargs):
    return was.parse_thresholds(kwargs)


# --- names and numbers ------------------------------------------------------------------------------------------

def test_lsn_and_segment_names():
    assert was.parse_lsn('0/6000060') == 0x6000060
    assert was.parse_lsn('1/0') == 1 << 32
    assert was.segment_name(1, was.parse_lsn('0/6000060') // SEG, SEG) == '000000010000000000000006'
    # 256 segments of 16 MiB per log id: segment 0x100 is log 1, seg 0.
    assert was.segment_name(2, 0x100, SEG) == '000000020000000100000000'
    assert was.segment_name(1, 3, 64 * 1024 * 1024) == '000000010000000000000003'
    for bad in ('', None, '0/', 'x/1', '0/6000060; DROP', '123456789/0'):
        with pytest.raises(ValueError):
            was.parse_lsn(bad)


@pytest.mark.parametrize('name,through', [
    ('000000010000000000000005', 5),
    ('000000010000000100000002', 0x102),
    ('000000010000000000000004.00000028.backup', 3),
    ('000000010000000000000009.partial', 9),
    ('00000002.history', None),
    (None, None),
    ('garbage', None),
    ('000000010000000000000005.ready', None),
])
def test_archived_through(name, through):
    assert was.archived_through(name, SEG) == through


def test_thresholds():
    assert thresholds(max_archive_age='15m', max_ready_segments=10) == dict(max_archive_age=900, max_ready_segments=10)
    assert thresholds() == dict(max_archive_age=None, max_ready_segments=None)
    for value, words in (('nan', 'not a duration'), ('inf', 'not a duration'), ('-1h', 'negative'), ('0', 'greater')):
        with pytest.raises(ValueError, match=words):
            thresholds(max_archive_age=value)
    with pytest.raises(ValueError, match='max_ready_segments must not be negative'):
        thresholds(max_ready_segments=-1)


# --- verdicts ---------------------------------------------------------------------------------------------------

def test_idle_primary_is_caught_up_however_old_the_last_archive():
    caught_up, violations = was.judge(facts(ready=0), thresholds(max_archive_age='1m', max_ready_segments=5))
    assert caught_up is True and violations == []


def test_idle_without_archive_status_compares_segments():
    # The data directory is not readable: the last archived segment is the one before the one being written.
    caught_up, violations = was.judge(facts(ready=None), thresholds(max_archive_age='1m'))
    assert caught_up is True and violations == []


def test_behind_without_archive_status_uses_the_age_of_the_last_archive():
    caught_up, violations = was.judge(facts(ready=None, current_segno=9), thresholds(max_archive_age='1m'))
    assert caught_up is False and len(violations) == 1
    assert 'behind' in violations[0] and '000000010000000000000005' in violations[0] and '2h' in violations[0]
    assert '000000010000000000000009 is being written' in violations[0] and CMD in violations[0]


def test_a_segment_just_completed_after_a_long_idle_time_is_not_stale():
    # Hours of idleness, then a segment completes: it has waited a second, not hours.
    oldest = dict(name='000000010000000000000006', age_seconds=1.0)
    caught_up, violations = was.judge(facts(current_segno=7, ready=1, oldest=oldest), thresholds(max_archive_age='1m'))
    assert caught_up is False and violations == []


def test_a_segment_waiting_too_long_is_stale_and_named():
    oldest = dict(name='000000010000000000000006', age_seconds=900.0)
    violations = was.judge(facts(current_segno=7, ready=1, oldest=oldest), thresholds(max_archive_age='10m'))[1]
    assert len(violations) == 1 and '000000010000000000000006 has waited 15m' in violations[0]


def test_backup_file_as_last_archived_with_ready_status_known():
    arch = archiver(last_archived_wal='000000010000000000000004.00000028.backup')
    assert was.judge(facts(ready=0, arch=arch), thresholds(max_archive_age='1m')) == (True, [])


def test_failing_archive_is_red_with_segment_and_command_without_any_threshold():
    arch = archiver(failed_count=3, last_failed_wal='000000010000000000000006', last_failed_time='2026-12-01T12:00:05+00:00',
                    last_failed_age_seconds=4.0, failing=True)
    oldest = dict(name='000000010000000000000006', age_seconds=6.0)
    caught_up, violations = was.judge(facts(current_segno=7, ready=1, oldest=oldest, command='false', arch=arch),
                                      thresholds())
    assert caught_up is False and len(violations) == 1
    words = violations[0]
    assert words.startswith('WAL archiving is failing: 000000010000000000000006 could not be archived')
    assert "archive_command is 'false'" in words and '3 failure(s)' in words and '1 segment(s) are waiting' in words
    assert 'the last success was 000000010000000000000005' in words


def test_old_failure_followed_by_success_is_not_failing():
    arch = archiver(failed_count=3, last_failed_wal='000000010000000000000004', last_failed_age_seconds=9000.0,
                    failing=False)
    assert was.judge(facts(arch=arch), thresholds()) == (True, [])


def test_never_archived_and_failing():
    arch = archiver(archived_count=0, last_archived_wal=None, last_archived_time=None, last_archived_age_seconds=None,
                    failed_count=1, last_failed_wal='000000010000000000000001', last_failed_age_seconds=2.0, failing=True)
    violations = was.judge(facts(current_segno=2, ready=1, arch=arch), thresholds())[1]
    assert 'nothing was archived successfully since the statistics were reset' in violations[0]


def test_ready_segments_piling_up():
    oldest = dict(name='000000010000000000000010', age_seconds=30.0)
    violations = was.judge(facts(current_segno=0x30, ready=32, oldest=oldest), thresholds(max_ready_segments=10))[1]
    assert len(violations) == 1 and '32 WAL file(s) are waiting' in violations[0]
    assert 'max_ready_segments 10' in violations[0] and '000000010000000000000010' in violations[0]


def test_archive_mode_off_on_a_primary_is_red_on_a_replica_fine():
    violations = was.judge(facts(mode='off'), thresholds())[1]
    assert 'archive_mode=off' in violations[0] and 'point-in-time restore' in violations[0]
    assert was.judge(facts(mode='off', role='replica'), thresholds()) == (None, [])


def test_replica_with_archive_mode_on_is_healthy_whatever_its_numbers():
    arch = archiver(failing=True, failed_count=1, last_failed_wal='x')
    assert was.judge(facts(role='replica', mode='on', ready=50, arch=arch), thresholds(max_ready_segments=1)) == (None, [])


def test_replica_with_archive_mode_always_is_judged():
    given = facts(role='replica', mode='always', ready=50, oldest=dict(name='n', age_seconds=1))
    violations = was.judge(given, thresholds(max_ready_segments=1))[1]
    assert len(violations) == 1


def test_empty_archive_command_is_red():
    violations = was.judge(facts(command=''), thresholds())[1]
    assert 'archive_command is empty' in violations[0]
    assert was.judge(facts(command='', library='basic_archive'), thresholds())[1] == []


def test_archive_dir_behind_the_server_means_the_command_writes_elsewhere():
    newest = dict(name='000000010000000000000003', age_seconds=100.0)
    behind = dict(path='/srv/wal-archive', segments=3, newest=newest, newest_through=3)
    violations = was.judge(facts(archive_dir=behind), thresholds())[1]
    assert len(violations) == 1 and 'older than 000000010000000000000005' in violations[0] and CMD in violations[0]
    empty = dict(path='/srv/wal-archive', segments=0, newest=None, newest_through=None)
    assert 'holds no WAL files' in was.judge(facts(archive_dir=empty), thresholds())[1][0]
    level = dict(behind, newest=dict(newest, name='000000010000000000000005'), newest_through=5)
    assert was.judge(facts(archive_dir=level), thresholds()) == (True, [])


def test_archive_dir_shows_progress_when_the_server_statistics_do_not():
    arch = archiver(last_archived_wal='000000010000000000000004.00000028.backup')
    archive_dir = dict(path='/a', segments=5, newest=dict(name='000000010000000000000005', age_seconds=9.0),
                       newest_through=5)
    assert was.judge(facts(ready=None, arch=arch, archive_dir=archive_dir), thresholds(max_archive_age='1m'))[0] is True


# --- the host: listing ------------------------------------------------------------------------------------------

def test_newest_archive_file_by_segment_then_timeline():
    entries = [('000000010000000000000005', 1.0), ('000000010000000000000007.partial', 2.0),
               ('000000020000000000000007', 3.0), ('000000020000000000000006.00000028.backup', 4.0),
               ('000000010000000000000008.zst', 0.5), ('00000002.history', 5.0), ('README', 6.0),
               ('000000010000000000000009.tmp', 7.0), ('00000001000000000000000a', 8.0)]
    name, mtime, through, count = was.newest_archive_file(entries, SEG)
    assert (name, mtime, through, count) == ('000000010000000000000008.zst', 0.5, 8, 5)
    assert was.newest_archive_file([('x', 1.0)], SEG) is None


def test_ready_files_only_wal_names():
    names = ['000000010000000000000006.ready', '000000010000000000000005.done', '00000002.history.ready',
             '000000010000000000000004.00000028.backup.ready', 'junk.ready', '.ready']
    assert was.ready_files(names) == ['000000010000000000000004.00000028.backup', '000000010000000000000006',
                                      '00000002.history']


def test_list_archive_dir_regular_files_only(tmp_path):
    now = time.time()
    for name in ('000000010000000000000003', '000000010000000000000004'):
        (tmp_path / name).write_bytes(b'x')
        os.utime(tmp_path / name, (now - 60, now - 60))
    (tmp_path / '000000010000000000000009').mkdir()            # a directory named like a segment
    os.symlink('/etc/passwd', str(tmp_path / '00000001000000000000000A'))  # a symlink named like one
    os.mkfifo(str(tmp_path / '00000001000000000000000B'))      # a FIFO: never opened
    listed = was.list_archive_dir(str(tmp_path), SEG, now=now)
    assert listed['segments'] == 2 and listed['newest']['name'] == '000000010000000000000004'
    assert 59 <= listed['newest']['age_seconds'] <= 61 and listed['newest_through'] == 4


def test_list_archive_dir_empty_and_missing(tmp_path):
    assert was.list_archive_dir(str(tmp_path), SEG)['newest'] is None
    with pytest.raises(OSError):
        was.list_archive_dir(str(tmp_path / 'missing'), SEG)
    (tmp_path / 'file').write_bytes(b'')
    with pytest.raises((OSError, UnsafePath)):
        was.list_archive_dir(str(tmp_path / 'file'), SEG)


def test_archive_status_counts_ready_and_finds_the_oldest(tmp_path):
    status = tmp_path / 'pg_wal' / 'archive_status'
    status.mkdir(parents=True)
    now = time.time()
    for name, age in (('000000010000000000000006.ready', 30), ('000000010000000000000007.ready', 5),
                      ('000000010000000000000005.done', 900)):
        (status / name).write_bytes(b'')
        os.utime(status / name, (now - age, now - age))
    count, oldest = was.archive_status(str(tmp_path), now=now)
    assert count == 2 and oldest['name'] == '000000010000000000000006' and 29 <= oldest['age_seconds'] <= 31
    assert was.archive_status(str(tmp_path / 'nope')) == (None, None)
    assert was.archive_status(None) == (None, None)
