# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base backups: LSNs, WAL file names, backup_manifest, commands, which WAL may go."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import basebackup
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import compression as runner_compression
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import run
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import server
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import wal


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 18, 3, 0, 0, tzinfo=UTC)


def stamp_days_ago(days, hours=0):
    return naming.format_stamp(NOW - datetime.timedelta(days=days, hours=hours))


# --------------------------------------------------------------------------
# kind: basebackup -- LSNs, WAL file names, backup_manifest
# --------------------------------------------------------------------------

MIB = 1024 * 1024


@pytest.mark.parametrize('timeline,lsn,size,expected', [
    (1, '0/2000028', 16 * MIB, '000000010000000000000002'),
    (1, '0/1FFFFFF', 16 * MIB, '000000010000000000000001'),
    (1, '0/FF000000', 16 * MIB, '0000000100000000000000FF'),
    (1, '1/0', 16 * MIB, '000000010000000100000000'),
    (2, '1A/5C000060', 16 * MIB, '000000020000001A0000005C'),
    (3, 'A/FF000000', 64 * MIB, '000000030000000A0000003F'),
    (1, '0/300000', 1 * MIB, '000000010000000000000003'),
    (0x10, 0x2_4000_0000, 1024 * MIB, '000000100000000200000001'),
])
def test_wal_file_name(timeline, lsn, size, expected):
    assert wal.wal_file_name(timeline, lsn, size) == expected


@pytest.mark.parametrize('args', [(1, '0/0', 3 * MIB), (1, '0/0', 512 * 1024), (0, '0/0', 16 * MIB), (1, '0-0', 16 * MIB),
                                  (1, '0/0', None)])
def test_wal_file_name_rejects_nonsense(args):
    with pytest.raises(ValueError):
        wal.wal_file_name(*args)


def test_lsn_round_trip():
    for text in ('0/0', '0/2000028', '1A/5C000060', 'FFFFFFFF/FFFFFFFF'):
        assert wal.format_lsn(wal.parse_lsn(text)) == text
    assert wal.parse_lsn('0/2000028') == 0x2000028 and wal.parse_lsn('1/0') == 1 << 32
    for bad in ('', '0/', '/1', 'x/1', '123456789/0', None, 5):
        with pytest.raises(ValueError):
            wal.parse_lsn(bad)


def test_wal_info_from_backup_manifest_single_timeline():
    data = {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000100'}]}
    info = wal.wal_info_from_backup_manifest(data, 16 * MIB)
    assert info == {'start_lsn': '0/2000028', 'end_lsn': '0/2000100', 'timeline': 1, 'end_timeline': 1,
                    'start_wal_file': '000000010000000000000002', 'end_wal_file': '000000010000000000000002',
                    'wal_segment_size': 16 * MIB,
                    'wal_ranges': [{'timeline': 1, 'start_lsn': '0/2000028', 'end_lsn': '0/2000100'}]}
    # the end LSN exactly at a segment boundary: the last byte needed is in the segment before
    data = {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/4000000'}]}
    assert wal.wal_info_from_backup_manifest(data, 16 * MIB)['end_wal_file'] == '000000010000000000000003'
    unknown = wal.wal_info_from_backup_manifest(data, None)
    assert unknown['start_wal_file'] is None and unknown['end_wal_file'] is None and unknown['start_lsn'] == '0/2000028'


def test_wal_info_from_backup_manifest_across_a_timeline_switch():
    """PostgreSQL lists the newest timeline first; the start is the lowest LSN, on its own timeline."""
    data = {'WAL-Ranges': [{'Timeline': 2, 'Start-LSN': '0/5000000', 'End-LSN': '0/6000100'},
                           {'Timeline': 1, 'Start-LSN': '0/3000028', 'End-LSN': '0/5000000'}]}
    info = wal.wal_info_from_backup_manifest(data, 16 * MIB)
    assert (info['start_lsn'], info['timeline'], info['start_wal_file']) == ('0/3000028', 1, '000000010000000000000003')
    assert (info['end_lsn'], info['end_timeline'], info['end_wal_file']) == ('0/6000100', 2, '000000020000000000000006')


@pytest.mark.parametrize('data', [{}, {'WAL-Ranges': []}, {'WAL-Ranges': [{'Timeline': '1', 'Start-LSN': '0/1', 'End-LSN': '0/2'}]},
                                  {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': 'nope', 'End-LSN': '0/2'}]}, [], None])
def test_wal_info_from_backup_manifest_rejects_garbage(data):
    with pytest.raises(ValueError):
        wal.wal_info_from_backup_manifest(data, 16 * MIB)


def test_wal_segment_size_from_tar(tmp_path):
    import io
    import tarfile
    for name, mode in (('pg_wal.tar', 'w'), ('pg_wal.tar.gz', 'w:gz')):
        directory = tmp_path / name.replace('.', '_')
        directory.mkdir()
        with tarfile.open(str(directory / name), mode) as archive:
            for member, size in (('archive_status/x.done', 0), ('000000010000000000000002', 2 * MIB)):
                info = tarfile.TarInfo(member)
                info.size = size
                archive.addfile(info, io.BytesIO(b'\0' * size))
        assert wal.wal_segment_size_from_tar(str(directory)) == 2 * MIB
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'pg_wal.tar.zst').write_bytes(b'not readable without zstd')
    assert wal.wal_segment_size_from_tar(str(empty)) is None


# --------------------------------------------------------------------------
# kind: basebackup -- commands
# --------------------------------------------------------------------------

@pytest.mark.parametrize('compression,level,args,suffix_note', [
    ('zstd', None, ['--compress=client-zstd:2'], 'pg_wal.tar stays uncompressed'),
    ('zstd', 9, ['--compress=client-zstd:9'], 'pg_wal.tar stays uncompressed'),
    ('lz4', None, ['--compress=client-lz4:1'], 'pg_wal.tar stays uncompressed'),
    ('gzip', None, ['--compress=client-gzip:1'], None),
    ('none', None, ['--compress=none'], None),
])
def test_basebackup_compression_plan(compression, level, args, suffix_note):
    plan = runner_compression.basebackup_compression_plan(compression, level)
    assert plan['args'] == args and plan['format'] == 'tar' and plan['external'] is None
    assert plan['compression'] == compression and plan['requested_compression'] == compression
    assert plan['by'] == ('none' if compression == 'none' else 'pg_basebackup')
    assert plan['level'] == (None if compression == 'none' else level or runner_compression.DEFAULT_LEVEL[compression])
    assert (suffix_note in plan['reason']) if suffix_note else 'stays uncompressed' not in plan['reason']
    with pytest.raises(ValueError):
        runner_compression.basebackup_compression_plan('bzip2', None)


def test_basebackup_argv_has_no_connection_or_secret():
    plan = runner_compression.basebackup_compression_plan('zstd', None)
    argv = basebackup.basebackup_argv('/usr/lib/postgresql/15/bin/pg_basebackup', '/srv/b/.base-X.dir.partial-1', plan, 'dbfleet-w-X')
    assert argv[0].endswith('pg_basebackup') and '--pgdata=/srv/b/.base-X.dir.partial-1' in argv
    for flag in ('--format=tar', '--wal-method=stream', '--checkpoint=fast', '--no-password', '--manifest-checksums=SHA256',
                 '--compress=client-zstd:2'):
        assert flag in argv
    assert not [item for item in argv if item.startswith(('-h', '--host', '-p', '--port', '-U', '--user', '-d', '--dbname', '-W'))]


@pytest.mark.parametrize('text,expected', [
    ('t|16777216|7654|15.18 (Debian 15.18-0+deb12u1)\n', (True, 16777216, 7654, '15.18 (Debian 15.18-0+deb12u1)')),
    ('f|16777216|1|16.2\n', (False, 16777216, 1, '16.2')),
    ('|16777216|1|16.2|with|bars', (None, 16777216, 1, '16.2|with|bars')),
    ('f|12345|x|', (False, None, None, None)),
    ('', (None, None, None, None)),
])
def test_parse_server_info(text, expected):
    info = server.parse_server_info(text)
    assert (info['reads_role_passwords'], info['wal_segment_size'], info['db_size_bytes'], info['server_version']) == expected


def test_environment_drops_inherited_pg_variables_and_uses_the_passfile(monkeypatch):
    monkeypatch.setenv('PGPASSWORD', 'inherited-secret')
    monkeypatch.setenv('PGUSER', 'someone-else')
    cfg = config.build_config('w', '/srv/base', kind='basebackup',
                              connection={'host': '127.0.0.1', 'port': 6432, 'user': 'dbf_backup', 'passfile': '/etc/dbfleet/pgpass'})
    env = run.DumpRun(cfg, log=lambda message: None).env
    assert 'PGPASSWORD' not in env and 'inherited-secret' not in json.dumps(env)
    assert (env['PGHOST'], env['PGPORT'], env['PGUSER'], env['PGPASSFILE']) == ('127.0.0.1', '6432', 'dbf_backup', '/etc/dbfleet/pgpass')


# --------------------------------------------------------------------------
# kind: basebackup -- which WAL may go
# --------------------------------------------------------------------------

def _base_entry(dest, days, status='ok', start_wal_file='000000010000000000000002', with_key=True):
    stamp = stamp_days_ago(days)
    path = dest / naming.manifest_name('base', stamp)
    data = {'status': status, 'path': str(dest / naming.artifact_name('base', stamp, 'directory', 'none'))}
    if with_key:
        data['start_wal_file'] = start_wal_file
    path.write_text(json.dumps(data))
    return {'db': 'base', 'stamp': stamp, 'status': status, 'manifest': str(path), 'dumps': []}


def test_wal_cutoff_is_the_oldest_kept_good_base_backups_start(tmp_path):
    entries = [_base_entry(tmp_path, 1, start_wal_file='000000010000000000000030'),
               _base_entry(tmp_path, 8, start_wal_file='000000010000000000000010'),
               # a newer timeline, but an older segment: pg_archivecleanup compares segments, so must we
               _base_entry(tmp_path, 15, start_wal_file='000000020000000000000008'),
               _base_entry(tmp_path, 30, status='failed', start_wal_file='000000010000000000000001')]
    wal_file, path, problem = wal.wal_cutoff(entries, str(tmp_path))
    assert (wal_file, path, problem) == ('000000020000000000000008', entries[2]['manifest'], None)


@pytest.mark.parametrize('bad', [None, 'not-a-wal-file', '00000001000000000000000g', 42])
def test_wal_cutoff_refuses_when_a_kept_base_backup_has_no_start(tmp_path, bad):
    entries = [_base_entry(tmp_path, 1), _base_entry(tmp_path, 8, start_wal_file=bad, with_key=bad is not None)]
    wal_file, _path, problem = wal.wal_cutoff(entries, str(tmp_path))
    assert wal_file is None and 'start_wal_file' in problem
    wal_file, _path, problem = wal.wal_cutoff([], str(tmp_path))
    assert wal_file is None and 'no good base backup' in problem


def test_dump_schedules_refuse_reserved_names_at_run_time():
    assert 'reserved' in naming.dump_name_problem('base', True)
    assert 'collides with the globals dump' in naming.dump_name_problem('globals', True)
    assert naming.dump_name_problem('globals', False) is None
    assert naming.dump_name_problem('app_prod', True) is None
    assert "starts with '.'" in naming.dump_name_problem('.x', True)
