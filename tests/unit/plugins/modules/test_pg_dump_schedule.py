# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_dump_schedule's own logic without a server or a lab: input validation, the runner's config, the desired
files with their owners and modes, and the sentence it says."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import connection_settings, passfile_line
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule
from ansible_collections.dbfleet.postgresql.plugins.modules import pg_dump_schedule as pds

PASSWORD = 'pw-Th1s-never-shows'
S3_SECRET = 's3-secret-never-shows'


def run_user():
    """A user other than root to run the dumps as (postgres where it exists), so owners are told apart."""
    for name in ('postgres', 'nobody'):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return pwd.getpwuid(os.getuid())


RUN_AS = run_user()
RUN_GROUP = grp.getgrgid(RUN_AS.pw_gid).gr_name


def new_module():
    return DbfleetModule(argument_spec=pds.argument_spec(), supports_check_mode=True,
                         required_if=[('state', 'present', ('schedule',))])


def module_for(args):
    """The module with its real argument spec, as Ansible would build it from ``args``."""
    with patch_module_args(args):
        return new_module()


def base_args(tmp_path, **kwargs):
    args = dict(name='nightly', schedule='0 3 * * *', run_as=RUN_AS.pw_name, dest=str(tmp_path / 'backups'),
                runner_path=str(tmp_path / 'opt' / 'bin' / 'dbfleet-pg-dump'), config_dir=str(tmp_path / 'etc'),
                cron_dir=str(tmp_path / 'cron.d'), state_dir=str(tmp_path / 'state'), log_dir=str(tmp_path / 'log'),
                pg_bin='/usr/lib/postgresql/15/bin')
    args.update(kwargs)
    return args


def params_for(tmp_path, **kwargs):
    return module_for(base_args(tmp_path, **kwargs)).params


def failure(module_args, capsys):
    """The message validate() (or the argument spec) fails with."""
    with patch_module_args(module_args), pytest.raises(SystemExit) as info:
        module = new_module()
        pds.validate(module, module.params)
    assert info.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert out['failed']
    return out['msg']


def plan_parts(params, expression='0 3 * * *'):
    paths = pds.paths_for(params)
    connection = connection_settings(params)
    config = pds.build_config(params, paths, connection)
    command = [sys.executable, params['runner_path'], '--config', paths['config'], '--quiet']
    return paths, connection, config, command


def desired(params, expression='0 3 * * *'):
    paths, connection, config, command = plan_parts(params)
    items = pds.desired_state(params, paths, config, expression, connection, command)
    return paths, dict((item.path, item) for item in items), items


# --- validate -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['night ly', '../etc/passwd', 'a;b', 'a/b', '$(id)', '-x.y', 'nächtlich', ''])
def test_names_that_cannot_name_a_cron_file_are_refused(tmp_path, capsys, name):
    assert 'letters, digits' in failure(base_args(tmp_path, name=name), capsys)


def test_a_name_with_a_newline_never_gets_through(tmp_path, capsys):
    # The cron-name pattern alone would let a trailing newline through; the module refuses control characters first.
    assert 'control character' in failure(base_args(tmp_path, name='nightly\n'), capsys)


def test_a_good_schedule_is_returned_as_five_fields(tmp_path):
    module = module_for(base_args(tmp_path, schedule='0 0 3 * * *'))
    assert pds.validate(module, module.params) == '0 3 * * *'
    module = module_for(base_args(tmp_path, schedule='@daily'))
    assert pds.validate(module, module.params) == '@daily'


@pytest.mark.parametrize('schedule', ['30 0 3 * * *', '0 3 * *', '61 3 * * *', '* * * * * * *', '@sometimes'])
def test_bad_schedules_are_refused_with_the_option_named(tmp_path, capsys, schedule):
    assert failure(base_args(tmp_path, schedule=schedule), capsys).startswith('schedule: ')


def test_absent_needs_no_schedule_and_checks_only_the_name(tmp_path, capsys):
    module = module_for(dict(name='nightly', state='absent', run_as='no-such-user-here'))
    assert pds.validate(module, module.params) is None
    assert 'letters, digits' in failure(dict(name='a b', state='absent'), capsys)


def test_present_needs_a_schedule(tmp_path, capsys):
    args = base_args(tmp_path)
    del args['schedule']
    assert 'schedule' in failure(args, capsys)


@pytest.mark.parametrize('extra', [dict(s3_access_key='AKIA'), dict(s3_secret_key=S3_SECRET)])
def test_s3_keys_go_together(tmp_path, capsys, extra):
    msg = failure(base_args(tmp_path, s3_bucket='bucket', **extra), capsys)
    assert 'go together' in msg and S3_SECRET not in msg


@pytest.mark.parametrize('extra', [dict(s3_prefix='host/'), dict(s3_endpoint_url='http://127.0.0.1:9000'),
                                   dict(s3_access_key='AKIA', s3_secret_key=S3_SECRET)])
def test_s3_options_without_a_bucket_are_refused(tmp_path, capsys, extra):
    assert 'S3 options are set but s3_bucket is not' in failure(base_args(tmp_path, **extra), capsys)


def test_run_as_must_be_a_user_here(tmp_path, capsys):
    assert 'run_as=no-such-user-here: no such user' in failure(base_args(tmp_path, run_as='no-such-user-here'), capsys)


# --- build_config ---------------------------------------------------------------------------------------------

def test_dump_config_defaults(tmp_path):
    params = params_for(tmp_path)
    paths, _connection, config, _command = plan_parts(params)
    assert runner_config.validate_config(config) == []
    assert config['kind'] == 'dump' and config['databases'] == 'all' and config['exclude_databases'] == []
    assert (config['format'], config['jobs'], config['globals'], config['compression']) == ('custom', 1, True, 'zstd')
    assert (config['retention_days'], config['keep_min']) == (14, 3)
    assert (config['lock_wait'], config['lock_timeout'], config['run_timeout']) == (0, 300, 21600)
    assert config['dest'] == str(tmp_path / 'backups') and config['pg_bin'] == '/usr/lib/postgresql/15/bin'
    assert (config['lock_file'], config['state_dir'], config['log_file']) == (paths['lock'], paths['state'], paths['log'])
    assert config['connection']['passfile'] is None and config['s3'] is None
    assert 'password' not in json.dumps(config)


def test_named_databases_and_options_reach_the_config(tmp_path):
    params = params_for(tmp_path, databases=['app_prod', 'billing'], format='directory', jobs=4, globals=False,
                        compression='gzip', compression_level=6)
    config = plan_parts(params)[2]
    assert config['databases'] == ['app_prod', 'billing']
    assert (config['format'], config['jobs'], config['globals']) == ('directory', 4, False)
    assert (config['compression'], config['compression_level']) == ('gzip', 6)
    assert runner_config.validate_config(config) == []


def test_passfile_only_with_a_password_and_the_password_never_in_the_config(tmp_path):
    params = params_for(tmp_path, login_host='127.0.0.1', login_user='dbfleet_backup', login_password=PASSWORD)
    paths, _connection, config, _command = plan_parts(params)
    assert config['connection']['passfile'] == paths['passfile']
    assert (config['connection']['host'], config['connection']['user']) == ('127.0.0.1', 'dbfleet_backup')
    assert PASSWORD not in json.dumps(config)


def test_s3_config_names_the_credentials_file_only_with_keys(tmp_path):
    config = plan_parts(params_for(tmp_path, s3_bucket='offsite', s3_prefix='db1/'))[2]
    assert config['s3']['bucket'] == 'offsite' and config['s3']['prefix'] == 'db1/'
    assert config['s3']['credentials_file'] is None
    params = params_for(tmp_path, s3_bucket='offsite', s3_access_key='AKIA', s3_secret_key=S3_SECRET)
    paths, _connection, config, _command = plan_parts(params)
    assert config['s3']['credentials_file'] == paths['s3_credentials']
    assert S3_SECRET not in json.dumps(config) and 'AKIA' not in json.dumps(config)


def test_basebackup_config_leaves_dump_options_to_the_runner(tmp_path):
    params = params_for(tmp_path, kind='basebackup', wal_archive=str(tmp_path / 'wal'))
    config = plan_parts(params)[2]
    assert config['kind'] == 'basebackup' and config['globals'] is False
    assert config['wal_archive'] == str(tmp_path / 'wal')
    assert runner_config.validate_config(config) == []


@pytest.mark.parametrize('extra', [dict(databases=['app_prod']), dict(exclude_databases=['x']), dict(format='plain'),
                                   dict(jobs=2), dict(globals=True)])
def test_basebackup_with_dump_options_is_invalid(tmp_path, extra):
    """They are passed on so that the runner's validation names them, rather than being dropped in silence."""
    config = plan_parts(params_for(tmp_path, kind='basebackup', **extra))[2]
    assert runner_config.validate_config(config)


def test_wal_archive_on_a_dump_schedule_is_invalid(tmp_path):
    config = plan_parts(params_for(tmp_path, wal_archive=str(tmp_path / 'wal')))[2]
    assert any('wal_archive' in error for error in runner_config.validate_config(config))


def test_pg_bin_defaults_to_the_directory_of_the_newest_pg_dump(tmp_path, monkeypatch):
    params = params_for(tmp_path, pg_bin=None)
    monkeypatch.setattr(pds, 'find_pg_tool', lambda name, explicit=None: '/usr/lib/postgresql/17/bin/%s' % name)
    assert plan_parts(params)[2]['pg_bin'] == '/usr/lib/postgresql/17/bin'
    monkeypatch.setattr(pds, 'find_pg_tool', lambda name, explicit=None: None)
    assert plan_parts(params)[2]['pg_bin'] is None


# --- desired_state --------------------------------------------------------------------------------------------

def test_desired_state_owners_and_modes(tmp_path):
    params = params_for(tmp_path)
    paths, by_path, items = desired(params)
    kinds = [type(item).__name__ for item in items]
    assert kinds == sorted(kinds, key=['DesiredDir', 'DesiredFile', 'ObsoleteFile'].index), 'directories come first'

    def owner(path):
        item = by_path[path]
        return item.owner, item.group, item.mode

    assert owner(str(tmp_path / 'opt' / 'bin')) == ('root', None, 0o755)
    assert owner(str(tmp_path / 'etc')) == ('root', None, 0o755)
    for runner_writes in (paths['state'], str(tmp_path / 'log'), str(tmp_path / 'backups')):
        assert owner(runner_writes) == (RUN_AS.pw_name, None, 0o750)
    assert owner(params['runner_path']) == ('root', None, 0o755)
    assert owner(paths['config']) == ('root', RUN_GROUP, 0o640)
    assert owner(paths['cron']) == ('root', None, 0o644)
    assert by_path[params['runner_path']].content == pds.runner_program()
    assert not by_path[params['runner_path']].shown and not by_path[params['runner_path']].secret
    assert not by_path[paths['config']].secret and by_path[paths['config']].shown


def test_the_config_file_holds_the_config_and_the_cron_file_runs_the_command(tmp_path):
    params = params_for(tmp_path)
    paths, _connection, config, command = plan_parts(params)
    by_path = desired(params)[1]
    assert json.loads(by_path[paths['config']].content.decode('utf-8')) == config
    cron = by_path[paths['cron']].content.decode('utf-8')
    job = [line for line in cron.splitlines() if line.startswith('0 3 * * * ')]
    assert len(job) == 1 and (' %s ' % RUN_AS.pw_name) in job[0] and job[0].endswith(' '.join(command))
    assert '# dbfleet dump schedule "nightly": all' in cron


def test_without_secrets_the_secret_files_are_obsolete(tmp_path):
    paths, by_path, _items = desired(params_for(tmp_path))
    for path in (paths['passfile'], paths['s3_credentials']):
        assert isinstance(by_path[path], _desired.ObsoleteFile) and by_path[path].secret


def test_secrets_are_root_group_0640_and_marked_secret(tmp_path):
    params = params_for(tmp_path, login_host='127.0.0.1', login_user='dbfleet_backup', login_password=PASSWORD,
                        s3_bucket='offsite', s3_access_key='AKIA', s3_secret_key=S3_SECRET)
    paths, by_path, _items = desired(params)
    passfile, creds = by_path[paths['passfile']], by_path[paths['s3_credentials']]
    for item in (passfile, creds):
        assert isinstance(item, _desired.DesiredFile) and item.secret
        assert (item.owner, item.group, item.mode) == ('root', RUN_GROUP, 0o640)
    assert passfile.content.decode('utf-8') == passfile_line(connection_settings(params), PASSWORD)
    assert json.loads(creds.content.decode('utf-8')) == dict(aws_access_key_id='AKIA', aws_secret_access_key=S3_SECRET)
    for path, item in by_path.items():
        if not getattr(item, 'secret', False) and isinstance(item, _desired.DesiredFile):
            assert PASSWORD.encode() not in item.content and S3_SECRET.encode() not in item.content, path


def test_a_basebackup_schedule_says_so_in_its_cron_file(tmp_path):
    params = params_for(tmp_path, kind='basebackup', name='weekly-base')
    paths, by_path, _items = desired(params)
    assert '# dbfleet basebackup schedule "weekly-base": the whole cluster' in by_path[paths['cron']].content.decode()


def test_dropping_the_password_makes_the_passfile_obsolete_and_its_diff_shows_nothing(tmp_path):
    """A passfile left from a run with login_password goes once the option is dropped; no diff shows it."""
    params = params_for(tmp_path, login_password=PASSWORD)
    paths = desired(params)[0]
    os.makedirs(os.path.dirname(paths['passfile']))
    with open(paths['passfile'], 'w') as handle:
        handle.write(passfile_line(connection_settings(params), PASSWORD))
    items = [item for item in desired(params_for(tmp_path))[2] if item.path in (paths['passfile'], paths['s3_credentials'])]
    changed, diffs = _desired.plan(items)
    assert [item.path for item in changed] == [paths['passfile']]
    assert diffs == [dict(before_header=paths['passfile'], after_header=paths['passfile'], before=_desired.SECRET_SAME,
                          after='')]


def test_a_value_with_a_control_character_never_reaches_the_cron_file(tmp_path):
    params = params_for(tmp_path)
    paths, connection, config, command = plan_parts(params)
    with pytest.raises(pds.ScheduleError, match='control character'):
        pds.desired_state(params, paths, config, '0 3 * * *', connection, command[:-1] + ['--quiet\n* * * * * root id'])


# --- summary_sentence -------------------------------------------------------------------------------------------

def test_summary_without_a_run():
    params = dict(name='nightly', kind='dump', databases=['app_prod', 'billing'])
    result = dict(next_runs=['2026-12-02T03:00:00+00:00', '2026-12-03T03:00:00+00:00'])
    assert pds.summary_sentence(params, '0 3 * * *', result) == \
        'nightly: dump of app_prod, billing at "0 3 * * *", next run 2026-12-02T03:00:00+00:00.'
    assert pds.summary_sentence(params, '0 3 * * *', dict(next_runs=[])) == 'nightly: dump of app_prod, billing at "0 3 * * *".'


def test_summary_in_check_mode_says_a_dump_would_run_now():
    params = dict(name='nightly', kind='dump', databases=['all'])
    text = pds.summary_sentence(params, '0 3 * * *', dict(next_runs=[], run=dict(status='would run now')))
    assert text == 'nightly: dump of all at "0 3 * * *"; a dump would run now (check mode: nothing was run).'


def test_summary_names_the_artifacts_a_run_made():
    params = dict(name='weekly-base', kind='basebackup', databases=['all'])
    run = dict(status='ok', artifacts=[
        dict(status='ok', path='/srv/basebackups/base-20261201T210000Z', size=22 * 1024 * 1024 + 300 * 1024,
             sha256='5f1c' + '0' * 60),
        dict(status='failed', path='/srv/basebackups/never.tar', size=1, sha256='ab' * 32),
        dict(status='ok', path='/srv/basebackups/globals-20261201T210000Z.sql.zst', size=900, sha256=None),
    ])
    text = pds.summary_sentence(params, '0 4 * * 0', dict(next_runs=['2026-12-06T04:00:00+00:00'], run=run))
    assert text == ('weekly-base: base backup at "0 4 * * 0", next run 2026-12-06T04:00:00+00:00; ran now: '
                    'base-20261201T210000Z (22.3 MiB, sha256 5f1c00000000...), '
                    'globals-20261201T210000Z.sql.zst (900 bytes, sha256 ...).')


def test_summary_of_a_run_that_made_nothing():
    params = dict(name='nightly', kind='dump', databases=['all'])
    text = pds.summary_sentence(params, '0 3 * * *', dict(run=dict(status='ok', artifacts=[])))
    assert text.endswith('; ran now: nothing was made.')


@pytest.mark.parametrize('num,text', [(None, '? bytes'), (0, '0 bytes'), (1023, '1023 bytes'), (1536, '1.5 KiB'),
                                      (5 * 1024 ** 4, '5.0 TiB'), (3 * 1024 ** 5, '3072.0 TiB')])
def test_size_words(num, text):
    assert pds._size(num) == text


# --- the whole plan on disk (root: owners are root and another user) ---------------------------------------------

class Recorder:
    """What _desired.apply needs of a module: it records the backups it was asked for."""

    def __init__(self):
        self.backups = []

    def backup_before_overwrite(self, path, secret=False):
        self.backups.append((path, secret))


@pytest.mark.skipif(os.geteuid() != 0, reason='installs files owned by root and by another user')
def test_install_then_nothing_changes_and_a_rotated_password_shows_only_changed(tmp_path):
    os.chmod(tmp_path, 0o755)
    os.mkdir(tmp_path / 'cron.d')  # the cron drop-in directory is the system's; the module never makes it
    params = params_for(tmp_path, login_password=PASSWORD)
    paths, _by_path, items = desired(params)
    changed, diffs = _desired.plan(items)
    assert params['runner_path'] not in [d['after_header'] for d in diffs], 'the program is never shown in a diff'
    recorder = Recorder()
    _desired.apply(recorder, changed)
    assert recorder.backups == []
    run_gid = RUN_AS.pw_gid
    for path, (uid, gid, mode) in {
            paths['config']: (0, run_gid, 0o640), paths['passfile']: (0, run_gid, 0o640),
            params['runner_path']: (0, 0, 0o755), paths['cron']: (0, 0, 0o644),
            paths['state']: (RUN_AS.pw_uid, RUN_AS.pw_gid, 0o750), params['dest']: (RUN_AS.pw_uid, RUN_AS.pw_gid, 0o750)}.items():
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode), path
    assert not os.path.exists(paths['s3_credentials'])

    again = desired(params)[2]
    assert _desired.plan(again) == ([], [])

    rotated = desired(params_for(tmp_path, login_password=PASSWORD + '-rotated'))[2]
    changed, diffs = _desired.plan(rotated)
    assert [item.path for item in changed] == [paths['passfile']]
    assert diffs[0]['before'] == diffs[0]['after'] == _desired.SECRET_CHANGED
    _desired.apply(recorder, changed)
    assert recorder.backups == [(paths['passfile'], True)], 'the module is told it is a secret (never backed up)'
