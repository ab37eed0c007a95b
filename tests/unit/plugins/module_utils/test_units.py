# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import (
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize('text,seconds', [
    ('3600', 3600), (90, 90), ('26h', 93600), ('90m', 5400), ('1d12h', 129600), ('1w', 604800), ('1.5h', 5400),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize('text,words', [
    ('-5', 'must not be negative'), ('0', 'greater than zero'), ('soon', 'not a duration'), ('5x', 'not a duration'),
    ('26h garbage', 'not a duration'),
])
def test_parse_duration_errors(text, words):
    with pytest.raises(ValueError, match=words):
        parse_duration(text, 'max_age')


@pytest.mark.parametrize('text,size', [
    ('1048576', 1048576), ('200k', 200000), ('1.5GB', 1500000000), ('2GiB', 2 * 1024 ** 3), ('10 MiB', 10 * 1024 ** 2),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize('text', ['-1', 'big', '10 parsecs'])
def test_parse_size_errors(text):
    with pytest.raises(ValueError, match='min_size'):
        parse_size(text, 'min_size')


def test_formatting():
    assert format_size(512) == '512 B'
    assert format_size(42 * 1024 ** 3) == '42.0 GiB'
    assert format_duration(59) == '59s'
    assert format_duration(30 * 3600 + 125) == '1d 6h 2m'
    assert format_duration(0) == '0s'


@pytest.mark.parametrize('value', ['nan', 'NaN', 'inf', '-inf', 'infinity', '1e400', '9' * 400, 'nanh', '1e3', True])
def test_duration_refuses_non_finite_and_odd_numbers(value):
    with pytest.raises(ValueError):
        parse_duration(value, 'max_age')


@pytest.mark.parametrize('value', ['nan', 'inf', '1e400', '9' * 400 + 'g', '-1k', True])
def test_size_refuses_non_finite_and_negative(value):
    with pytest.raises(ValueError):
        parse_size(value, 'min_size')


def test_long_values_are_shortened_in_messages():
    with pytest.raises(ValueError) as exc:
        parse_duration('x' * 5000, 'max_age')
    assert len(str(exc.value)) < 300
