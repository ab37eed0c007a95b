# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schedule configs: defaults, validation, loading (``_runner.config``)."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 18, 3, 0, 0, tzinfo=UTC)


def stamp_days_ago(days, hours=0):
    return naming.format_stamp(NOW - datetime.timedelta(days=days, hours=hours))


# --------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------

def good_config(**overrides):
    cfg = config.build_config('nightly', '/srv/backups', databases=['app_prod'])
    cfg.update(overrides)
    return cfg


def test_build_config_defaults():
    cfg = config.build_config('nightly', '/srv/backups/')
    assert cfg['dest'] == '/srv/backups'
    assert cfg['databases'] == 'all' and cfg['format'] == 'custom' and cfg['compression'] == 'zstd'
    assert cfg['retention_days'] == 14 and cfg['keep_min'] == 3 and cfg['globals'] is True and cfg['jobs'] == 1
    assert cfg['lock_file'] == '/var/lib/dbfleet/pg_dump/nightly/lock'
    assert cfg['state_dir'] == '/var/lib/dbfleet/pg_dump/nightly'
    assert cfg['log_file'] == '/var/log/dbfleet/pg_dump/nightly.log'
    assert cfg['connection'] == config.CONNECTION_DEFAULTS
    assert cfg['s3'] is None
    assert config.validate_config(cfg) == []


def test_build_config_none_means_default_and_fills_nested():
    cfg = config.build_config('n', '/b', format=None, connection={'host': '/run/postgresql', 'port': None, 'sslmode': ''},
                              s3={'bucket': 'bk', 'prefix': None})
    assert cfg['format'] == 'custom'
    assert cfg['connection']['host'] == '/run/postgresql' and cfg['connection']['port'] == 5432
    assert cfg['connection']['sslmode'] is None
    assert cfg['s3']['prefix'] == '' and cfg['s3']['part_size_mb'] == config.DEFAULT_PART_SIZE_MB
    assert config.validate_config(cfg) == []


def test_validate_accepts_a_partial_config_like_the_module_writes():
    """Missing optional keys are judged with the defaults the runner will apply."""
    cfg = {'name': 'nightly', 'dest': '/srv/backups', 'databases': ['app_prod'], 'compression_level': None,
           'connection': {'host': None, 'port': 5432, 'user': 'postgres', 'dbname': None, 'sslmode': None, 'passfile': None},
           's3': {'bucket': 'bk', 'prefix': 'db1/', 'endpoint_url': 'http://127.0.0.1:9000', 'region': None,
                  'credentials_file': None}}
    assert config.validate_config(cfg) == []


@pytest.mark.parametrize('overrides,fragment', [
    ({'name': '../x'}, 'name must be'),
    ({'name': None}, 'name must be'),
    ({'dest': 'relative/path'}, 'dest must be'),
    ({'dest': '/'}, 'dest must be'),
    ({'dest': '/srv/../etc'}, 'dest must be'),
    ({'format': 'tar'}, 'format must be'),
    ({'jobs': 0}, 'jobs must be'),
    ({'jobs': True}, 'jobs must be'),
    ({'jobs': 4}, 'jobs > 1 needs format: directory'),
    ({'compression': 'bzip2'}, 'compression must be'),
    ({'compression': 'zstd', 'compression_level': 25}, 'from 1 to 19'),
    ({'compression': 'gzip', 'compression_level': 0}, 'from 1 to 9'),
    ({'compression': 'none', 'compression_level': 3}, 'must be null when compression is none'),
    ({'compression_level': '3'}, 'compression_level for zstd'),
    ({'retention_days': -1}, 'retention_days must be'),
    ({'keep_min': 0}, 'keep_min must be an integer >= 1'),
    ({'databases': []}, 'databases must be'),
    ({'databases': 'app_prod'}, 'databases must be'),
    ({'databases': ['a/b']}, "contains '/'"),
    ({'databases': ['app\n']}, 'control character'),
    ({'exclude_databases': ['x\ty'], 'databases': 'all'}, 'control character'),
    ({'databases': ['.hidden']}, "starts with '.'"),
    ({'databases': ['x' * 64]}, '63-byte'),
    ({'databases': ['a', 'a']}, 'more than once'),
    ({'databases': ['globals']}, 'collides with the globals'),
    ({'exclude_databases': ['x']}, "only applies when databases is 'all'"),
    ({'exclude_databases': 'x'}, 'exclude_databases must be a list'),
    ({'globals': 'yes'}, 'globals must be true or false'),
    ({'lock_wait': -1}, 'lock_wait must be'),
    ({'lock_timeout': 0}, 'lock_timeout must be'),
    ({'lock_timeout': 1.5}, 'lock_timeout must be'),
    ({'lock_timeout': True}, 'lock_timeout must be'),
    ({'run_timeout': 0}, 'run_timeout must be'),
    ({'run_timeout': -5}, 'run_timeout must be'),
    ({'run_timeout': 'forever'}, 'run_timeout must be'),
    ({'lock_file': 'rel.lock'}, 'lock_file must be an absolute path'),
    ({'log_file': 'x.log'}, 'log_file must be an absolute path'),
    ({'pg_bin': 'bin'}, 'pg_bin must be'),
    ({'retention': 14}, "unknown config key 'retention'"),
    ({'connection': {'password': 'hunter2'}}, 'passwords never go into the config'),
    ({'connection': {'port': 70000}}, 'connection.port'),
    ({'connection': {'sslmode': 'maybe'}}, 'connection.sslmode'),
    ({'connection': {'hots': 'x'}}, "unknown connection key 'hots'"),
    ({'connection': {'passfile': '.pgpass'}}, 'connection.passfile'),
    ({'connection': 'host=x'}, 'connection must be an object'),
    ({'s3': {'prefix': 'x/'}}, 's3.bucket'),
    ({'s3': {'bucket': 'b', 'aws_secret_access_key': 'k'}}, 'credentials_file'),
    ({'s3': {'bucket': 'b', 'endpoint_url': 'ftp://x'}}, 's3.endpoint_url'),
    ({'s3': {'bucket': 'b', 'prefix': '/abs'}}, "must not start with '/'"),
    ({'s3': {'bucket': 'b', 'credentials_file': 'creds.json'}}, 's3.credentials_file'),
    ({'s3': {'bucket': 'b', 'part_size_mb': 1}}, 's3.part_size_mb'),
    ({'s3': 'bucket'}, 's3 must be null or an object'),
    ({'kind': 'logical'}, 'kind must be one of dump, basebackup'),
    ({'databases': ['base']}, 'the name is reserved'),
    ({'wal_archive': '/srv/wal'}, 'wal_archive only applies to kind: basebackup'),
    ({'wal_archive': 'wal'}, 'wal_archive must be null or a normalized absolute'),
    ({'wal_archive': '/srv/../wal'}, 'wal_archive must be null or a normalized absolute'),
])
def test_validate_config_errors(overrides, fragment):
    cfg = good_config()
    for key, value in overrides.items():
        if key in ('connection', 's3') and isinstance(value, dict):
            value = dict(cfg[key] or {}, **value) if key == 'connection' else value
        cfg[key] = value
    errors = config.validate_config(cfg)
    assert any(fragment in error for error in errors), errors


def test_validate_config_globals_db_allowed_without_globals_dump():
    assert config.validate_config(good_config(databases=['globals'], globals=False)) == []


def test_validate_config_not_a_dict():
    assert config.validate_config(['x']) == ['the config must be a JSON object']


def test_load_config(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'name': 'n', 'dest': '/b', 'databases': ['app']}))
    cfg, errors = config.load_config(str(path))
    assert errors == [] and cfg['format'] == 'custom' and cfg['state_dir'] == '/var/lib/dbfleet/pg_dump/n'
    path.write_text('{not json')
    cfg, errors = config.load_config(str(path))
    assert cfg is None and 'cannot read config' in errors[0]
    cfg, errors = config.load_config(str(tmp_path / 'missing.json'))
    assert cfg is None and 'cannot read config' in errors[0]
    path.write_text(json.dumps({'name': 'n', 'dest': '/b', 'keep_min': 0}))
    cfg, errors = config.load_config(str(path))
    assert cfg is None and any('keep_min' in e for e in errors)


# --------------------------------------------------------------------------
# kind: basebackup -- config
# --------------------------------------------------------------------------

def test_build_config_basebackup_defaults():
    cfg = config.build_config('weekly', '/srv/base', kind='basebackup', wal_archive='/srv/wal-archive/')
    assert cfg['kind'] == 'basebackup' and cfg['globals'] is False  # a base backup holds every role already
    assert cfg['wal_archive'] == '/srv/wal-archive'
    assert cfg['databases'] == 'all' and cfg['format'] == 'custom' and cfg['jobs'] == 1
    assert config.validate_config(cfg) == []
    assert config.build_config('nightly', '/srv/b')['kind'] == 'dump'
    assert config.build_config('nightly', '/srv/b')['globals'] is True
    assert config.validate_config({'name': 'w', 'dest': '/srv/base', 'kind': 'basebackup'}) == []  # as a module would write it


@pytest.mark.parametrize('overrides,fragment', [
    ({'databases': ['app_prod']}, 'databases does not apply to kind: basebackup'),
    ({'exclude_databases': ['postgres']}, 'exclude_databases does not apply to kind: basebackup'),
    ({'format': 'directory'}, 'format does not apply to kind: basebackup'),
    ({'format': 'plain'}, 'format does not apply to kind: basebackup'),
    ({'jobs': 4}, 'jobs does not apply to kind: basebackup'),
    ({'globals': True}, 'globals must be false or unset with kind: basebackup'),
    ({'globals': 'no'}, 'globals must be false or unset with kind: basebackup'),
    ({'wal_archive': '/srv/base'}, 'wal_archive must not be dest'),
    ({'wal_archive': '/'}, 'wal_archive must be null or a normalized absolute'),
    ({'compression': 'bzip2'}, 'compression must be'),
    ({'compression': 'zstd', 'compression_level': 20}, 'from 1 to 19'),
])
def test_validate_basebackup_rejects_contradictions(overrides, fragment):
    cfg = config.build_config('weekly', '/srv/base', kind='basebackup', **overrides)
    errors = config.validate_config(cfg)
    assert any(fragment in error for error in errors), errors
    assert len(errors) == 1, errors  # one clear sentence, not a cascade


def test_validate_basebackup_accepts_explicit_defaults_and_a_globals_db_is_fine():
    cfg = config.build_config('weekly', '/srv/base', kind='basebackup', databases='all', exclude_databases=[], format='custom',
                              jobs=1, globals=False, compression='gzip', compression_level=9)
    assert config.validate_config(cfg) == []


def test_base_artifact_names():
    name = naming.artifact_name(naming.BASE_NAME, NOW, 'directory', 'none')
    assert name == 'base-20260618T030000Z.dir'
    parsed = naming.parse_artifact_name(name)
    assert (parsed['db'], parsed['kind'], parsed['stamp']) == ('base', 'dump', '20260618T030000Z')
    assert naming.parse_partial_name(naming.partial_name(name, 99)) == (name, 99)
    assert naming.manifest_name('base', NOW) == 'base-20260618T030000Z.manifest.json'


def test_no_run_waits_forever_by_default():
    cfg = config.build_config('nightly', '/srv/backups')
    assert cfg['lock_timeout'] == 300 and cfg['run_timeout'] == 6 * 3600
    assert config.validate_config(dict(cfg, lock_timeout=1, run_timeout=1)) == []
