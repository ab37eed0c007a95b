# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbfleet-wal-restore: the restore_command a restoring server runs, checking what it hands over."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import program, walrestore
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.fsutil import write_atomic

SEG = 16 * 1024 * 1024
SYSID = 7384727343729348234
NAME = '00000001000000000000004B'


def segment(name=NAME, sysid=SYSID, size=SEG, seg_size=SEG, info=walrestore.XLP_LONG_HEADER):
    """The bytes of a WAL segment whose first page has the long header PostgreSQL writes."""
    segno = int(name[8:16], 16) * (0x100000000 // seg_size) + int(name[16:24], 16)
    head = struct.pack('=HHIQI4x', 0xD110, info, int(name[:8], 16), segno * seg_size, 0) + struct.pack('=QII', sysid, seg_size, 8192)
    return head + b'\0' * (size - len(head))


@pytest.fixture
def dirs(tmp_path):
    archive, extra, pg_wal = tmp_path / 'archive', tmp_path / 'snapshot-pg_wal', tmp_path / 'data' / 'pg_wal'
    for directory in (archive, extra, pg_wal):
        directory.mkdir(parents=True)
    cfg = dict(archive_dir=str(archive), extra_dirs=[str(extra)], system_identifier=SYSID, wal_segment_size=SEG)
    return archive, extra, pg_wal, cfg


def test_restore_command_is_quoted_like_the_archivers_with_f_then_p():
    command = walrestore.restore_command('/usr/bin/python3', '/opt/dbfleet/bin/dbfleet-wal-restore', "/var/lib/x y/100%.json")
    assert command == "/usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-restore --config '/var/lib/x y/100%%.json' %f %p"
    with pytest.raises(ValueError):
        walrestore.restore_command('/usr/bin/python3', 'relative', '/etc/x.json')
    with pytest.raises(ValueError):
        walrestore.restore_command('/usr/bin/python3', '/opt/p', '/etc/x\n.json')


@pytest.mark.parametrize('name, kind', [(NAME, 'segment'), ('00000002.history', 'history'),
                                        ('000000010000000000000004.00000028.backup', 'backup'),
                                        ('00000001000000000000004B.partial', None), ('../etc/passwd', None),
                                        ('0000000100000000000000gb', None), ('', None)])
def test_requested_kind(name, kind):
    assert walrestore.requested_kind(name) == kind


def test_config_problems_are_named(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(dict(archive_dir='relative', extra_dirs='no', system_identifier=-1, wal_segment_size=3, x=1)))
    cfg, errors = walrestore.load_restore_config(str(path))
    assert cfg is None
    text = ' | '.join(errors)
    for words in ("unknown config key 'x'", 'archive_dir must be', 'extra_dirs must be', 'system_identifier', 'wal_segment_size'):
        assert words in text


def test_a_good_segment_is_copied_whole_and_replaces_what_is_at_p(dirs):
    archive, _extra, pg_wal, cfg = dirs
    (archive / NAME).write_bytes(segment())
    target = pg_wal / 'RECOVERYXLOG'
    target.write_bytes(b'the previous one')
    assert walrestore.fetch(NAME, str(target), cfg) == (0, None)
    assert target.read_bytes() == segment()
    assert sorted(os.listdir(str(pg_wal))) == ['RECOVERYXLOG']


def test_missing_everywhere_is_1_and_found_in_an_extra_dir_is_0(dirs):
    _archive, extra, pg_wal, cfg = dirs
    assert walrestore.fetch(NAME, str(pg_wal / 'RECOVERYXLOG'), cfg) == (1, None)
    (extra / NAME).write_bytes(segment())
    assert walrestore.fetch(NAME, str(pg_wal / 'RECOVERYXLOG'), cfg)[0] == 0


@pytest.mark.parametrize('data, words', [
    (segment(size=SEG // 2), 'not the WAL segment size'),
    (segment(sysid=SYSID + 1), 'belongs to the database system'),
    (segment(name='00000001000000000000004C'), 'does not start with the page header of that segment'),
    (segment(info=0), 'does not start with the page header'),
    (b'\0' * SEG, 'does not start with the page header'),
])
def test_a_segment_that_is_not_what_was_asked_for_aborts_recovery(dirs, data, words):
    archive, _extra, pg_wal, cfg = dirs
    (archive / NAME).write_bytes(data)
    code, sentence = walrestore.fetch(NAME, str(pg_wal / 'RECOVERYXLOG'), cfg)
    assert code == walrestore.EXIT_ABORT > 125 and words in sentence
    assert os.listdir(str(pg_wal)) == []


def test_history_files_are_text_and_names_are_checked(dirs):
    archive, _extra, pg_wal, cfg = dirs
    (archive / '00000002.history').write_text('1\t0/5000148\tbefore 2026-06-12 09:10:00+00\n')
    assert walrestore.fetch('00000002.history', str(pg_wal / 'RECOVERYHISTORY'), cfg) == (0, None)
    (archive / '00000003.history').write_bytes(b'\0\1\2')
    assert walrestore.fetch('00000003.history', str(pg_wal / 'RECOVERYHISTORY'), cfg)[0] == walrestore.EXIT_ABORT
    assert walrestore.fetch('../../etc/shadow', str(pg_wal / 'x'), cfg)[0] == 2


def test_the_built_program_restores_and_says_nothing(tmp_path, dirs):
    archive, _extra, pg_wal, cfg = dirs
    path = str(tmp_path / 'dbfleet-wal-restore')
    write_atomic(path, program.build_program('dbfleet-wal-restore', sys.executable), 0o755)
    config = tmp_path / 'wal-restore.json'
    config.write_text(json.dumps(cfg))
    (archive / NAME).write_bytes(segment())
    data = pg_wal.parent
    ok = subprocess.run([sys.executable, path, '--config', str(config), NAME, 'pg_wal/RECOVERYXLOG'], cwd=str(data),
                        capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stderr) == (0, '')
    missing = subprocess.run([path, '--config', str(config), '00000001000000000000004C', 'pg_wal/RECOVERYXLOG'],
                             cwd=str(data), capture_output=True, text=True, check=False)
    assert (missing.returncode, missing.stderr) == (1, '')


def test_staging_copies_the_whole_list_once_and_leaves_the_backups_own_wal(dirs):
    archive, extra, pg_wal, cfg = dirs
    second = '00000001000000000000004C'
    (archive / NAME).write_bytes(segment())
    (extra / second).write_bytes(segment(name=second))
    (archive / '00000002.history').write_text('1\t0/4C000000\tno recovery target specified\n')
    (pg_wal / NAME).write_bytes(b'from the base backup')
    staged = dict(cfg, stage=['00000002.history', NAME, second])
    assert walrestore.stage(staged, str(pg_wal)) == (2, SEG + len('1\t0/4C000000\tno recovery target specified\n'))
    assert (pg_wal / NAME).read_bytes() == b'from the base backup' and (pg_wal / second).read_bytes() == segment(name=second)
    with pytest.raises(walrestore.RestoreError, match='in none of'):
        walrestore.stage(dict(cfg, stage=['00000001000000000000004D']), str(pg_wal))
    assert sorted(os.listdir(str(pg_wal))) == ['00000001000000000000004B', '00000001000000000000004C', '00000002.history']
