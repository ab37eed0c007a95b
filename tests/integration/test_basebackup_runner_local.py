# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``kind: basebackup`` of the host-side runner against a real, throwaway PostgreSQL 15 cluster.

The cluster (module fixture ``pgarch``) archives its WAL (``archive_mode=on``, ``archive_command``
copying into a temp dir) and listens on 127.0.0.1 (a free port) with scram-sha-256, for normal and
replication connections.  The runner connects as ``dbf_backup`` (REPLICATION, pg_read_all_data, no
superuser) with a passfile.  The base backup is proven restorable by extracting it into a new data
directory, checking it against its backup_manifest with pg_verifybackup and starting a second
postgres on it.

Needs root, PostgreSQL 15 binaries and zstd; skipped otherwise (see the markers).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import wal as runner_wal
from tests.integration.test_dump_runner_local import (
    DEBIAN_PY, PG_BIN, Cluster, cluster_base, free_port, install_program, listing, partials_in, run_runner, runner_cmd, sha256_file,
    stat_mode,
)
# the moto S3 server fixture, used by its name as a test argument
from tests.integration.test_dump_runner_local import moto  # noqa: F401 pylint: disable=unused-import

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: runs initdb and postgres as user postgres'),
    pytest.mark.skipif(not os.path.exists(os.path.join(PG_BIN, 'pg_basebackup')), reason='PostgreSQL 15 binaries missing'),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ('zstd', 'runuser', 'tar')), reason='zstd/runuser/tar missing'),
]

ROWS = 5000


@pytest.fixture(scope='module')
def pgarch():
    base = cluster_base('dbfleet-runner-bb-')
    archive = os.path.join(base, 'wal-archive')
    os.mkdir(archive, 0o750)
    shutil.chown(archive, 'postgres', 'postgres')
    options = ("-c archive_mode=on -c wal_level=replica -c archive_command='test ! -f %s/%%f && cp %%p %s/%%f'"
               % (archive, archive))
    cluster = Cluster(base, port=free_port(), tcp=True, options=options)
    cluster.archive = archive
    try:
        cluster.init()
        cluster.start()
        cluster.backup_password = cluster.add_login_role('dbf_backup', 'REPLICATION')
        cluster.norepl_password = cluster.add_login_role('dbf_norepl')
        cluster.psql('CREATE DATABASE app_prod')
        cluster.psql("CREATE TABLE items (id int PRIMARY KEY, name text, payload text);"
                     "INSERT INTO items SELECT g, 'item ' || g, repeat(md5(g::text), 4) FROM generate_series(1, %d) g;"
                     "CREATE TABLE ticks (at timestamptz DEFAULT now(), filler text)" % ROWS, db='app_prod')
        cluster.installed_runner = install_program(os.path.join(base, 'dbfleet-pg-dump'), DEBIAN_PY)  # as pg_dump_schedule does
        yield cluster
    finally:
        cluster.discard()


def bb_config(tmp_path, cluster, name='bb', user='dbf_backup', password=None, port=None, **overrides):
    """A kind: basebackup config, connecting over TCP with a passfile; only the keys a base backup uses."""
    password = cluster.backup_password if password is None else password
    passfile = cluster.passfile(tmp_path, user, password)
    cfg = {
        'name': name, 'kind': 'basebackup', 'dest': str(tmp_path / 'base-backups'), 'compression': 'zstd',
        'retention_days': 14, 'keep_min': 3, 'pg_bin': PG_BIN,
        'connection': {'host': '127.0.0.1', 'port': port or cluster.port, 'user': user, 'passfile': passfile},
        'lock_file': str(tmp_path / 'state' / ('%s.lock' % name)), 'state_dir': str(tmp_path / 'state' / name),
        'log_file': str(tmp_path / 'log' / ('%s.log' % name)),
    }
    cfg.update(overrides)
    assert runner_config.validate_config(cfg) == []
    path = tmp_path / ('%s.json' % name)
    path.write_text(json.dumps(cfg, indent=2))
    os.chmod(str(path), 0o600)
    built, errors = runner_config.load_config(str(path))  # the config exactly as the runner will see it
    assert errors == []
    return str(path), built


def backup_label(base_dir):
    """The backup_label inside base.tar.zst (what PostgreSQL itself says about the start)."""
    unzstd = subprocess.Popen(['zstd', '-dc', os.path.join(base_dir, 'base.tar.zst')], stdout=subprocess.PIPE)
    text = subprocess.run(['tar', '-xOf', '-', 'backup_label'], stdin=unzstd.stdout, capture_output=True, text=True, check=True).stdout
    unzstd.stdout.close()
    assert unzstd.wait() == 0
    fields = dict(line.split(': ', 1) for line in text.splitlines() if ': ' in line)
    location, _file, wal_file = fields['START WAL LOCATION'].partition(' (file ')
    return {'start_lsn': location, 'start_wal_file': wal_file.rstrip(')'), 'timeline': int(fields['START TIMELINE']),
            'label': fields['LABEL']}


def wal_files(archive):
    return sorted(name for name in os.listdir(archive) if len(name) == 24 and all(c in '0123456789ABCDEF' for c in name))


def switch_and_wait_archived(cluster, timeout=30):
    """Write a little, switch WAL segments and wait until the completed segment is archived.

    Archived means: the archiver reports it (or a later one) as done -- archive_command (cp)
    has returned, the file is complete -- not merely that the file exists.  The archiver works
    oldest first, so every earlier segment is complete then too.
    """
    cluster.psql("INSERT INTO ticks (filler) SELECT repeat('x', 100) FROM generate_series(1, 100)", db='app_prod')
    name = cluster.psql('SELECT pg_walfile_name(pg_switch_wal())')
    path = os.path.join(cluster.archive, name)
    deadline = time.monotonic() + timeout
    while True:
        last = cluster.psql('SELECT coalesce(last_archived_wal, \'\') FROM pg_stat_archiver')
        if last[:24][8:] >= name[8:] and os.path.exists(path) and os.path.getsize(path) == 16 * 1024 * 1024:
            return name
        assert time.monotonic() < deadline, 'WAL segment %s was never archived (archiver: %r)' % (name, last)
        time.sleep(0.05)


def base_dirs(dest):
    return [name for name in listing(dest) if name.startswith('base-') and name.endswith('.dir')]


# --------------------------------------------------------------------------
# a good base backup, proven restorable
# --------------------------------------------------------------------------

def test_base_backup_is_restorable(tmp_path, pgarch):
    config, cfg = bb_config(tmp_path, pgarch)
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    assert summary['status'] == 'ok' and summary['kind'] == 'basebackup' and summary['wal_cleanup'] is None
    [bb] = summary['artifacts']
    dest = cfg['dest']
    assert bb['kind'] == 'basebackup' and bb['db'] == 'base' and bb['status'] == 'ok' and bb['error'] is None
    assert bb['path'] == os.path.join(dest, 'base-%s.dir' % bb['stamp'])
    assert sorted(listing(dest)) == ['base-%s.dir' % bb['stamp'], 'base-%s.manifest.json' % bb['stamp']]
    assert partials_in(dest) == []
    with open(os.path.join(dest, 'base-%s.manifest.json' % bb['stamp']), encoding='utf-8') as handle:
        assert json.load(handle) == bb
    assert (bb['format'], bb['compression'], bb['compression_level'], bb['compression_by']) == ('tar', 'zstd', 2, 'pg_basebackup')
    assert '--compress=client-zstd:2' in bb['pipeline'] and '--wal-method=stream' in bb['pipeline']
    assert '--checkpoint=fast' in bb['pipeline'] and '--manifest-checksums=SHA256' in bb['pipeline']
    assert bb['exit_status'] == {'pg_basebackup': 0}
    assert bb['pg_basebackup_version'].startswith('15.') and bb['server_version'].startswith('15.')
    assert bb['pg_dump_version'] is None
    assert any('read' in note and 'pg_basebackup' in note for note in bb['notes'])

    # per-file checksums, sizes, modes; the tree hash is the sha256sum-style listing's hash
    assert sorted(bb['files']) == ['backup_manifest', 'base.tar.zst', 'pg_wal.tar']
    lines = []
    for name, info in bb['files'].items():
        path = os.path.join(bb['path'], name)
        assert info == {'sha256': sha256_file(path), 'size': os.path.getsize(path)}
        assert stat_mode(path) == 0o640
        lines.append('%s  %s\n' % (info['sha256'], name))
    assert stat_mode(bb['path']) == 0o750
    assert bb['size'] == sum(info['size'] for info in bb['files'].values())
    assert bb['sha256'] == hashlib.sha256(''.join(sorted(lines, key=lambda line: line[66:])).encode()).hexdigest()

    # WAL facts agree with the backup_label PostgreSQL wrote into the backup
    label = backup_label(bb['path'])
    assert (bb['start_lsn'], bb['start_wal_file'], bb['timeline']) == (label['start_lsn'], label['start_wal_file'], label['timeline'])
    assert label['label'] == bb['label'] == 'dbfleet-bb-%s' % bb['stamp']
    assert bb['wal_segment_size'] == 16 * 1024 * 1024
    assert runner_wal.parse_lsn(bb['end_lsn']) > runner_wal.parse_lsn(bb['start_lsn'])
    assert bb['end_wal_file'] >= bb['start_wal_file'] and bb['end_timeline'] == 1
    with open(os.path.join(bb['path'], 'backup_manifest'), encoding='utf-8') as handle:
        ranges = json.load(handle)['WAL-Ranges']
    assert bb['wal_ranges'] == [{'timeline': r['Timeline'], 'start_lsn': r['Start-LSN'], 'end_lsn': r['End-LSN']} for r in ranges]

    # restore: extract into a new data directory, verify against backup_manifest, start it, count rows
    rbase = cluster_base('dbfleet-restore-')
    restored = Cluster(rbase, port=free_port())
    try:
        os.mkdir(restored.data, 0o700)
        unzstd = subprocess.Popen(['zstd', '-dc', os.path.join(bb['path'], 'base.tar.zst')], stdout=subprocess.PIPE)
        subprocess.run(['tar', '-xf', '-', '-C', restored.data], stdin=unzstd.stdout, check=True)
        unzstd.stdout.close()
        assert unzstd.wait() == 0
        subprocess.run(['tar', '-xf', os.path.join(bb['path'], 'pg_wal.tar'), '-C', os.path.join(restored.data, 'pg_wal')], check=True)
        subprocess.run(['chown', '-R', 'postgres:postgres', restored.data], check=True)
        os.chmod(restored.data, 0o700)
        verify = subprocess.run([os.path.join(PG_BIN, 'pg_verifybackup'), '-m', os.path.join(bb['path'], 'backup_manifest'),
                                 '-w', os.path.join(restored.data, 'pg_wal'), restored.data], capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr
        restored.start()
        query = 'SELECT count(*), sum(length(payload)) FROM items'
        assert restored.psql(query, db='app_prod') == pgarch.psql(query, db='app_prod')
        assert restored.psql(query, db='app_prod').startswith('%d|' % ROWS)
    finally:
        restored.discard()


# --------------------------------------------------------------------------
# failures: exit 1, a failed manifest, nothing that looks like a base backup
# --------------------------------------------------------------------------

@pytest.mark.parametrize('case', ['role-without-replication', 'wrong-port'])
def test_failed_base_backup_leaves_nothing(tmp_path, pgarch, case):
    if case == 'role-without-replication':
        config, cfg = bb_config(tmp_path, pgarch, user='dbf_norepl', password=pgarch.norepl_password, wal_archive=pgarch.archive)
        words, hint = 'replication role', 'REPLICATION attribute'
    else:
        config, cfg = bb_config(tmp_path, pgarch, port=free_port(), wal_archive=pgarch.archive)
        words, hint = 'Connection refused', 'is PostgreSQL running'
    archived = set(os.listdir(pgarch.archive))
    rc, summary, stderr = run_runner(config)
    assert rc == 1, (summary, stderr)
    assert summary['status'] == 'failed' and summary['pruned'] == [] and summary['wal_cleanup'] is None
    [bb] = summary['artifacts']
    assert bb['status'] == 'failed' and bb['path'] is None and bb['sha256'] is None and bb['files'] is None
    assert words in bb['error'] and hint in bb['error'], bb['error']
    assert bb['exit_status']['pg_basebackup'] != 0
    dest = cfg['dest']
    with open(os.path.join(dest, 'base-%s.manifest.json' % bb['stamp']), encoding='utf-8') as handle:
        on_disk = json.load(handle)
    assert on_disk['status'] == 'failed' and on_disk['error'] == bb['error']
    assert base_dirs(dest) == [] and partials_in(dest) == []
    assert listing(dest) == ['base-%s.manifest.json' % bb['stamp']]
    assert archived <= set(os.listdir(pgarch.archive))  # the WAL archive was not touched
    with open(cfg['log_file'], encoding='utf-8') as handle:
        assert 'no pruning and no WAL archive cleanup' in handle.read()


def test_sigterm_during_base_backup_stops_the_whole_process_group(tmp_path, pgarch):
    """pg_basebackup forks a WAL streamer: the runner must stop its whole process group."""
    pgbin = tmp_path / 'pgbin'
    pgbin.mkdir()
    for tool in ('psql', 'pg_archivecleanup'):
        os.symlink(os.path.join(PG_BIN, tool), str(pgbin / tool))
    pids = tmp_path / 'pids'
    (pgbin / 'pg_basebackup').write_text(
        '#!/bin/sh\ncase "$1" in --version) exec %s "$@";; esac\n'
        'mkdir -p "${1#--pgdata=}"\nsleep 60 &\necho $! > %s\nwait\n' % (os.path.join(PG_BIN, 'pg_basebackup'), pids))
    os.chmod(str(pgbin / 'pg_basebackup'), 0o755)
    config, cfg = bb_config(tmp_path, pgarch, pg_bin=str(pgbin))
    proc = subprocess.Popen(runner_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while not (partials_in(cfg['dest']) and pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline, 'the runner never started the base backup'
        time.sleep(0.05)
    child = int(pids.read_text())
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    [bb] = json.loads(out)['artifacts']
    assert bb['status'] == 'failed' and 'signal 15 during the base backup' in bb['error']
    assert base_dirs(cfg['dest']) == [] and partials_in(cfg['dest']) == []
    time.sleep(0.1)
    assert not os.path.exists('/proc/%d' % child) or 'Z' in open('/proc/%d/stat' % child, encoding='utf-8').read().split()[2]


# --------------------------------------------------------------------------
# retention and the WAL archive
# --------------------------------------------------------------------------

def test_retention_and_wal_archive_cleanup(tmp_path, pgarch):
    """keep_min 2, retention 0 days: the third base backup prunes the first, and the WAL archive loses
    exactly the segments older than the start WAL file of the oldest base backup still kept.

    Runs the installed copy under Debian's /usr/bin/python3, as cron would.
    """
    config, cfg = bb_config(tmp_path, pgarch, keep_min=2, retention_days=0, wal_archive=pgarch.archive)
    foreign = os.path.join(pgarch.archive, 'README.operator')
    with open(foreign, 'w', encoding='utf-8') as handle:
        handle.write('not WAL\n')
    try:
        manifests = []
        for round_ in range(3):
            switch_and_wait_archived(pgarch)
            before = wal_files(pgarch.archive)
            rc, summary, stderr = run_runner(config, DEBIAN_PY, pgarch.installed_runner)
            assert rc == 0, (summary, stderr)
            [bb] = summary['artifacts']
            manifests.append(bb)
            kept = manifests[-2:]
            oldest = kept[0]
            wal = summary['wal_cleanup']
            assert wal['keep_from'] == oldest['start_wal_file'], (round_, wal)
            assert wal['oldest_kept_base'] == os.path.join(cfg['dest'], 'base-%s.manifest.json' % oldest['stamp'])
            cutoff = oldest['start_wal_file'][8:]
            expected_gone = [name for name in before if name[8:] < cutoff]
            after = wal_files(pgarch.archive)
            # every segment older than the cutoff that was archived before the run is gone ...
            assert not set(expected_gone) & set(after)
            # ... and nothing at or after the cutoff was touched
            assert [name for name in before if name not in expected_gone] == [name for name in after if name in before]
            # (the archiver may deliver one more old segment while the run goes on: the backup's start
            # completes the current one, so the count may be higher, never lower, and all of it old)
            assert wal['removed'] >= len(expected_gone)
            if wal['removed']:
                assert wal['removed_first'][8:] <= wal['removed_last'][8:] < cutoff
                assert not expected_gone or wal['removed_first'][8:] <= expected_gone[0][8:]
            if round_ == 2:
                assert wal['removed'] > 0 and expected_gone  # the first base backup's segments went with it
            assert sorted(base_dirs(cfg['dest'])) == sorted('base-%s.dir' % item['stamp'] for item in kept)
            if round_ < 2:
                assert summary['pruned'] == []
            else:
                first = manifests[0]
                assert sorted(summary['pruned']) == sorted([first['path'], os.path.join(cfg['dest'], 'base-%s.manifest.json' % first['stamp'])])
        assert manifests[0]['start_wal_file'] < manifests[1]['start_wal_file'] < manifests[2]['start_wal_file']
        assert os.path.exists(foreign)
        assert any(name.endswith('.backup') for name in os.listdir(pgarch.archive))  # history files: not pg_archivecleanup's
        with open(cfg['log_file'], encoding='utf-8') as handle:
            assert 'archived WAL segments removed' in handle.read()

        # the dry run: tonight's backup plus the newest would be kept, so everything before the newest's start would go
        switch_and_wait_archived(pgarch)
        newest = manifests[-1]
        before = {name: os.stat(os.path.join(pgarch.archive, name)).st_mtime_ns for name in os.listdir(pgarch.archive)}
        dest_before = sorted(listing(cfg['dest']))
        rc, report, stderr = run_runner(config, args=('--dry-run', '--json'))
        assert rc == 0, (report, stderr)
        assert [item['kind'] for item in report['would_dump']] == ['basebackup']
        assert '--compress=client-zstd:2' in report['would_dump'][0]['pipeline']
        second = manifests[1]
        assert sorted(report['would_prune']) == sorted([second['path'], os.path.join(cfg['dest'], 'base-%s.manifest.json' % second['stamp'])])
        wal = report['wal_cleanup']
        expected = [name for name in wal_files(pgarch.archive) if name[8:] < newest['start_wal_file'][8:]]
        assert wal['keep_from'] == newest['start_wal_file'] and wal['would_remove'] == expected and wal['removed'] == len(expected) > 0
        assert set(expected) <= set(os.listdir(pgarch.archive))
        text = subprocess.run(runner_cmd(config, args=('--dry-run',)), capture_output=True, text=True, check=True).stdout
        assert 'would remove WAL %s' % os.path.join(pgarch.archive, expected[0]) in text
        assert 'would take base backup' in text
        after = {name: os.stat(os.path.join(pgarch.archive, name)).st_mtime_ns for name in os.listdir(pgarch.archive)}
        assert set(before) <= set(after) and all(after[name] == before[name] for name in before)
        assert sorted(listing(cfg['dest'])) == dest_before
    finally:
        os.unlink(foreign)


# --------------------------------------------------------------------------
# S3: each file of the directory, verified
# --------------------------------------------------------------------------

def test_base_backup_upload_to_s3(tmp_path, pgarch, moto):
    import boto3
    client = boto3.client('s3', endpoint_url=moto, region_name='us-east-1', aws_access_key_id='AKIDTEST', aws_secret_access_key='x')
    client.create_bucket(Bucket='dbfleet-base')
    creds = tmp_path / 's3.json'
    creds.write_text(json.dumps({'aws_access_key_id': 'AKIDTEST', 'aws_secret_access_key': 'x'}))
    s3 = {'bucket': 'dbfleet-base', 'prefix': 'db1/', 'endpoint_url': moto, 'region': 'us-east-1', 'credentials_file': str(creds),
          'part_size_mb': 5}
    config, cfg = bb_config(tmp_path, pgarch, s3=s3)
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('AWS_'))
    rc, summary, stderr = run_runner(config, env=env)
    assert rc == 0, (summary, stderr)
    [bb] = summary['artifacts']
    offsite = bb['offsite']
    prefix = 'db1/base-%s.dir/' % bb['stamp']
    assert offsite['verified'] is True and offsite['error'] is None and offsite['key'] == prefix
    assert sorted(item['key'] for item in offsite['objects']) == sorted(prefix + name for name in bb['files'])
    assert any(item['multipart'] for item in offsite['objects'])  # pg_wal.tar is 16 MiB > 5 MiB parts
    for name, info in bb['files'].items():
        head = client.head_object(Bucket='dbfleet-base', Key=prefix + name)
        assert head['Metadata']['sha256'] == info['sha256'] and head['ContentLength'] == info['size']


# --------------------------------------------------------------------------
# the WAL archiver (dbfleet-wal-archive) as the server's archive_command
# --------------------------------------------------------------------------

SEGMENT = 16 * 1024 * 1024


def sha256_of(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope='module')
def pgwal():
    """A cluster whose archive_command is dbfleet-wal-archive, installed as a module installs it (root-owned 0755)."""
    from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import walarchive
    base = cluster_base('dbfleet-walarchive-')
    archive = os.path.join(base, 'wal-archive')
    os.mkdir(archive, 0o750)
    shutil.chown(archive, 'postgres', 'postgres')
    program = install_program(os.path.join(base, 'dbfleet-wal-archive'), DEBIAN_PY, 'dbfleet-wal-archive')
    config = os.path.join(base, 'wal-archive.json')
    with open(config, 'w', encoding='utf-8') as handle:
        json.dump({'archive_dir': archive}, handle)
    os.chmod(config, 0o644)
    # archive_mode needs a restart, archive_command a reload: the command is set with ALTER SYSTEM, the way a module sets it
    cluster = Cluster(base, port=free_port(), options='-c archive_mode=on -c wal_level=replica -c checkpoint_timeout=1h '
                                                      '-c max_wal_size=4GB -c archive_timeout=0')
    cluster.archive = archive
    cluster.command = walarchive.archive_command(DEBIAN_PY, program, config)
    try:
        cluster.init()
        cluster.start()
        cluster.psql("ALTER SYSTEM SET archive_command = '%s'" % cluster.command.replace("'", "''"))
        cluster.psql('SELECT pg_reload_conf()')
        cluster.psql('CREATE TABLE ticks (at timestamptz DEFAULT now(), filler text)')
        yield cluster
    finally:
        cluster.discard()


def archiver(cluster):
    row = cluster.psql("SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver")
    last, failed, last_failed = row.split('|')
    return last, int(failed), last_failed


def next_segment(cluster):
    """Write a little; the segment being written now is the one pg_switch_wal() completes next."""
    cluster.psql("INSERT INTO ticks (filler) SELECT repeat('x', 100) FROM generate_series(1, 100)")
    return cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn())')


def wait_archived(cluster, name, timeout=30):
    deadline = time.monotonic() + timeout
    while archiver(cluster)[0][:24][8:] < name[8:]:
        assert time.monotonic() < deadline, 'WAL segment %s was never archived (archiver: %r)' % (name, archiver(cluster))
        time.sleep(0.05)


def test_archive_command_archives_segments_with_their_content(pgwal):
    assert pgwal.psql('SHOW archive_command') == pgwal.command
    names = []
    for _round in range(3):
        name = next_segment(pgwal)
        assert pgwal.psql('SELECT pg_walfile_name(pg_switch_wal())') == name
        names.append(name)
    wait_archived(pgwal, names[-1])
    for name in names:
        archived = os.path.join(pgwal.archive, name)
        assert os.path.getsize(archived) == SEGMENT and stat_mode(archived) == 0o640
        assert sha256_of(archived) == sha256_of(os.path.join(pgwal.data, 'pg_wal', name))
    assert [entry for entry in os.listdir(pgwal.archive) if entry.startswith('.')] == []  # no temp file left
    assert archiver(pgwal)[1] == 0


def test_a_leftover_truncated_temp_file_is_replaced(pgwal):
    """A crash mid-copy leaves only the temp file; the next attempt copies the whole segment again."""
    name = next_segment(pgwal)
    temp = os.path.join(pgwal.archive, '.%s.partial' % name)
    with open(temp, 'wb') as handle:
        handle.write(b'\0' * 4096)  # what a copy killed after 4 kB leaves
    shutil.chown(temp, 'postgres', 'postgres')
    pgwal.psql('SELECT pg_switch_wal()')
    wait_archived(pgwal, name)
    assert sha256_of(os.path.join(pgwal.archive, name)) == sha256_of(os.path.join(pgwal.data, 'pg_wal', name))
    assert not os.path.exists(temp)
    assert archiver(pgwal)[1] == 0


def test_a_different_existing_segment_fails_loudly_and_an_identical_one_is_success(pgwal):
    name = next_segment(pgwal)
    archived = os.path.join(pgwal.archive, name)
    with open(archived, 'wb') as handle:
        handle.write(b'not this segment\n')
    shutil.chown(archived, 'postgres', 'postgres')
    bogus = sha256_of(archived)
    _last, failed_before, _last_failed = archiver(pgwal)
    pgwal.psql('SELECT pg_switch_wal()')
    deadline = time.monotonic() + 30
    while archiver(pgwal)[1] == failed_before:
        assert time.monotonic() < deadline, 'archiving %s never failed' % name
        time.sleep(0.05)
    assert archiver(pgwal)[2] == name
    with open(archived, 'rb') as handle:
        assert handle.read() == b'not this segment\n'  # never overwritten
    real = sha256_of(os.path.join(pgwal.data, 'pg_wal', name))
    deadline = time.monotonic() + 30
    while True:
        with open(os.path.join(pgwal.base, 'server.log'), encoding='utf-8', errors='replace') as handle:
            log = handle.read()
        if bogus in log and real in log:
            break
        assert time.monotonic() < deadline, 'the server log does not name both checksums:\n%s' % log[-3000:]
        time.sleep(0.05)
    # the operator puts the right segment there (a copy of the same bytes): the archiver's next retry succeeds
    shutil.copyfile(os.path.join(pgwal.data, 'pg_wal', name), archived)
    wait_archived(pgwal, name, timeout=90)  # the archiver retries after a pause
    assert sha256_of(archived) == real
    with open(os.path.join(pgwal.base, 'server.log'), encoding='utf-8', errors='replace') as handle:
        assert 'already archived, identical (sha256 %s)' % real in handle.read()
