# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nightly_backup.yml and pg_dump_schedule on the fleet lab: plans that write nothing, dumps that cron
really runs, and failures that never pass for a backup."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._cron import cron_command
from tests.integration.ansible_cli import host_results, run_module, run_playbook

DB_HOSTS = ['db-primary', 'db-replica-1', 'db-replica-2']
ALL_HOSTS = DB_HOSTS + ['backup-box']
MODULE = 'dbfleet.postgresql.pg_dump_schedule'
PLAYBOOK = 'playbooks/nightly_backup.yml'
# The lab mounts these directories per host, so their contents are removed, not the mount points.
WIPE = ('rm -rf /etc/cron.d/dbfleet-pg-dump-* /etc/dbfleet/* /opt/dbfleet/* /var/lib/dbfleet/* /var/log/dbfleet/* '
        '/srv/backups /srv/basebackups /srv/tiny /srv/slow /srv/broken')
SNAPSHOT = ('find /etc/cron.d /etc/dbfleet /opt/dbfleet /srv /var/lib/dbfleet /var/log/dbfleet -printf "%p %s %m %u\\n" '
            '2>/dev/null | sort; md5sum /var/lib/postgresql/15/main/postgresql.auto.conf 2>/dev/null')
CRON_ENV = ['env', '-i', 'SHELL=/bin/sh', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
            'HOME=/var/lib/postgresql', 'LOGNAME=postgres', 'USER=postgres']


def _snapshot(lab):
    files = {h: lab.exec(h, 'sh', '-c', SNAPSHOT, check=False).stdout for h in ALL_HOSTS}
    roles = lab.psql('db-primary', 'SELECT string_agg(rolname, \',\' ORDER BY rolname) FROM pg_roles')
    return files, roles


def _cron_command(lab, host, name):
    """The job's command exactly as written in its /etc/cron.d file."""
    content = lab.exec(host, 'cat', '/etc/cron.d/dbfleet-pg-dump-%s' % name).stdout
    assert ' postgres ' in [line for line in content.splitlines() if line and line[0].isdigit()][-1]
    return cron_command(content)


def _run_as_cron(lab, host, name, check=False):
    """Run the schedule's job the way cron does: as its user, with cron's bare environment, through /bin/sh."""
    return lab.exec(host, *CRON_ENV, 'runuser', '-u', 'postgres', '--', '/bin/sh', '-c', _cron_command(lab, host, name),
                    check=check, timeout=600)


def _manifests(lab, host, directory, prefix):
    code = ('import glob, json, sys\n'
            'for f in sorted(glob.glob(sys.argv[1] + "/" + sys.argv[2] + "-*.manifest.json")):\n'
            '    print(json.dumps(json.load(open(f))))')
    out = lab.exec(host, '/usr/bin/python3', '-c', code, directory, prefix).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _ls(lab, host, pattern):
    return sorted(lab.exec(host, 'sh', '-c', 'ls -1d %s 2>/dev/null' % pattern, check=False).stdout.split())


def _restore_list(lab, host, path):
    # The whole zstd stream must be intact; pg_restore reads the table of contents and stops
    # (so the decompressor feeding it may get SIGPIPE: only pg_restore's status counts there).
    return lab.exec(host, 'sh', '-c', 'zstd -tq {p} && zstd -dc {p} | pg_restore --list'.format(p=path), check=False)


@pytest.fixture(scope='module')
def clean_lab(fleet_lab):
    """A lab with no schedules and no backup role, as a new fleet would be."""
    for host in DB_HOSTS:
        fleet_lab.exec(host, 'sh', '-c', WIPE)
    fleet_lab.psql('db-primary', 'DROP ROLE IF EXISTS dbfleet_backup')
    yield fleet_lab
    for host in DB_HOSTS:
        fleet_lab.exec(host, 'sh', '-c', 'umount /srv/tiny 2>/dev/null; true')


def test_check_mode_reports_changes_and_writes_nothing(clean_lab):
    before = _snapshot(clean_lab)
    run = run_playbook(clean_lab, PLAYBOOK, '-l', 'db', '--check', '--diff')
    assert run.rc == 0, run.stdout[-4000:]
    assert run.changed('db-primary') >= 2  # the backup role and the schedule
    planned = run.results('Install the dump schedules')['db-primary']['results'][0]
    assert planned['changed'] and '/etc/cron.d/dbfleet-pg-dump-nightly' in planned['files']
    assert planned['cron_expression'] == '0 3 * * *'
    assert clean_lab.vars['backup_pg_password'] not in run.stdout + run.stderr
    assert clean_lab.vars['dbfleet_s3_secret_key'] not in run.stdout + run.stderr
    assert _snapshot(clean_lab) == before


def test_plan_mode_from_inventory_writes_nothing_without_check(clean_lab):
    before = _snapshot(clean_lab)
    run = run_playbook(clean_lab, PLAYBOOK, '-l', 'db', extra_vars={'dbfleet_mode': 'plan'})
    assert run.rc == 0, run.stdout[-4000:]
    planned = run.results('Install the dump schedules')['db-primary']['results'][0]
    assert planned['changed'] and planned['dbfleet_mode'] == 'plan'
    assert _snapshot(clean_lab) == before


def test_nightly_backup_dumps_now_and_cron_line_dumps_again(clean_lab):
    run = run_playbook(clean_lab, PLAYBOOK, '-l', 'db', extra_vars={'backup_run_now': True})
    assert run.rc == 0, run.stdout[-4000:]
    result = run.results('Install the dump schedules')['db-primary']['results'][0]
    artifacts = {a['db']: a for a in result['run']['artifacts']}
    assert {'app_prod', 'postgres', 'globals'} <= set(artifacts)
    dump = artifacts['app_prod']
    assert dump['status'] == 'ok' and dump['path'].endswith('.dump.zst')
    listing = _restore_list(clean_lab, 'db-primary', dump['path'])
    assert listing.returncode == 0 and 'dbname: app_prod' in listing.stdout
    assert clean_lab.exec('db-primary', 'sha256sum', dump['path']).stdout.split()[0] == dump['sha256']
    # Off-site copy to the lab's S3, verified by SHA-256.
    assert dump['offsite']['verified'] is True
    head = clean_lab.s3_client().head_object(Bucket=dump['offsite']['bucket'], Key=dump['offsite']['key'])
    assert head['Metadata']['sha256'] == dump['sha256']
    # Replicas are not dumped unless asked.
    assert all('skipped' in r for r in run.results('Install the dump schedules')['db-replica-1']['results'])

    # The cron entry, run by hand exactly as cron would, makes a second valid dump.
    proc = _run_as_cron(clean_lab, 'db-primary', 'nightly')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dumps = _ls(clean_lab, 'db-primary', '/srv/backups/app_prod-*.dump.zst')
    assert len(dumps) == 2
    assert _restore_list(clean_lab, 'db-primary', dumps[-1]).returncode == 0
    newest = [m for m in _manifests(clean_lab, 'db-primary', '/srv/backups', 'app_prod') if m['path'] == dumps[-1]][0]
    assert newest['sha256'] == clean_lab.exec('db-primary', 'sha256sum', dumps[-1]).stdout.split()[0]

    # A second run changes nothing anywhere.
    again = run_playbook(clean_lab, PLAYBOOK, '-l', 'db')
    assert again.rc == 0 and all(again.changed(h) == 0 for h in DB_HOSTS), again.stats


def test_file_stat_cross_checks_the_runner_manifest(clean_lab):
    host = 'db-primary'
    args = dict(pattern='/srv/backups/app_prod-*.dump*', checksum=True, manifest='required', validate='pg_archive')
    good = host_results(run_module(clean_lab, host, 'dbfleet.postgresql.file_stat', args))[host]
    assert good['ok'] and good['manifest']['matches'] and good['manifest']['sha256'] == good['sha256']
    newest = os.path.basename(good['path'])
    stamp = newest.split('-', 1)[1].split('.')[0]
    clean_lab.exec(host, 'sh', '-c', 'rm -rf /srv/tamper && mkdir /srv/tamper && cp /srv/backups/{n} /srv/backups/app_prod-{s}.manifest.json '
                   '/srv/tamper/ && printf x >> /srv/tamper/{n} && cp /srv/backups/{n} /srv/tamper/app_prod-orphan.dump.zst'
                   .format(n=newest, s=stamp))
    try:
        changed = host_results(run_module(clean_lab, host, 'dbfleet.postgresql.file_stat',
                                          dict(path='/srv/tamper/' + newest, checksum=True)))[host]
        assert changed['manifest']['matches'] is False
        assert any('its manifest says' in v and 'truncated or changed' in v for v in changed['violations'])
        assert any('not the dump the manifest describes' in v for v in changed['violations'])
        orphan = host_results(run_module(clean_lab, host, 'dbfleet.postgresql.file_stat',
                                         dict(path='/srv/tamper/app_prod-orphan.dump.zst', manifest='required')))[host]
        assert any('has no manifest beside it' in v for v in orphan['violations'])
        lenient = host_results(run_module(clean_lab, host, 'dbfleet.postgresql.file_stat',
                                          dict(path='/srv/tamper/app_prod-orphan.dump.zst')))[host]
        assert lenient['ok'] and 'manifest' not in lenient
    finally:
        clean_lab.exec(host, 'rm', '-rf', '/srv/tamper')


def test_cron_itself_runs_the_schedule_with_no_controller_involved(clean_lab):
    host = 'db-primary'
    args = dict(name='everyminute', schedule='* * * * *', databases=['app_prod'], dest='/srv/cron-proof', globals=False)
    result = host_results(run_module(clean_lab, host, MODULE, args))[host]
    assert result['changed'] and not result.get('failed'), result.get('msg')
    try:
        # Nothing connects to the host from here on: the host's own cron daemon must start the dump.
        deadline = time.monotonic() + 130
        manifests = []
        while time.monotonic() < deadline and not manifests:
            time.sleep(5)
            manifests = [m for m in _manifests(clean_lab, host, '/srv/cron-proof', 'app_prod') if m['status'] == 'ok']
        assert manifests, 'cron did not run the schedule within two minutes'
        dump = manifests[0]['path']
        assert clean_lab.exec(host, 'sha256sum', dump).stdout.split()[0] == manifests[0]['sha256']
        assert _restore_list(clean_lab, host, dump).returncode == 0
    finally:
        run_module(clean_lab, host, MODULE, dict(name='everyminute', state='absent'))
        clean_lab.exec(host, 'rm', '-rf', '/srv/cron-proof')


def test_wrong_database_fails_loudly_and_leaves_no_backup(clean_lab):
    args = dict(name='broken', schedule='0 4 * * *', databases=['no_such_db'], dest='/srv/broken', globals=False, run_now=True)
    run = run_module(clean_lab, 'db-primary', MODULE, args)
    result = host_results(run)['db-primary']
    assert result['failed'] and 'FAILED' in result['msg'] and 'no_such_db' in result['msg']
    assert _ls(clean_lab, 'db-primary', '/srv/broken/no_such_db-*.dump*') == []
    assert _ls(clean_lab, 'db-primary', '/srv/broken/.*partial*') == []
    manifests = _manifests(clean_lab, 'db-primary', '/srv/broken', 'no_such_db')
    assert [m['status'] for m in manifests] == ['failed'] and manifests[0]['error']
    # The same job from cron exits non-zero (cron mails it, monitoring sees it).
    assert _run_as_cron(clean_lab, 'db-primary', 'broken').returncode == 1


def test_stopped_postgresql_fails_and_keeps_the_last_good_dump(clean_lab):
    good = _ls(clean_lab, 'db-primary', '/srv/backups/app_prod-*.dump.zst')
    assert good
    clean_lab.stop_pg('db-primary')
    try:
        proc = _run_as_cron(clean_lab, 'db-primary', 'nightly')
    finally:
        clean_lab.start_pg('db-primary')
    assert proc.returncode == 1
    assert _ls(clean_lab, 'db-primary', '/srv/backups/app_prod-*.dump*') == good
    assert _ls(clean_lab, 'db-primary', '/srv/backups/.*partial*') == []
    # With databases: all nothing can be listed, so the run's own manifest says what failed.
    last = json.loads(clean_lab.exec('db-primary', 'cat', '/var/lib/dbfleet/pg_dump/nightly/last-run.json').stdout)
    assert last['status'] == 'failed' and 'cannot list databases' in last['errors'][0]
    statuses = [m['status'] for m in _manifests(clean_lab, 'db-primary', '/srv/backups', 'app_prod')]
    assert statuses == ['ok'] * len(good)


def test_full_disk_fails_and_retention_keeps_the_newest_good_dump(clean_lab):
    host = 'db-primary'
    clean_lab.exec(host, 'sh', '-c', 'mkdir -p /srv/tiny && mount -t tmpfs -o size=6m tmpfs /srv/tiny')
    try:
        args = dict(name='tiny', schedule='0 5 * * *', databases=['app_prod'], dest='/srv/tiny', globals=False,
                    retention_days=1, keep_min=1, run_now=True)
        first = host_results(run_module(clean_lab, host, MODULE, args))[host]
        assert not first.get('failed'), first.get('msg')
        good = _ls(clean_lab, host, '/srv/tiny/app_prod-*.dump.zst')
        assert len(good) == 1
        # Leave ~100 kB free: the next dump cannot fit.
        clean_lab.exec(host, 'sh', '-c', 'dd if=/dev/zero of=/srv/tiny/.filler bs=4k count=$(( $(stat -f -c %a /srv/tiny) - 25 )) 2>/dev/null')
        for dummy in range(2):
            assert _run_as_cron(clean_lab, host, 'tiny').returncode == 1
        assert _ls(clean_lab, host, '/srv/tiny/app_prod-*.dump*') == good
        assert _ls(clean_lab, host, '/srv/tiny/.*partial*') == []
        log = clean_lab.exec(host, 'cat', '/var/log/dbfleet/pg_dump/tiny.log').stdout
        assert 'No space left on device' in log or 'ENOSPC' in log or 'space' in log.lower()
    finally:
        clean_lab.exec(host, 'sh', '-c', 'umount /srv/tiny; rmdir /srv/tiny', check=False)


def test_two_runs_at_once_never_overlap(clean_lab):
    host = 'db-primary'
    args = dict(name='slow', schedule='0 6 * * *', databases=['app_prod'], dest='/srv/slow', globals=False,
                compression_level=19)
    result = host_results(run_module(clean_lab, host, MODULE, args))[host]
    assert not result.get('failed'), result.get('msg')
    command = _cron_command(clean_lab, host, 'slow')
    argv = ['runuser', '-u', 'postgres', '--', '/bin/sh', '-c', command]
    procs = [subprocess.Popen(clean_lab.ssh_argv(host) + [' '.join(CRON_ENV + [repr_arg(a) for a in argv])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for dummy in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 75], codes
    dumps = _ls(clean_lab, host, '/srv/slow/app_prod-*.dump.zst')
    assert len(dumps) == 1 and _restore_list(clean_lab, host, dumps[0]).returncode == 0
    assert _ls(clean_lab, host, '/srv/slow/.*partial*') == []


def repr_arg(arg):
    return "'" + arg.replace("'", "'\\''") + "'"


def test_replica_without_feedback_is_refused_unless_allowed(clean_lab):
    host = 'db-replica-1'
    refused = host_results(run_module(clean_lab, host, MODULE, dict(name='replica', schedule='0 3 * * *')))[host]
    assert refused['failed'] and 'streaming replica' in refused['msg'] and 'allow_replica' in refused['msg']
    assert _ls(clean_lab, host, '/etc/cron.d/dbfleet-pg-dump-*') == []
    allowed = host_results(run_module(clean_lab, host, MODULE, dict(name='replica', schedule='0 3 * * *', allow_replica=True),
                                      '--check'))[host]
    assert allowed['changed'] and allowed['is_replica'] is True
    assert _ls(clean_lab, host, '/etc/cron.d/dbfleet-pg-dump-*') == []


@pytest.mark.parametrize('args,words', [
    (dict(schedule='30 0 3 * * *'), 'cron runs jobs on the minute'),
    (dict(schedule='0 3 * *'), 'has 4 fields'),
    (dict(schedule='0 3 * * *', compression_level=25), 'compression_level for zstd must be an integer from 1 to 19'),
    (dict(schedule='0 3 * * *', run_as='nobody-here'), 'no such user'),
    (dict(schedule='0 3 * * *', jobs=4), 'jobs > 1 needs format: directory'),
    (dict(schedule='0 3 * * *', dest='/boot/dumps'), 'Refused (option dest)'),
    (dict(schedule='0 3 * * *', s3_access_key='AKIA'), 's3_access_key and s3_secret_key go together'),
])
def test_bad_input_is_refused_and_nothing_is_written(clean_lab, args, words):
    before = _snapshot(clean_lab)
    run = run_module(clean_lab, 'db-primary', MODULE, dict(name='badinput', **args))
    result = host_results(run)['db-primary']
    assert result['failed'] and words in result['msg'], result['msg']
    assert 'Traceback (most recent call last)' not in run.stdout
    assert 'AKIA' not in run.stdout + run.stderr
    assert _snapshot(clean_lab) == before


def test_six_field_schedule_and_next_runs(clean_lab):
    result = host_results(run_module(clean_lab, 'db-primary', MODULE, dict(name='nightly', schedule='0 0 3 * * *'), '--check'))
    nightly = result['db-primary']
    assert nightly['cron_expression'] == '0 3 * * *'
    assert len(nightly['next_runs']) == 5 and all('T03:00:00' in t for t in nightly['next_runs'])


def test_absent_removes_schedule_but_keeps_dumps(clean_lab):
    host = 'db-primary'
    dumps = _ls(clean_lab, host, '/srv/broken/*')
    check = host_results(run_module(clean_lab, host, MODULE, dict(name='broken', state='absent'), '--check'))[host]
    assert check['changed'] and _ls(clean_lab, host, '/etc/cron.d/dbfleet-pg-dump-broken')
    gone = host_results(run_module(clean_lab, host, MODULE, dict(name='broken', state='absent')))[host]
    assert gone['changed'] and _ls(clean_lab, host, '/etc/cron.d/dbfleet-pg-dump-broken') == []
    assert _ls(clean_lab, host, '/srv/broken/*') == dumps
    again = host_results(run_module(clean_lab, host, MODULE, dict(name='broken', state='absent')))[host]
    assert again['changed'] is False
