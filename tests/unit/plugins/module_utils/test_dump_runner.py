# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure parts of the host-side dump runner."""

from __future__ import annotations

import base64
import datetime
import fnmatch
import hashlib
import inspect
import itertools
import json
import os
import random
import subprocess
import sys

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _dump_runner as runner

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 18, 3, 0, 0, tzinfo=UTC)


def stamp_days_ago(days, hours=0):
    return runner.format_stamp(NOW - datetime.timedelta(days=days, hours=hours))


# --------------------------------------------------------------------------
# shipping: the module writes inspect.getsource() of this file to hosts
# --------------------------------------------------------------------------

def test_source_has_no_shebang_and_license_header():
    source = inspect.getsource(runner)
    assert not source.startswith('#!'), 'the installer prepends the shebang; sanity forbids one in module_utils'
    assert '# Copyright: (c) 2026, dbfleet maintainers' in source.splitlines()[1]
    assert 'from __future__ import absolute_import, division, print_function' in source
    assert '__metaclass__ = type' in source


def test_import_has_no_side_effects_and_needs_no_boto3(tmp_path):
    """Importing prints nothing, writes nothing, and works without boto3 on the path."""
    code = (
        'import sys, builtins\n'
        'real_import = builtins.__import__\n'
        'def guard(name, *a, **k):\n'
        '    if name.split(".")[0] in ("boto3", "botocore"):\n'
        '        raise ImportError("boto3 must be imported lazily")\n'
        '    return real_import(name, *a, **k)\n'
        'builtins.__import__ = guard\n'
        'sys.path.insert(0, %r)\n'
        'import _dump_runner\n'
        'print(_dump_runner.RUNNER_VERSION)\n' % os.path.dirname(runner.__file__)
    )
    proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == runner.RUNNER_VERSION
    assert proc.stderr == ''
    assert os.listdir(str(tmp_path)) == []


def test_source_compiles_for_python38_grammar():
    """No syntax newer than 3.8 (the oldest target Python ansible-core 2.19 supports)."""
    import ast
    source = inspect.getsource(runner)
    ast.parse(source, feature_version=(3, 8))


# --------------------------------------------------------------------------
# naming
# --------------------------------------------------------------------------

@pytest.mark.parametrize('fmt,compression,expected', [
    ('custom', 'zstd', 'app_prod-20260618T030000Z.dump.zst'),
    ('custom', 'lz4', 'app_prod-20260618T030000Z.dump.lz4'),
    ('custom', 'none', 'app_prod-20260618T030000Z.dump'),
    ('custom', None, 'app_prod-20260618T030000Z.dump'),
    ('plain', 'gzip', 'app_prod-20260618T030000Z.sql.gz'),
    ('plain', 'zstd', 'app_prod-20260618T030000Z.sql.zst'),
    ('plain', 'none', 'app_prod-20260618T030000Z.sql'),
    ('directory', 'none', 'app_prod-20260618T030000Z.dir'),
])
def test_artifact_name(fmt, compression, expected):
    assert runner.artifact_name('app_prod', '20260618T030000Z', fmt, compression) == expected
    assert runner.artifact_name('app_prod', NOW, fmt, compression) == expected


def test_artifact_name_rejects_nonsense():
    with pytest.raises(ValueError):
        runner.artifact_name('db', '2026-06-18', 'custom', 'zstd')
    with pytest.raises(ValueError):
        runner.artifact_name('db', '20260618T030000Z', 'tar', 'zstd')
    with pytest.raises(ValueError):
        runner.artifact_name('db', '20260618T030000Z', 'directory', 'zstd')  # a directory cannot be piped


def test_globals_and_manifest_names():
    assert runner.artifact_name('globals', '20260618T030000Z', 'plain', 'zstd') == 'globals-20260618T030000Z.sql.zst'
    assert runner.manifest_name('app_prod', '20260618T030000Z') == 'app_prod-20260618T030000Z.manifest.json'


def test_dump_glob_never_matches_a_manifest_or_temp_file():
    names = [runner.artifact_name('app_prod', NOW, 'custom', 'zstd'), runner.manifest_name('app_prod', NOW),
             runner.partial_name(runner.artifact_name('app_prod', NOW, 'custom', 'zstd'), 123)]
    assert fnmatch.filter(names, 'app_prod-*.dump*') == [names[0]]


@pytest.mark.parametrize('db', ['app_prod', 'app-prod', 'a-20260101T000000Z', 'x.y', 'Ünïcode db'])
@pytest.mark.parametrize('fmt,compression', [('custom', 'zstd'), ('custom', 'none'), ('plain', 'gzip'),
                                             ('plain', 'lz4'), ('directory', 'none')])
def test_parse_round_trip(db, fmt, compression):
    parsed = runner.parse_artifact_name(runner.artifact_name(db, NOW, fmt, compression))
    assert parsed['db'] == db
    assert parsed['stamp'] == '20260618T030000Z'
    assert parsed['when'] == NOW
    assert parsed['kind'] == 'dump'
    assert parsed['format'] == fmt
    assert parsed['compression'] == compression
    manifest = runner.parse_artifact_name(runner.manifest_name(db, NOW))
    assert (manifest['db'], manifest['kind'], manifest['format']) == (db, 'manifest', None)


@pytest.mark.parametrize('name', [
    'app_prod.dump', 'app_prod-2026.dump', 'app_prod-20260618T030000Z.dump.bz2', 'app_prod-20260618T030000Z.tar',
    'app_prod-20261318T030000Z.dump',  # month 13
    '.app_prod-20260618T030000Z.dump.zst.partial-42', 'notes.txt', 'last-run.json', '-20260618T030000Z.dump',
])
def test_parse_ignores_foreign_names(name):
    assert runner.parse_artifact_name(name) is None


def test_partial_names():
    final = runner.artifact_name('app', NOW, 'custom', 'zstd')
    assert runner.partial_name(final, 42) == '.' + final + '.partial-42'
    assert runner.parse_partial_name('.' + final + '.partial-42') == (final, 42)
    assert runner.parse_partial_name('.' + runner.manifest_name('app', NOW) + '.partial-7')[1] == 7
    assert runner.parse_partial_name('.bashrc.partial-1') is None  # not one of ours
    assert runner.parse_partial_name(final) is None


# --------------------------------------------------------------------------
# compression plan
# --------------------------------------------------------------------------

ALL_COMBINATIONS = list(itertools.product(runner.FORMATS, runner.COMPRESSIONS, (None, 1, 5), (13, 15, 16, 17)))


@pytest.mark.parametrize('fmt,compression,level,major', ALL_COMBINATIONS)
def test_never_compress_twice(fmt, compression, level, major):
    if compression == 'none' and level is not None:
        return
    plan = runner.compression_plan(fmt, compression, level, major)
    if plan['external']:
        assert plan['by'] == 'external'
        assert plan['pg_dump_args'] == ['-Z0'], 'pg_dump must not compress when an external compressor does'
        assert fmt != 'directory'
        assert plan['extension'].endswith(runner.COMPRESSOR_SUFFIX[plan['external_compression']])
    else:
        assert plan['external_compression'] == 'none'
        assert plan['extension'] == runner.FORMAT_EXTENSION[fmt]
        if compression == 'none':
            assert plan['by'] == 'none' and plan['pg_dump_args'] == ['-Z0'] and plan['level'] is None
        else:
            assert plan['by'] == 'pg_dump' and plan['pg_dump_args'] != ['-Z0']
    if major < 16:
        assert not any('zstd' in arg or 'lz4' in arg for arg in plan['pg_dump_args']), 'pg_dump < 16 only knows gzip'
    assert plan['reason']


def test_pg15_custom_zstd_is_piped():
    plan = runner.compression_plan('custom', 'zstd', None, 15)
    assert plan['external'] == ['zstd', '-q', '-T0', '-%d' % runner.DEFAULT_LEVEL['zstd'], '-c']
    assert plan['pg_dump_args'] == ['-Z0']
    assert (plan['compression'], plan['level'], plan['extension']) == ('zstd', runner.DEFAULT_LEVEL['zstd'], '.dump.zst')


def test_pg15_custom_gzip_is_native():
    plan = runner.compression_plan('custom', 'gzip', 6, 15)
    assert plan['external'] is None
    assert plan['pg_dump_args'] == ['-Z', '6']
    assert (plan['by'], plan['extension']) == ('pg_dump', '.dump')


def test_plain_gzip_uses_external_gzip():
    plan = runner.compression_plan('plain', 'gzip', 9, 15)
    assert plan['external'] == ['gzip', '-c', '-9']
    assert plan['pg_dump_args'] == ['-Z0']
    assert plan['extension'] == '.sql.gz'


def test_pg15_directory_zstd_falls_back_to_native_gzip_and_says_so():
    plan = runner.compression_plan('directory', 'zstd', 7, 15)
    assert plan['external'] is None
    assert (plan['compression'], plan['level']) == ('gzip', runner.DEFAULT_LEVEL['gzip'])
    assert (plan['requested_compression'], plan['requested_level']) == ('zstd', 7)
    assert plan['pg_dump_args'] == ['-Z', str(runner.DEFAULT_LEVEL['gzip'])]
    assert 'gzip' in plan['reason'] and 'zstd' in plan['reason'] and '16' in plan['reason']


def test_pg16_native_zstd_and_lz4():
    plan = runner.compression_plan('custom', 'zstd', 5, 16)
    assert (plan['by'], plan['pg_dump_args'], plan['extension']) == ('pg_dump', ['--compress=zstd:5'], '.dump')
    plan = runner.compression_plan('directory', 'lz4', None, 17)
    assert plan['pg_dump_args'] == ['--compress=lz4:1'] and plan['compression'] == 'lz4'
    plan = runner.compression_plan('plain', 'zstd', None, 16)
    assert plan['by'] == 'external' and plan['pg_dump_args'] == ['-Z0']


def test_default_levels_are_fast_ones():
    assert runner.DEFAULT_LEVEL == {'zstd': 2, 'gzip': 1, 'lz4': 1}
    assert runner.compression_plan('custom', 'none', None, 15)['pg_dump_args'] == ['-Z0']


def test_compression_plan_rejects_unknown():
    with pytest.raises(ValueError):
        runner.compression_plan('custom', 'bzip2', None, 15)
    with pytest.raises(ValueError):
        runner.compression_plan('tar', 'zstd', None, 15)


# --------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------

def entry(days, status='ok', db='app', hours=0):
    stamp = stamp_days_ago(days, hours)
    return {'db': db, 'stamp': stamp, 'status': status, 'dumps': ['/b/%s-%s.dump.zst' % (db, stamp)],
            'manifest': '/b/%s-%s.manifest.json' % (db, stamp)}


def stamps(entries):
    return sorted(item['stamp'] for item in entries)


def test_deletes_old_good_dumps_beyond_keep_min():
    entries = [entry(d) for d in (0, 1, 2, 20, 30, 40)]
    keep, delete = runner.plan_retention(entries, NOW, 14, 3)
    assert stamps(delete) == stamps([entry(20), entry(30), entry(40)])
    assert stamps(keep) == stamps([entry(0), entry(1), entry(2)])
    assert all('older than 14 days' in item['reason'] for item in delete)


def test_keep_min_protects_old_good_dumps():
    entries = [entry(d) for d in (20, 30, 40, 50, 60)]
    keep, delete = runner.plan_retention(entries, NOW, 14, 3)
    assert stamps(keep) == stamps([entry(20), entry(30), entry(40)])
    assert stamps(delete) == stamps([entry(50), entry(60)])


def test_failed_runs_never_count_as_good():
    entries = [entry(d, 'failed') for d in (0, 1, 2, 3, 20)] + [entry(30), entry(40)]
    keep, delete = runner.plan_retention(entries, NOW, 14, 2)
    assert stamps(keep) == stamps([entry(0), entry(1), entry(2), entry(3), entry(30), entry(40)])
    assert stamps(delete) == stamps([entry(20)])
    assert delete[0]['reason'].startswith('failed run')


@pytest.mark.parametrize('status', ['missing', 'unknown'])
def test_missing_or_unmanifested_dumps_are_not_good(status):
    entries = [entry(1, status), entry(20, status), entry(30)]
    keep, delete = runner.plan_retention(entries, NOW, 14, 1)
    assert stamps(keep) == stamps([entry(1), entry(30)])  # the only good dump survives, however old
    assert stamps(delete) == stamps([entry(20)])


def test_newest_good_survives_any_number_of_failures_even_with_keep_min_zero():
    entries = [entry(100)] + [entry(d, 'failed') for d in range(1, 100)]
    keep, delete = runner.plan_retention(entries, NOW, 0, 0)
    assert entry(100)['stamp'] in stamps(keep)
    assert len(delete) == 99  # failed manifests older than 0 days go


def test_young_entries_are_kept_whatever_their_status():
    entries = [entry(0, 'failed', hours=1), entry(0, 'unknown', hours=2), entry(0, hours=3), entry(0, hours=4)]
    keep, delete = runner.plan_retention(entries, NOW, 1, 1)
    assert delete == [] and len(keep) == 4


def test_boundary_is_strictly_older_than_retention():
    keep, delete = runner.plan_retention([entry(14), entry(14, hours=1), entry(0)], NOW, 14, 1)
    assert stamps(delete) == [stamp_days_ago(14, 1)]
    assert stamp_days_ago(14) in stamps(keep)


def test_future_stamps_are_kept():
    future = {'db': 'app', 'stamp': runner.format_stamp(NOW + datetime.timedelta(days=3)), 'status': 'failed'}
    keep, delete = runner.plan_retention([future, entry(0, hours=1)], NOW, 0, 1)
    assert future['stamp'] in stamps(keep)
    assert stamps(delete) == [] and len(keep) == 2  # the good one is the newest good: protected


def test_databases_are_independent():
    entries = [entry(30, db='a'), entry(40, db='a'), entry(1, db='b'), entry(2, db='b'), entry(50, db='b')]
    keep, delete = runner.plan_retention(entries, NOW, 14, 1)
    assert sorted((item['db'], item['stamp']) for item in delete) == [('a', stamp_days_ago(40)), ('b', stamp_days_ago(50))]
    assert {item['db'] for item in keep} == {'a', 'b'}


def test_plan_retention_is_pure_and_accepts_datetimes():
    entries = [entry(30), entry(40)]
    snapshot = json.dumps(entries, sort_keys=True)
    with_datetime = [dict(entries[0], stamp=runner.parse_stamp(entries[0]['stamp'])), entries[1]]
    keep, delete = runner.plan_retention(with_datetime, NOW, 14, 1)
    assert json.dumps(entries, sort_keys=True) == snapshot
    assert len(keep) == 1 and len(delete) == 1 and 'reason' not in entries[0]


def test_retention_invariants_random_histories():
    """Property check over random histories: never below keep_min good, nothing young deleted."""
    rng = random.Random(20260618)
    for _history in range(300):
        keep_min = rng.randint(1, 4)
        retention = rng.randint(0, 20)
        entries = []
        for offset in rng.sample(range(0, 60 * 24), rng.randint(0, 25)):  # hours ago, distinct
            status = rng.choice(['ok', 'ok', 'failed', 'failed', 'failed', 'missing', 'unknown'])
            entries.append({'db': 'app', 'stamp': runner.format_stamp(NOW - datetime.timedelta(hours=offset)), 'status': status})
        keep, delete = runner.plan_retention(entries, NOW, retention, keep_min)
        assert len(keep) + len(delete) == len(entries)
        good = sorted((item['stamp'] for item in entries if item['status'] == 'ok'), reverse=True)
        kept = set(item['stamp'] for item in keep)
        assert set(good[:keep_min]) <= kept
        horizon = NOW - datetime.timedelta(days=retention)
        for item in delete:
            assert runner.parse_stamp(item['stamp']) < horizon


# --------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------

def good_config(**overrides):
    cfg = runner.build_config('nightly', '/srv/backups', databases=['app_prod'])
    cfg.update(overrides)
    return cfg


def test_build_config_defaults():
    cfg = runner.build_config('nightly', '/srv/backups/')
    assert cfg['dest'] == '/srv/backups'
    assert cfg['databases'] == 'all' and cfg['format'] == 'custom' and cfg['compression'] == 'zstd'
    assert cfg['retention_days'] == 14 and cfg['keep_min'] == 3 and cfg['globals'] is True and cfg['jobs'] == 1
    assert cfg['lock_file'] == '/var/lib/dbfleet/pg_dump/nightly.lock'
    assert cfg['state_dir'] == '/var/lib/dbfleet/pg_dump/nightly'
    assert cfg['log_file'] == '/var/log/dbfleet/pg_dump-nightly.log'
    assert cfg['connection'] == runner.CONNECTION_DEFAULTS
    assert cfg['s3'] is None
    assert runner.validate_config(cfg) == []


def test_build_config_none_means_default_and_fills_nested():
    cfg = runner.build_config('n', '/b', format=None, connection={'host': '/run/postgresql', 'port': None, 'sslmode': ''},
                              s3={'bucket': 'bk', 'prefix': None})
    assert cfg['format'] == 'custom'
    assert cfg['connection']['host'] == '/run/postgresql' and cfg['connection']['port'] == 5432
    assert cfg['connection']['sslmode'] is None
    assert cfg['s3']['prefix'] == '' and cfg['s3']['part_size_mb'] == runner.DEFAULT_PART_SIZE_MB
    assert runner.validate_config(cfg) == []


def test_validate_accepts_a_partial_config_like_the_module_writes():
    """Missing optional keys are judged with the defaults the runner will apply."""
    cfg = {'name': 'nightly', 'dest': '/srv/backups', 'databases': ['app_prod'], 'compression_level': None,
           'connection': {'host': None, 'port': 5432, 'user': 'postgres', 'dbname': None, 'sslmode': None, 'passfile': None},
           's3': {'bucket': 'bk', 'prefix': 'db1/', 'endpoint_url': 'http://127.0.0.1:9000', 'region': None,
                  'credentials_file': None}}
    assert runner.validate_config(cfg) == []


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
    ({'databases': ['.hidden']}, "starts with '.'"),
    ({'databases': ['x' * 64]}, '63-byte'),
    ({'databases': ['a', 'a']}, 'more than once'),
    ({'databases': ['globals']}, 'collides with the globals'),
    ({'exclude_databases': ['x']}, "only applies when databases is 'all'"),
    ({'exclude_databases': 'x'}, 'exclude_databases must be a list'),
    ({'globals': 'yes'}, 'globals must be true or false'),
    ({'lock_wait': -1}, 'lock_wait must be'),
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
    errors = runner.validate_config(cfg)
    assert any(fragment in error for error in errors), errors


def test_validate_config_globals_db_allowed_without_globals_dump():
    assert runner.validate_config(good_config(databases=['globals'], globals=False)) == []


def test_validate_config_not_a_dict():
    assert runner.validate_config(['x']) == ['the config must be a JSON object']


def test_load_config(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'name': 'n', 'dest': '/b', 'databases': ['app']}))
    cfg, errors = runner.load_config(str(path))
    assert errors == [] and cfg['format'] == 'custom' and cfg['state_dir'] == '/var/lib/dbfleet/pg_dump/n'
    path.write_text('{not json')
    cfg, errors = runner.load_config(str(path))
    assert cfg is None and 'cannot read config' in errors[0]
    cfg, errors = runner.load_config(str(tmp_path / 'missing.json'))
    assert cfg is None and 'cannot read config' in errors[0]
    path.write_text(json.dumps({'name': 'n', 'dest': '/b', 'keep_min': 0}))
    cfg, errors = runner.load_config(str(path))
    assert cfg is None and any('keep_min' in e for e in errors)


# --------------------------------------------------------------------------
# hashing while streaming, S3 composite checksums
# --------------------------------------------------------------------------

@pytest.mark.parametrize('part_size,chunk', [(0, 7), (10, 3), (10, 10), (10, 25), (7, 1), (16, 64)])
def test_stream_digest_parts(part_size, chunk):
    data = bytes(range(256)) * 3
    digest = runner.StreamDigest(part_size)
    for offset in range(0, len(data), chunk):
        digest.update(memoryview(data)[offset:offset + chunk])
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)
    if part_size:
        expected = [hashlib.sha256(data[i:i + part_size]).digest() for i in range(0, len(data), part_size)]
        assert digest.part_digests() == expected
    else:
        assert digest.part_digests() == []


def test_s3_composite_checksum_matches_aws_definition():
    parts = [b'a' * 5, b'b' * 3]
    digests = [hashlib.sha256(p).digest() for p in parts]
    expected = base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode() + '-2'
    assert runner.s3_composite_checksum(digests) == expected
    assert runner._checksum_matches(expected, expected)
    assert runner._checksum_matches(expected.split('-')[0], expected)  # moto leaves out "-N"
    assert not runner._checksum_matches(expected.split('-')[0] + '-3', expected)


# --------------------------------------------------------------------------
# the pipeline: every exit status counts, hashing while streaming
# --------------------------------------------------------------------------

def run_pipe(tmp_path, stages):
    out = tmp_path / 'out.bin'
    fd = os.open(str(out), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        digest = runner.StreamDigest()
        result = runner.run_pipeline(stages, dict(os.environ), fd, digest)
    finally:
        os.close(fd)
    return result, digest, out.read_bytes()


def test_pipeline_streams_and_hashes(tmp_path):
    result, digest, data = run_pipe(tmp_path, [('gen', ['sh', '-c', 'seq 1 200000']), ('gzip', ['gzip', '-c', '-1'])])
    assert result['exit_status'] == {'gen': 0, 'gzip': 0} and result['write_error'] is None
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert subprocess.run(['gzip', '-dc'], input=data, capture_output=True, check=True).stdout.startswith(b'1\n2\n')


def test_pipeline_reports_a_failed_first_stage_even_if_the_compressor_succeeds(tmp_path):
    result, _digest, _data = run_pipe(tmp_path, [('pg_dump', ['sh', '-c', 'echo partial; echo boom >&2; exit 3']),
                                                 ('gzip', ['gzip', '-c'])])
    assert result['exit_status'] == {'pg_dump': 3, 'gzip': 0}
    assert 'boom' in result['stderr']['pg_dump']


def test_pipeline_reports_a_failed_compressor(tmp_path):
    result, _digest, _data = run_pipe(tmp_path, [('pg_dump', ['sh', '-c', 'seq 1 100000']),
                                                 ('zstd', ['sh', '-c', 'head -c 10 >/dev/null; echo broken >&2; exit 1'])])
    assert result['exit_status']['zstd'] == 1
    assert result['exit_status']['pg_dump'] != 0  # SIGPIPE or EPIPE: it could not finish either


def test_main_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'name': 'bad name', 'dest': 'rel'}))
    assert runner.main(['--config', str(path), '--json']) == runner.EXIT_BAD_CONFIG
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary['status'] == 'failed' and summary['exit_code'] == 2
    assert any('dest must be' in e for e in summary['errors'])
    assert 'bad config' in err
    assert os.listdir(str(tmp_path)) == ['c.json']


def test_exit_codes():
    assert (runner.EXIT_OK, runner.EXIT_FAILED, runner.EXIT_BAD_CONFIG, runner.EXIT_SKIPPED) == (0, 1, 2, 75)


# --------------------------------------------------------------------------
# what retention sees on disk
# --------------------------------------------------------------------------

def test_collect_entries_status(tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()

    def write(db, days, status=None, dump=True, manifest_path_ok=True):
        stamp = stamp_days_ago(days)
        name = runner.artifact_name(db, stamp, 'custom', 'zstd')
        if dump:
            (dest / name).write_bytes(b'x')
        if status is not None:
            path = str(dest / name) if manifest_path_ok else '/elsewhere/other.dump'
            (dest / runner.manifest_name(db, stamp)).write_text(json.dumps({'status': status, 'path': path}))
        return stamp

    ok = write('app', 1, 'ok')
    failed = write('app', 2, 'failed', dump=False)
    missing = write('app', 3, 'ok', dump=False)
    unknown = write('app', 4, None)
    mismatch = write('app', 5, 'ok', manifest_path_ok=False)
    write('other', 1, 'ok')
    (dest / 'notes.txt').write_text('x')
    (dest / ('.' + runner.artifact_name('app', stamp_days_ago(6), 'custom', 'zstd') + '.partial-1')).write_bytes(b'x')
    run = runner.DumpRun(runner.build_config('t', str(dest), databases=['app']), log=lambda message: None)
    entries = {item['stamp']: item['status'] for item in run.collect_entries({'app'})}
    assert entries == {ok: 'ok', failed: 'failed', missing: 'missing', unknown: 'unknown', mismatch: 'missing'}


# --------------------------------------------------------------------------
# kind: basebackup -- config
# --------------------------------------------------------------------------

def test_build_config_basebackup_defaults():
    cfg = runner.build_config('weekly', '/srv/base', kind='basebackup', wal_archive='/srv/wal-archive/')
    assert cfg['kind'] == 'basebackup' and cfg['globals'] is False  # a base backup holds every role already
    assert cfg['wal_archive'] == '/srv/wal-archive'
    assert cfg['databases'] == 'all' and cfg['format'] == 'custom' and cfg['jobs'] == 1
    assert runner.validate_config(cfg) == []
    assert runner.build_config('nightly', '/srv/b')['kind'] == 'dump'
    assert runner.build_config('nightly', '/srv/b')['globals'] is True
    assert runner.validate_config({'name': 'w', 'dest': '/srv/base', 'kind': 'basebackup'}) == []  # as a module would write it


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
    cfg = runner.build_config('weekly', '/srv/base', kind='basebackup', **overrides)
    errors = runner.validate_config(cfg)
    assert any(fragment in error for error in errors), errors
    assert len(errors) == 1, errors  # one clear sentence, not a cascade


def test_validate_basebackup_accepts_explicit_defaults_and_a_globals_db_is_fine():
    cfg = runner.build_config('weekly', '/srv/base', kind='basebackup', databases='all', exclude_databases=[], format='custom',
                              jobs=1, globals=False, compression='gzip', compression_level=9)
    assert runner.validate_config(cfg) == []


def test_base_artifact_names():
    name = runner.artifact_name(runner.BASE_NAME, NOW, 'directory', 'none')
    assert name == 'base-20260618T030000Z.dir'
    parsed = runner.parse_artifact_name(name)
    assert (parsed['db'], parsed['kind'], parsed['stamp']) == ('base', 'dump', '20260618T030000Z')
    assert runner.parse_partial_name(runner.partial_name(name, 99)) == (name, 99)
    assert runner.manifest_name('base', NOW) == 'base-20260618T030000Z.manifest.json'


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
    assert runner.wal_file_name(timeline, lsn, size) == expected


@pytest.mark.parametrize('args', [(1, '0/0', 3 * MIB), (1, '0/0', 512 * 1024), (0, '0/0', 16 * MIB), (1, '0-0', 16 * MIB),
                                  (1, '0/0', None)])
def test_wal_file_name_rejects_nonsense(args):
    with pytest.raises(ValueError):
        runner.wal_file_name(*args)


def test_lsn_round_trip():
    for text in ('0/0', '0/2000028', '1A/5C000060', 'FFFFFFFF/FFFFFFFF'):
        assert runner.format_lsn(runner.parse_lsn(text)) == text
    assert runner.parse_lsn('0/2000028') == 0x2000028 and runner.parse_lsn('1/0') == 1 << 32
    for bad in ('', '0/', '/1', 'x/1', '123456789/0', None, 5):
        with pytest.raises(ValueError):
            runner.parse_lsn(bad)


def test_wal_info_from_backup_manifest_single_timeline():
    data = {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000100'}]}
    info = runner.wal_info_from_backup_manifest(data, 16 * MIB)
    assert info == {'start_lsn': '0/2000028', 'end_lsn': '0/2000100', 'timeline': 1, 'end_timeline': 1,
                    'start_wal_file': '000000010000000000000002', 'end_wal_file': '000000010000000000000002',
                    'wal_segment_size': 16 * MIB,
                    'wal_ranges': [{'timeline': 1, 'start_lsn': '0/2000028', 'end_lsn': '0/2000100'}]}
    # the end LSN exactly at a segment boundary: the last byte needed is in the segment before
    data = {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/4000000'}]}
    assert runner.wal_info_from_backup_manifest(data, 16 * MIB)['end_wal_file'] == '000000010000000000000003'
    unknown = runner.wal_info_from_backup_manifest(data, None)
    assert unknown['start_wal_file'] is None and unknown['end_wal_file'] is None and unknown['start_lsn'] == '0/2000028'


def test_wal_info_from_backup_manifest_across_a_timeline_switch():
    """PostgreSQL lists the newest timeline first; the start is the lowest LSN, on its own timeline."""
    data = {'WAL-Ranges': [{'Timeline': 2, 'Start-LSN': '0/5000000', 'End-LSN': '0/6000100'},
                           {'Timeline': 1, 'Start-LSN': '0/3000028', 'End-LSN': '0/5000000'}]}
    info = runner.wal_info_from_backup_manifest(data, 16 * MIB)
    assert (info['start_lsn'], info['timeline'], info['start_wal_file']) == ('0/3000028', 1, '000000010000000000000003')
    assert (info['end_lsn'], info['end_timeline'], info['end_wal_file']) == ('0/6000100', 2, '000000020000000000000006')


@pytest.mark.parametrize('data', [{}, {'WAL-Ranges': []}, {'WAL-Ranges': [{'Timeline': '1', 'Start-LSN': '0/1', 'End-LSN': '0/2'}]},
                                  {'WAL-Ranges': [{'Timeline': 1, 'Start-LSN': 'nope', 'End-LSN': '0/2'}]}, [], None])
def test_wal_info_from_backup_manifest_rejects_garbage(data):
    with pytest.raises(ValueError):
        runner.wal_info_from_backup_manifest(data, 16 * MIB)


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
        assert runner._wal_segment_size_from_tar(str(directory)) == 2 * MIB
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'pg_wal.tar.zst').write_bytes(b'not readable without zstd')
    assert runner._wal_segment_size_from_tar(str(empty)) is None


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
    plan = runner.basebackup_compression_plan(compression, level)
    assert plan['args'] == args and plan['format'] == 'tar' and plan['external'] is None
    assert plan['compression'] == compression and plan['requested_compression'] == compression
    assert plan['by'] == ('none' if compression == 'none' else 'pg_basebackup')
    assert plan['level'] == (None if compression == 'none' else level or runner.DEFAULT_LEVEL[compression])
    assert (suffix_note in plan['reason']) if suffix_note else 'stays uncompressed' not in plan['reason']
    with pytest.raises(ValueError):
        runner.basebackup_compression_plan('bzip2', None)


def test_basebackup_argv_has_no_connection_or_secret():
    plan = runner.basebackup_compression_plan('zstd', None)
    argv = runner.basebackup_argv('/usr/lib/postgresql/15/bin/pg_basebackup', '/srv/b/.base-X.dir.partial-1', plan, 'dbfleet-w-X')
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
    info = runner.parse_server_info(text)
    assert (info['reads_role_passwords'], info['wal_segment_size'], info['db_size_bytes'], info['server_version']) == expected


def test_environment_drops_inherited_pg_variables_and_uses_the_passfile(monkeypatch):
    monkeypatch.setenv('PGPASSWORD', 'inherited-secret')
    monkeypatch.setenv('PGUSER', 'someone-else')
    cfg = runner.build_config('w', '/srv/base', kind='basebackup',
                              connection={'host': '127.0.0.1', 'port': 6432, 'user': 'dbf_backup', 'passfile': '/etc/dbfleet/pgpass'})
    env = runner.DumpRun(cfg, log=lambda message: None).env
    assert 'PGPASSWORD' not in env and 'inherited-secret' not in json.dumps(env)
    assert (env['PGHOST'], env['PGPORT'], env['PGUSER'], env['PGPASSFILE']) == ('127.0.0.1', '6432', 'dbf_backup', '/etc/dbfleet/pgpass')


# --------------------------------------------------------------------------
# kind: basebackup -- which WAL may go
# --------------------------------------------------------------------------

def _base_entry(dest, days, status='ok', start_wal_file='000000010000000000000002', with_key=True):
    stamp = stamp_days_ago(days)
    path = dest / runner.manifest_name('base', stamp)
    data = {'status': status, 'path': str(dest / runner.artifact_name('base', stamp, 'directory', 'none'))}
    if with_key:
        data['start_wal_file'] = start_wal_file
    path.write_text(json.dumps(data))
    return {'db': 'base', 'stamp': stamp, 'status': status, 'manifest': str(path), 'dumps': []}


def test_wal_cutoff_is_the_oldest_kept_good_base_backups_start(tmp_path):
    run = runner.DumpRun(runner.build_config('w', str(tmp_path), kind='basebackup'), log=lambda message: None)
    entries = [_base_entry(tmp_path, 1, start_wal_file='000000010000000000000030'),
               _base_entry(tmp_path, 8, start_wal_file='000000010000000000000010'),
               # a newer timeline, but an older segment: pg_archivecleanup compares segments, so must we
               _base_entry(tmp_path, 15, start_wal_file='000000020000000000000008'),
               _base_entry(tmp_path, 30, status='failed', start_wal_file='000000010000000000000001')]
    wal_file, path, problem = run.wal_cutoff(entries)
    assert (wal_file, path, problem) == ('000000020000000000000008', entries[2]['manifest'], None)


@pytest.mark.parametrize('bad', [None, 'not-a-wal-file', '00000001000000000000000g', 42])
def test_wal_cutoff_refuses_when_a_kept_base_backup_has_no_start(tmp_path, bad):
    run = runner.DumpRun(runner.build_config('w', str(tmp_path), kind='basebackup'), log=lambda message: None)
    entries = [_base_entry(tmp_path, 1), _base_entry(tmp_path, 8, start_wal_file=bad, with_key=bad is not None)]
    wal_file, _path, problem = run.wal_cutoff(entries)
    assert wal_file is None and 'start_wal_file' in problem
    wal_file, _path, problem = run.wal_cutoff([])
    assert wal_file is None and 'no good base backup' in problem


def test_dump_schedules_refuse_reserved_names_at_run_time():
    cfg = runner.build_config('n', '/srv/b')
    assert 'reserved' in runner._dump_name_problem('base', cfg)
    assert 'collides with the globals dump' in runner._dump_name_problem('globals', cfg)
    assert runner._dump_name_problem('globals', dict(cfg, globals=False)) is None
    assert runner._dump_name_problem('app_prod', cfg) is None
    assert "starts with '.'" in runner._dump_name_problem('.x', cfg)
