# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who compresses, and how: exactly once (``_runner.compression``)."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import compression as runner_compression
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming


# --------------------------------------------------------------------------
# compression plan
# --------------------------------------------------------------------------

ALL_COMBINATIONS = list(itertools.product(runner_compression.FORMATS, runner_compression.COMPRESSIONS, (None, 1, 5), (13, 15, 16, 17)))


@pytest.mark.parametrize('fmt,compression,level,major', ALL_COMBINATIONS)
def test_never_compress_twice(fmt, compression, level, major):
    if compression == 'none' and level is not None:
        return
    plan = runner_compression.compression_plan(fmt, compression, level, major)
    if plan['external']:
        assert plan['by'] == 'external'
        assert plan['pg_dump_args'] == ['-Z0'], 'pg_dump must not compress when an external compressor does'
        assert fmt != 'directory'
        assert plan['extension'].endswith(naming.COMPRESSOR_SUFFIX[plan['external_compression']])
    else:
        assert plan['external_compression'] == 'none'
        assert plan['extension'] == naming.FORMAT_EXTENSION[fmt]
        if compression == 'none':
            assert plan['by'] == 'none' and plan['pg_dump_args'] == ['-Z0'] and plan['level'] is None
        else:
            assert plan['by'] == 'pg_dump' and plan['pg_dump_args'] != ['-Z0']
    if major < 16:
        assert not any('zstd' in arg or 'lz4' in arg for arg in plan['pg_dump_args']), 'pg_dump < 16 only knows gzip'
    assert plan['reason']


def test_pg15_custom_zstd_is_piped():
    plan = runner_compression.compression_plan('custom', 'zstd', None, 15)
    assert plan['external'] == ['zstd', '-q', '-T0', '-%d' % runner_compression.DEFAULT_LEVEL['zstd'], '-c']
    assert plan['pg_dump_args'] == ['-Z0']
    assert (plan['compression'], plan['level'], plan['extension']) == ('zstd', runner_compression.DEFAULT_LEVEL['zstd'], '.dump.zst')


def test_pg15_custom_gzip_is_native():
    plan = runner_compression.compression_plan('custom', 'gzip', 6, 15)
    assert plan['external'] is None
    assert plan['pg_dump_args'] == ['-Z', '6']
    assert (plan['by'], plan['extension']) == ('pg_dump', '.dump')


def test_plain_gzip_uses_external_gzip():
    plan = runner_compression.compression_plan('plain', 'gzip', 9, 15)
    assert plan['external'] == ['gzip', '-c', '-9']
    assert plan['pg_dump_args'] == ['-Z0']
    assert plan['extension'] == '.sql.gz'


def test_pg15_directory_zstd_falls_back_to_native_gzip_and_says_so():
    plan = runner_compression.compression_plan('directory', 'zstd', 7, 15)
    assert plan['external'] is None
    assert (plan['compression'], plan['level']) == ('gzip', runner_compression.DEFAULT_LEVEL['gzip'])
    assert (plan['requested_compression'], plan['requested_level']) == ('zstd', 7)
    assert plan['pg_dump_args'] == ['-Z', str(runner_compression.DEFAULT_LEVEL['gzip'])]
    assert 'gzip' in plan['reason'] and 'zstd' in plan['reason'] and '16' in plan['reason']


def test_pg16_native_zstd_and_lz4():
    plan = runner_compression.compression_plan('custom', 'zstd', 5, 16)
    assert (plan['by'], plan['pg_dump_args'], plan['extension']) == ('pg_dump', ['--compress=zstd:5'], '.dump')
    plan = runner_compression.compression_plan('directory', 'lz4', None, 17)
    assert plan['pg_dump_args'] == ['--compress=lz4:1'] and plan['compression'] == 'lz4'
    plan = runner_compression.compression_plan('plain', 'zstd', None, 16)
    assert plan['by'] == 'external' and plan['pg_dump_args'] == ['-Z0']


def test_default_levels_are_fast_ones():
    assert runner_compression.DEFAULT_LEVEL == {'zstd': 2, 'gzip': 1, 'lz4': 1}
    assert runner_compression.compression_plan('custom', 'none', None, 15)['pg_dump_args'] == ['-Z0']


def test_compression_plan_rejects_unknown():
    with pytest.raises(ValueError):
        runner_compression.compression_plan('custom', 'bzip2', None, 15)
    with pytest.raises(ValueError):
        runner_compression.compression_plan('tar', 'zstd', None, 15)
