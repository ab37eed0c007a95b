# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hashing while streaming, S3 composite checksums (``_runner.hashing``, ``_runner.s3``)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import hashing
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import s3


# --------------------------------------------------------------------------
# hashing while streaming, S3 composite checksums
# --------------------------------------------------------------------------

@pytest.mark.parametrize('part_size,chunk', [(0, 7), (10, 3), (10, 10), (10, 25), (7, 1), (16, 64)])
def test_stream_digest_parts(part_size, chunk):
    data = bytes(range(256)) * 3
    digest = hashing.StreamDigest(part_size)
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
    assert hashing.s3_composite_checksum(digests) == expected
    assert s3.checksum_matches(expected, expected)
    assert s3.checksum_matches(expected.split('-')[0], expected)  # moto leaves out "-N"
    assert not s3.checksum_matches(expected.split('-')[0] + '-3', expected)
