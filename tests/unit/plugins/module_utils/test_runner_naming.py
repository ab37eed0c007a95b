# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of what the host-side programs write (``_runner.naming``)."""

from __future__ import annotations

import datetime
import fnmatch

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 18, 3, 0, 0, tzinfo=UTC)


def stamp_days_ago(days, hours=0):
    return naming.format_stamp(NOW - datetime.timedelta(days=days, hours=hours))


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
    assert naming.artifact_name('app_prod', '20260618T030000Z', fmt, compression) == expected
    assert naming.artifact_name('app_prod', NOW, fmt, compression) == expected


def test_artifact_name_rejects_nonsense():
    with pytest.raises(ValueError):
        naming.artifact_name('db', '2026-06-18', 'custom', 'zstd')
    with pytest.raises(ValueError):
        naming.artifact_name('db', '20260618T030000Z', 'tar', 'zstd')
    with pytest.raises(ValueError):
        naming.artifact_name('db', '20260618T030000Z', 'directory', 'zstd')  # a directory cannot be piped


def test_globals_and_manifest_names():
    assert naming.artifact_name('globals', '20260618T030000Z', 'plain', 'zstd') == 'globals-20260618T030000Z.sql.zst'
    assert naming.manifest_name('app_prod', '20260618T030000Z') == 'app_prod-20260618T030000Z.manifest.json'


def test_dump_glob_never_matches_a_manifest_or_temp_file():
    names = [naming.artifact_name('app_prod', NOW, 'custom', 'zstd'), naming.manifest_name('app_prod', NOW),
             naming.partial_name(naming.artifact_name('app_prod', NOW, 'custom', 'zstd'), 123)]
    assert fnmatch.filter(names, 'app_prod-*.dump*') == [names[0]]


@pytest.mark.parametrize('db', ['app_prod', 'app-prod', 'a-20260101T000000Z', 'x.y', 'Ünïcode db'])
@pytest.mark.parametrize('fmt,compression', [('custom', 'zstd'), ('custom', 'none'), ('plain', 'gzip'),
                                             ('plain', 'lz4'), ('directory', 'none')])
def test_parse_round_trip(db, fmt, compression):
    parsed = naming.parse_artifact_name(naming.artifact_name(db, NOW, fmt, compression))
    assert parsed['db'] == db
    assert parsed['stamp'] == '20260618T030000Z'
    assert parsed['when'] == NOW
    assert parsed['kind'] == 'dump'
    assert parsed['format'] == fmt
    assert parsed['compression'] == compression
    manifest = naming.parse_artifact_name(naming.manifest_name(db, NOW))
    assert (manifest['db'], manifest['kind'], manifest['format']) == (db, 'manifest', None)


@pytest.mark.parametrize('name', [
    'app_prod.dump', 'app_prod-2026.dump', 'app_prod-20260618T030000Z.dump.bz2', 'app_prod-20260618T030000Z.tar',
    'app_prod-20261318T030000Z.dump',  # month 13
    '.app_prod-20260618T030000Z.dump.zst.partial-42', 'notes.txt', 'last-run.json', '-20260618T030000Z.dump',
])
def test_parse_ignores_foreign_names(name):
    assert naming.parse_artifact_name(name) is None


def test_partial_names():
    final = naming.artifact_name('app', NOW, 'custom', 'zstd')
    assert naming.partial_name(final, 42) == '.' + final + '.partial-42'
    assert naming.parse_partial_name('.' + final + '.partial-42') == (final, 42)
    assert naming.parse_partial_name('.' + naming.manifest_name('app', NOW) + '.partial-7')[1] == 7
    assert naming.parse_partial_name('.bashrc.partial-1') is None  # not one of ours
    assert naming.parse_partial_name(final) is None


@pytest.mark.parametrize('db', ['app\n', 'app\r', 'a\tb', 'nul\x00', 'esc\x1b[2J', 'del\x7f', '\n'])
def test_control_characters_never_reach_a_file_name(db):
    problem = naming.db_name_problem(db)
    assert problem and 'control character' in problem and repr(db) in problem
    assert naming.dump_name_problem(db, True) == problem
