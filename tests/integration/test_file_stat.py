# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_stat over real SSH on the fleet lab's hosts, against real pg_dump output."""

from __future__ import annotations

import pytest

from tests.integration.ansible_cli import host_results, run_module

DB_HOSTS = ['db-primary', 'db-replica-1', 'db-replica-2']
MODULE = 'dbfleet.postgresql.file_stat'
DIR = '/srv/filestat-test'


@pytest.fixture()
def dumps(fleet_lab):
    """A real zstd-compressed custom-format dump of app_prod on every db host, in a scratch directory."""
    for host in DB_HOSTS:
        fleet_lab.exec(host, 'sh', '-c', 'rm -rf {d} && mkdir -p {d}'.format(d=DIR))
        fleet_lab.exec(host, 'bash', '-o', 'pipefail', '-c', 'pg_dump -U postgres -Fc -Z0 app_prod | zstd -q -1 > '
                       '{d}/app_prod-20261121T030000Z.dump.zst'.format(d=DIR))
    yield
    for host in DB_HOSTS:
        fleet_lab.exec(host, 'rm', '-rf', DIR)


def test_fresh_valid_dump_on_every_db_host(fleet_lab, dumps):
    args = dict(pattern=DIR + '/app_prod-*', checksum=True, validate='pg_archive', max_age='1h', min_size='1k',
                fail_on_violation=True)
    run = run_module(fleet_lab, 'db', MODULE, args)
    assert run.rc == 0, run.stdout + run.stderr
    results = host_results(run)
    assert sorted(results) == DB_HOSTS
    for host, result in results.items():
        assert result['ok'] and result['violations'] == [] and result['valid'], (host, result)
        assert result['compression'] == 'zstd'
        assert result['archive']['dbname'] == 'app_prod' and result['archive']['entries'] > 3
        expected = fleet_lab.exec(host, 'sha256sum', result['path']).stdout.split()[0]
        assert result['sha256'] == expected
        assert result['changed'] is False


def test_collapsed_size_and_error_saved_as_backup_turn_only_that_host_red(fleet_lab, dumps):
    # The seed's failure: pg_dump fails, gzip happily compresses its error message into a "backup".
    fleet_lab.exec('db-primary', 'sh', '-c', "echo 'pg_dump: error: connection to server failed' | gzip > "
                   "{d}/app_prod-20261122T030000Z.dump.gz && touch -d '+1 minute' {d}/app_prod-20261122T030000Z.dump.gz".format(d=DIR))
    args = dict(pattern=DIR + '/app_prod-*', validate='pg_archive', max_size_drop_pct=50, fail_on_violation=True)
    run = run_module(fleet_lab, 'db', MODULE, args)
    results = host_results(run)
    assert run.failed_hosts() == ['db-primary']
    assert run.ok_hosts() == ['db-replica-1', 'db-replica-2']
    bad = results['db-primary']
    assert bad['failed'] and bad['path'].endswith('T030000Z.dump.gz')
    assert any('smaller than the previous' in v for v in bad['violations'])
    assert any('not a complete dump' in v for v in bad['violations'])
    assert bad['size_drop_pct'] > 50


def test_truncated_compressed_dump_is_caught(fleet_lab, dumps):
    fleet_lab.exec('db-primary', 'sh', '-c', 'f={d}/app_prod-20261121T030000Z.dump.zst; '
                   'head -c $(( $(stat -c %s $f) / 2 )) $f > $f.cut && mv $f.cut $f'.format(d=DIR))
    run = run_module(fleet_lab, 'db-primary', MODULE, dict(pattern=DIR + '/app_prod-*', validate='pg_archive', checksum=True))
    result = host_results(run)['db-primary']
    assert result['valid'] is False and not result['ok']
    assert any('stream is damaged' in v for v in result['violations'])


def test_stale_dump_violates_max_age(fleet_lab, dumps):
    fleet_lab.exec('db-replica-1', 'touch', '-d', '30 hours ago', DIR + '/app_prod-20261121T030000Z.dump.zst')
    result = host_results(run_module(fleet_lab, 'db-replica-1', MODULE, dict(pattern=DIR + '/app_prod-*', max_age='26h')))
    assert result['db-replica-1']['ok'] is False
    assert 'older than max_age 1d 2h' in result['db-replica-1']['violations'][0]


@pytest.mark.parametrize('mode', ['plan', 'edit', 'bypass'])
def test_deny_listed_path_is_refused_in_every_mode(fleet_lab, mode):
    run = run_module(fleet_lab, 'db-primary', MODULE, dict(path='/etc/shadow'), extra_vars=dict(dbfleet_mode=mode))
    result = host_results(run)['db-primary']
    assert result['failed'] and 'Refused' in result['msg'] and '/etc/shadow' in result['msg']
    assert 'size' not in result and 'sha256' not in result


def test_symlink_and_glob_into_protected_paths_are_refused(fleet_lab):
    fleet_lab.exec('db-primary', 'ln', '-sfn', '/etc/shadow', '/srv/innocent-link')
    try:
        via_link = host_results(run_module(fleet_lab, 'db-primary', MODULE, dict(path='/srv/innocent-link')))['db-primary']
        assert via_link['failed'] and 'resolves to /etc/shadow' in via_link['msg']
        via_glob = host_results(run_module(fleet_lab, 'db-primary', MODULE, dict(pattern='/etc/gsha*')))['db-primary']
        assert via_glob['failed'] and '/etc/gshadow' in via_glob['msg']
    finally:
        fleet_lab.exec('db-primary', 'rm', '-f', '/srv/innocent-link')


def test_inventory_extends_the_deny_list(fleet_lab, dumps):
    run = run_module(fleet_lab, 'db-primary', MODULE, dict(pattern=DIR + '/*'), extra_vars=dict(dbfleet_deny_paths=[DIR]))
    result = host_results(run)['db-primary']
    assert result['failed'] and 'inventory (dbfleet_deny_paths)' in result['msg']


def test_task_cannot_loosen_the_inventory_mode(fleet_lab):
    run = run_module(fleet_lab, 'db-primary', MODULE, dict(pattern='/srv/*', dbfleet_mode='bypass'), extra_vars=dict(dbfleet_mode='plan'))
    assert host_results(run)['db-primary']['dbfleet_mode'] == 'plan'
    bad = host_results(run_module(fleet_lab, 'db-primary', MODULE, dict(pattern='/srv/*'), extra_vars=dict(dbfleet_mode='yolo')))
    assert bad['db-primary']['failed'] and 'must be one of plan, edit, bypass' in bad['db-primary']['msg']


@pytest.mark.parametrize('args,words', [
    (dict(pattern='/srv/no-such-dir/app_prod-*.dump', fail_on_violation=True), 'no file matches /srv/no-such-dir/app_prod-*.dump'),
    (dict(path='/srv', max_age='-5'), 'max_age must not be negative'),
    (dict(path='/srv'), '/srv is a directory, not a file'),
    (dict(pattern='backups/*.dump'), 'must be an absolute path glob'),
    (dict(path='/srv/x', pattern='/srv/*'), 'mutually exclusive'),
    (dict(pattern='/srv/*', max_size_drop_pct=150), 'between 0 and 100'),
])
def test_bad_input_gets_a_clear_message_and_no_traceback(fleet_lab, args, words):
    run = run_module(fleet_lab, 'db-primary', MODULE, args)
    result = host_results(run)['db-primary']
    assert result['failed'] and words in result['msg'], result
    # ansible-core 2.19 marks every module failure with this placeholder; a crash would carry a real traceback.
    assert 'Traceback (most recent call last)' not in run.stdout + run.stderr
    assert result.get('exception', '(traceback unavailable)') == '(traceback unavailable)'
