# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL segment numbers and names (_runner.wal), the one place modules and runner take them from."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import wal

MIB = 1024 * 1024


@pytest.mark.parametrize('size', [MIB, 16 * MIB, 64 * MIB, 1024 * MIB])
def test_segment_number_and_name_are_inverse(size):
    per_id = 0x100000000 // size
    for segno in (0, 1, per_id - 1, per_id, per_id * 7 + 3):
        name = wal.wal_segment_name(3, segno, size)
        assert len(name) == 24 and name[:8] == '00000003'
        assert wal.wal_segment_number(name[8:16], name[16:24], size) == segno
        assert wal.wal_segment_number(int(name[8:16], 16), int(name[16:24], 16), size) == segno


def test_segment_names_as_postgresql_writes_them():
    assert wal.wal_segment_name(1, 6, 16 * MIB) == '000000010000000000000006'
    assert wal.wal_segment_name(2, 0x100, 16 * MIB) == '000000020000000100000000'
    assert wal.wal_segment_name(1, 3, 64 * MIB) == '000000010000000000000003'
    assert wal.wal_segment_number('00000001', '000000FF', 16 * MIB) == 0x1FF
    assert wal.wal_segment_number('00000001', '0000000a', 16 * MIB) == 0x10A


@pytest.mark.parametrize('lsn,size', [('0/6000060', 16 * MIB), ('1/0', 16 * MIB), ('A/FFFFFFFF', 16 * MIB),
                                      ('3/4000000', 64 * MIB), (0x2000028, MIB)])
def test_wal_file_name_is_the_segment_of_the_lsn(lsn, size):
    value = wal.parse_lsn(lsn) if isinstance(lsn, str) else lsn
    assert wal.wal_file_name(1, lsn, size) == wal.wal_segment_name(1, value // size, size)


def test_wal_file_name_still_checks_its_arguments():
    for args in ((1, '0/0', 3 * MIB), (0, '0/0', 16 * MIB), (1, 'nope', 16 * MIB)):
        with pytest.raises(ValueError):
            wal.wal_file_name(*args)
