# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive scanning against real compressors (zstd, gzip, lz4 from the host)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import (
    PLAIN_TRAILERS,
    _parse_listing,
    detect_format,
    scan_file,
)

PLAIN = b'-- PostgreSQL database dump\nCREATE TABLE t (id int);\n' * 2000 + PLAIN_TRAILERS[0] + b'\n\n'


def _compress(tmp_path, tool, data):
    raw = tmp_path / 'dump.sql'
    raw.write_bytes(data)
    out = tmp_path / ('dump.sql' + {'zstd': '.zst', 'gzip': '.gz', 'lz4': '.lz4'}[tool])
    with open(out, 'wb') as handle:
        subprocess.run([tool, '-c', str(raw)], stdout=handle, check=True)
    return out


@pytest.mark.parametrize('tool', ['zstd', 'gzip', 'lz4'])
def test_compressed_plain_dump_is_read_once_for_hash_and_content(tmp_path, tool):
    path = _compress(tmp_path, tool, PLAIN)
    scan = scan_file(str(path), checksum=True, inspect=True)
    assert scan['compression'] == tool
    assert scan['sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scan['stream_error'] is None
    assert scan['head'].startswith(b'-- PostgreSQL database dump')
    assert PLAIN_TRAILERS[0] in scan['tail']


@pytest.mark.parametrize('tool', ['zstd', 'gzip', 'lz4'])
def test_truncated_stream_is_reported(tmp_path, tool):
    path = _compress(tmp_path, tool, PLAIN * 5)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    scan = scan_file(str(path), checksum=True, inspect=True)
    assert scan['stream_error'] and 'damaged' in scan['stream_error']


def test_uncompressed_tail_without_hash_seeks(tmp_path):
    path = tmp_path / 'dump.sql'
    path.write_bytes(PLAIN)
    scan = scan_file(str(path), checksum=False, inspect=True)
    assert scan['sha256'] is None and scan['compression'] is None
    assert scan['tail'].endswith(PLAIN_TRAILERS[0] + b'\n\n')


def test_detect_format():
    assert detect_format(b'PGDMP\x01\x0e') == 'custom'
    assert detect_format(b'x' * 257 + b'ustar\x00' + b'\x00' * 10) == 'tar'
    assert detect_format(b'pg_dump: error: connection failed') == 'plain'


def test_parse_listing():
    text = (';\n; Archive created at 2026-11-22 03:00:01 UTC\n;     dbname: app_prod\n;     Format: CUSTOM\n'
            ';     Dumped from database version: 15.18\n;\n215; 1259 16389 TABLE public orders postgres\n'
            '3330; 0 16389 TABLE DATA public orders postgres\n')
    info = _parse_listing(text)
    assert info == {'entries': 2, 'created_at': '2026-11-22 03:00:01 UTC', 'dbname': 'app_prod', 'format': 'CUSTOM',
                    'dumped_from': '15.18'}
