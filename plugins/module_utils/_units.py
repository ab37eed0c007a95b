# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing and printing of the durations and sizes operators type and read (``26h``, ``200k``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

_DURATION_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
_SIZE_UNITS = {
    '': 1, 'b': 1,
    'k': 1000, 'kb': 1000, 'm': 1000 ** 2, 'mb': 1000 ** 2, 'g': 1000 ** 3, 'gb': 1000 ** 3, 't': 1000 ** 4, 'tb': 1000 ** 4,
    'kib': 1024, 'mib': 1024 ** 2, 'gib': 1024 ** 3, 'tib': 1024 ** 4,
}
_DURATION_RE = re.compile(r'(\d+(?:\.\d+)?)\s*([smhdw])')
_SIZE_RE = re.compile(r'^(\d+(?:\.\d+)?)\s*([a-z]*)$')
# Plain decimal numbers only: float() would also take "nan", "inf" and "1e400".
_NUMBER_RE = re.compile(r'^\d+(?:\.\d+)?$')


def _shown(value):
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + '...')


def _finite(number, option, value):
    if not math.isfinite(number):
        raise ValueError('%s=%s is too large to be a number' % (option, _shown(value)))
    return number


def parse_duration(value, option='duration'):
    """Seconds from ``3600``, ``"90m"``, ``"26h"``, ``"1d12h"``. Raises ValueError with a clear message."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError('%s=%r is not a duration' % (option, value))
    text = str(value).strip().lower()
    if text.startswith('-'):
        raise ValueError('%s must not be negative (got %s)' % (option, value))
    if _NUMBER_RE.match(text):
        seconds = float(text)
    else:
        pos, seconds = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if text[pos:match.start()].strip():
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos == 0 or text[pos:].strip():
            raise ValueError('%s=%s is not a duration: use seconds or a number with s, m, h, d or w (e.g. 26h, 1d12h)'
                             % (option, _shown(value)))
    _finite(seconds, option, value)
    if seconds <= 0:
        raise ValueError('%s must be greater than zero (got %s)' % (option, value))
    return seconds


def parse_size(value, option='size'):
    """Bytes from ``1048576``, ``"200k"``, ``"1.5GB"``, ``"2GiB"`` (k/M/G are powers of 1000, KiB/MiB/GiB of 1024)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError('%s=%r is not a size' % (option, value))
    text = str(value).strip().lower()
    if text.startswith('-'):
        raise ValueError('%s must not be negative (got %s)' % (option, value))
    match = _SIZE_RE.match(text)
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError('%s=%s is not a size: use bytes or a number with k, M, G, T (or KiB, MiB, GiB, TiB)'
                         % (option, _shown(value)))
    return int(_finite(float(match.group(1)) * _SIZE_UNITS[match.group(2)], option, value))


def format_size(num_bytes):
    """``42.0 GiB``-style text for a byte count."""
    size = float(num_bytes)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 1024 or unit == 'TiB':
            return '%d B' % num_bytes if unit == 'B' else '%.1f %s' % (size, unit)
        size /= 1024
    return '%d B' % num_bytes  # pragma: no cover


def format_duration(seconds):
    """``1d 2h 3m``-style text for a number of seconds (minute resolution past an hour)."""
    seconds = int(round(seconds))
    sign = '-' if seconds < 0 else ''
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append('%dd' % days)
    if hours:
        parts.append('%dh' % hours)
    if minutes:
        parts.append('%dm' % minutes)
    if secs and not days and not hours:
        parts.append('%ds' % secs)
    return sign + (' '.join(parts) or '0s')
