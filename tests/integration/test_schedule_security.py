# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security model on a real host: root writes nothing the run user can turn against it, follows no
symlink it planted, keeps data out of the system, and lets no control character, odd number or cron
dialect through. Threat model and file table: docs/security.md."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.integration.ansible_cli import host_results, run_module

HOST = 'db-primary'
SCHEDULE = 'dbfleet.postgresql.pg_dump_schedule'
FILE_STAT = 'dbfleet.postgresql.file_stat'
# Every path root writes for a schedule, and what it must look like (owner:group mode).
EXPECTED = {
    '/etc/cron.d/dbfleet-pg-dump-sec': 'root:root 644',
    '/opt/dbfleet/bin': 'root:root 755',
    '/opt/dbfleet/bin/dbfleet-pg-dump': 'root:root 755',
    '/etc/dbfleet/pg_dump': 'root:root 755',
    '/etc/dbfleet/pg_dump/sec.json': 'root:postgres 640',
    '/etc/dbfleet/pg_dump/sec.pgpass': 'root:postgres 640',
    '/etc/dbfleet/pg_dump/sec.s3.json': 'root:postgres 640',
    '/var/lib/dbfleet/pg_dump': 'root:root 755',
    '/var/lib/dbfleet/pg_dump/sec': 'postgres:postgres 750',
    '/var/log/dbfleet/pg_dump': 'postgres:postgres 750',
    '/srv/sec-dumps': 'postgres:postgres 750',
}


def _stat(lab, *paths):
    out = lab.exec(HOST, 'stat', '-c', '%n %U:%G %a', *paths, check=False).stdout
    return dict(line.split(' ', 1) for line in out.splitlines())


def _schedule(**extra):
    args = dict(name='sec', schedule='0 3 * * *', databases=['app_prod'], dest='/srv/sec-dumps', login_host='127.0.0.11',
                login_user='dbfleet_sec', login_password='first-Secret-1', s3_bucket='dbfleet-offsite',
                s3_endpoint_url='http://127.0.0.15:9000', s3_access_key='AKIASECTEST', s3_secret_key='s3-Secret-One')
    args.update(extra)
    return args


@pytest.fixture()
def sec_lab(fleet_lab):
    fleet_lab.psql(HOST, "DROP ROLE IF EXISTS dbfleet_sec; CREATE ROLE dbfleet_sec LOGIN PASSWORD 'first-Secret-1' "
                         "IN ROLE pg_read_all_data")
    yield fleet_lab
    run_module(fleet_lab, HOST, SCHEDULE, dict(name='sec', state='absent'))
    fleet_lab.exec(HOST, 'sh', '-c', 'rm -rf /srv/sec-dumps /srv/pgowned /srv/etclink /var/lib/dbfleet/pg_dump/sec '
                                     '/var/lib/dbfleet/backups /srv/fifo-test')
    fleet_lab.psql(HOST, 'DROP ROLE IF EXISTS dbfleet_sec')


def test_every_file_root_writes_has_a_safe_owner_and_mode(sec_lab):
    result = host_results(run_module(sec_lab, HOST, SCHEDULE, _schedule()))[HOST]
    assert not result.get('failed'), result.get('msg')
    assert _stat(sec_lab, *EXPECTED) == EXPECTED
    # The run user reads its config and secrets but cannot change them.
    probe = sec_lab.exec(HOST, 'runuser', '-u', 'postgres', '--', 'sh', '-c',
                         'cat /etc/dbfleet/pg_dump/sec.pgpass >/dev/null && echo read; '
                         'chmod 6755 /etc/dbfleet/pg_dump/sec.json 2>/dev/null || echo no-chmod; '
                         'echo x >> /etc/dbfleet/pg_dump/sec.pgpass 2>/dev/null || echo no-write', check=False).stdout
    assert probe.split() == ['read', 'no-chmod', 'no-write']
    # ... and the run, with its private copy of the passfile, still connects.
    ran = host_results(run_module(sec_lab, HOST, SCHEDULE, _schedule(run_now=True)))[HOST]
    assert not ran.get('failed'), ran.get('msg')
    assert ran['run']['status'] == 'ok'


def test_rotating_secrets_leaves_no_old_secret_and_backups_are_inert(sec_lab):
    marker = sec_lab.exec(HOST, 'mktemp', '/tmp/dbfleet-sec-marker.XXXXXX').stdout.strip()
    assert not host_results(run_module(sec_lab, HOST, SCHEDULE, _schedule()))[HOST].get('failed')
    # A config left behind by an earlier version, owned by postgres, which made it setuid.
    sec_lab.exec(HOST, 'sh', '-c', 'chown postgres /etc/dbfleet/pg_dump/sec.json && chmod 6755 /etc/dbfleet/pg_dump/sec.json')
    sec_lab.psql(HOST, "ALTER ROLE dbfleet_sec PASSWORD 'second-Secret-2'")
    run = run_module(sec_lab, HOST, SCHEDULE, _schedule(login_password='second-Secret-2', s3_secret_key='s3-Secret-Two',
                                                        retention_days=7), '--diff')
    result = host_results(run)[HOST]
    assert result['changed'] and not result.get('failed'), result.get('msg')
    # Diffs say a secret changed, never what it was or how long it is.
    secret_diffs = [d for d in result['diff'] if d['after_header'].endswith(('.pgpass', '.s3.json'))]
    assert secret_diffs and all('changed, not shown' in d['after'] and 'bytes' not in d['before'] for d in secret_diffs)
    for secret in ('first-Secret-1', 'second-Secret-2', 's3-Secret-One', 's3-Secret-Two'):
        assert secret not in run.stdout + run.stderr
    # No old secret anywhere on the host; the edit-mode backups hold only the non-secret files. /tmp is shared with
    # the controller (and may hold checkouts of this very test), so only what changed since the first run counts there.
    found = sec_lab.exec(HOST, 'sh', '-c', 'grep -rlF -e first-Secret-1 -e s3-Secret-One /etc /var/lib/dbfleet /opt/dbfleet '
                                           '/var/log/dbfleet /srv 2>/dev/null; '
                                           'find /tmp -xdev -type f -newer "$0" -exec grep -lF -e first-Secret-1 -e s3-Secret-One {} + '
                                           '2>/dev/null; rm -f "$0"; true', marker).stdout.split()
    assert found == []
    backups = sec_lab.exec(HOST, 'sh', '-c', 'find /var/lib/dbfleet/backups -printf "%p %u %m %y\\n"').stdout.splitlines()
    files = [line for line in backups if line.endswith(' f')]
    assert files and all(' root 600 f' in line for line in files), backups
    assert all(' root 700 d' in line for line in backups if line.endswith(' d')), backups
    assert any('/etc/dbfleet/pg_dump/sec.json.' in line for line in files)
    assert not any('.pgpass' in line or '.s3.json' in line for line in files)
    # Nothing piles up beside the schedules: cron would read every file in /etc/cron.d.
    names = sec_lab.exec(HOST, 'ls', '/etc/cron.d').stdout.split()
    assert 'dbfleet-pg-dump-sec' in names and all(re.match(r'^dbfleet-pg-dump-[A-Za-z0-9_-]+$', n) for n in names), names
    assert _stat(sec_lab, '/etc/dbfleet/pg_dump/sec.json') == {'/etc/dbfleet/pg_dump/sec.json': 'root:postgres 640'}


def test_planted_symlinks_are_refused_and_followed_nowhere(sec_lab):
    before = _stat(sec_lab, '/etc', '/etc/cron.d')
    sec_lab.exec(HOST, 'sh', '-c', 'mkdir -p /srv/pgowned && chown postgres:postgres /srv/pgowned')
    sec_lab.exec(HOST, 'runuser', '-u', 'postgres', '--', 'ln', '-s', '/etc', '/srv/pgowned/dumps')
    sec_lab.exec(HOST, 'runuser', '-u', 'postgres', '--', 'ln', '-s', '/etc/cron.d', '/srv/pgowned/state')
    for extra in (dict(dest='/srv/pgowned/dumps/sub'), dict(dest='/srv/pgowned/dumps'),
                  dict(state_dir='/srv/pgowned/state')):
        result = host_results(run_module(sec_lab, HOST, SCHEDULE, _schedule(**extra)))[HOST]
        assert result['failed'] and ('symlink' in result['msg'] or 'system directory' in result['msg']), result['msg']
    assert _stat(sec_lab, '/etc', '/etc/cron.d') == before
    assert 'dbfleet-pg-dump-sec' not in sec_lab.exec(HOST, 'ls', '/etc/cron.d').stdout
    assert sec_lab.exec(HOST, 'sh', '-c', 'ls -A /etc/sub /etc/sec 2>&1; true').stdout.count('No such file') == 2


@pytest.mark.parametrize('extra,words', [
    (dict(dest='/etc/cron.d/dumps'), 'system directory'),
    (dict(dest='/srv/etclink/cron.d'), 'resolves to /etc/cron.d'),
    (dict(dest='/usr/local/backups'), 'system directory'),
    (dict(dest='/root/.ssh/dumps'), '.ssh directory'),
    (dict(databases=['x\n* * * * * root touch /tmp/pwned #']), 'control character'),
    (dict(databases=['app_prod'], s3_prefix='host/\r'), 'control character'),
    (dict(schedule='0 3 L * *'), 'cron knows no L, W'),
    (dict(schedule='0 3 31 2 *'), 'never runs'),
    (dict(schedule='0 3 * * *\n* * * * * root id'), 'control character'),
])
def test_hostile_values_are_refused_and_nothing_is_written(sec_lab, extra, words):
    sec_lab.exec(HOST, 'sh', '-c', 'rm -f /srv/etclink && ln -s /etc /srv/etclink')
    run = run_module(sec_lab, HOST, SCHEDULE, _schedule(**extra))
    result = host_results(run)[HOST]
    assert result['failed'] and words in result['msg'], result['msg']
    assert 'Traceback' not in run.stdout
    left = sec_lab.exec(HOST, 'sh', '-c', 'ls -d /etc/cron.d/dbfleet-pg-dump-sec /etc/cron.d/dumps /tmp/pwned /srv/sec-dumps '
                                          '2>/dev/null; true')
    assert left.stdout.split() == [], left.stdout


@pytest.mark.parametrize('value', ['nan', 'inf', '-1h', '1e400'])
def test_non_finite_durations_are_refused(sec_lab, value):
    result = host_results(run_module(sec_lab, HOST, FILE_STAT, dict(pattern='/srv/backups/*', max_age=value)))[HOST]
    assert result['failed'] and 'max_age' in result['msg']


def test_file_stat_never_hangs_on_a_fifo_or_follows_a_planted_link(sec_lab):
    sec_lab.exec(HOST, 'sh', '-c', 'rm -rf /srv/fifo-test && mkdir /srv/fifo-test && chown postgres /srv/fifo-test')
    sec_lab.exec(HOST, 'runuser', '-u', 'postgres', '--', 'sh', '-c',
                 'cd /srv/fifo-test && pg_dump -Fc app_prod > app_prod-20261130T030000Z.dump && '
                 'mkfifo app_prod-20261201T030000Z.dump && ln -s /etc/shadow app_prod-20261201T040000Z.dump && '
                 'ln -s /etc/hostname app_prod-20261201T050000Z.dump && '
                 'ln -s /etc/shadow app_prod-20261130T030000Z.manifest.json')
    started = time.monotonic()
    args = dict(pattern='/srv/fifo-test/app_prod-*', checksum=True, validate='pg_archive')
    newest = host_results(run_module(sec_lab, HOST, FILE_STAT, args, timeout=120))[HOST]
    assert time.monotonic() - started < 60
    # The FIFO and the symlink are never candidates; the real dump is, and its symlinked manifest is refused.
    assert newest['path'].endswith('20261130T030000Z.dump') and newest['valid'] is True
    assert any('cannot read the manifest' in v and 'symlink' in v for v in newest['violations']), newest['violations']
    fifo = host_results(run_module(sec_lab, HOST, FILE_STAT, dict(path='/srv/fifo-test/app_prod-20261201T030000Z.dump'),
                                   timeout=120))[HOST]
    assert fifo['failed'] and 'not a regular file' in fifo['msg']
    link = host_results(run_module(sec_lab, HOST, FILE_STAT, dict(path='/srv/fifo-test/app_prod-20261201T050000Z.dump')))[HOST]
    assert link['failed'] and 'symlink' in link['msg']
    shadow = host_results(run_module(sec_lab, HOST, FILE_STAT, dict(path='/srv/fifo-test/app_prod-20261201T040000Z.dump')))[HOST]
    assert shadow['failed'] and 'deny-list' in shadow['msg']


def test_file_stat_parsers_run_as_the_files_owner(sec_lab):
    # pg_restore here is a wrapper that records who runs it, then runs the real one.
    sec_lab.exec(HOST, 'sh', '-c', 'rm -rf /srv/fifo-test && mkdir /srv/fifo-test && chown postgres /srv/fifo-test && '
                                   'printf "#!/bin/sh\\nid -un > /srv/fifo-test/ran-as\\nexec /usr/lib/postgresql/15/bin/pg_restore \\"\\$@\\"\\n" '
                                   '> /srv/fifo-test/pg_restore && chmod 755 /srv/fifo-test/pg_restore && touch /srv/fifo-test/ran-as && '
                                   'chmod 666 /srv/fifo-test/ran-as')
    sec_lab.exec(HOST, 'runuser', '-u', 'postgres', '--', 'sh', '-c',
                 'pg_dump -Fc app_prod > /srv/fifo-test/app_prod-20261130T030000Z.dump')
    result = host_results(run_module(sec_lab, HOST, FILE_STAT, dict(path='/srv/fifo-test/app_prod-20261130T030000Z.dump',
                                                                    validate='pg_archive',
                                                                    pg_restore='/srv/fifo-test/pg_restore')))[HOST]
    assert result['valid'] is True, result
    assert sec_lab.exec(HOST, 'cat', '/srv/fifo-test/ran-as').stdout.strip() == 'postgres'


def test_discovered_database_names_with_control_characters_are_named_and_skipped(sec_lab):
    sec_lab.psql(HOST, 'DROP DATABASE IF EXISTS "app_prod\n"; CREATE DATABASE "app_prod\n"')
    try:
        local = _schedule(databases=['all'], run_now=True, login_host=None, login_user=None, login_password=None,
                          s3_bucket=None, s3_endpoint_url=None, s3_access_key=None, s3_secret_key=None)
        result = host_results(run_module(sec_lab, HOST, SCHEDULE, local))[HOST]
    finally:
        sec_lab.psql(HOST, 'DROP DATABASE IF EXISTS "app_prod\n"')
    run = result['run']
    made = [a for a in run['artifacts'] if a['db'] == 'app_prod']
    assert len(made) == 1 and made[0]['status'] == 'ok', run
    skipped = [item for item in run['not_dumped'] if item['db'] == 'app_prod\n']
    assert skipped and 'control character' in skipped[0]['reason'], run['not_dumped']
    assert any('app_prod\\n' in w for w in run['warnings']), run['warnings']
    manifests = sec_lab.exec(HOST, 'sh', '-c', 'cat /srv/sec-dumps/app_prod-*.manifest.json').stdout
    assert json.loads(manifests)['status'] == 'ok'
