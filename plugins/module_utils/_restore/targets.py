# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a point-in-time restore stops: the target, the recovery settings that say it, and the base backup to
start from. Pure functions (no I/O), so every rule here is unit-tested.

A target is one of ``time`` (with a time zone: a restore at 2 a.m. must not guess which one), ``lsn``, ``xid``,
``name`` (a restore point made with ``pg_create_restore_point``), ``immediate`` (stop as soon as the base backup is
consistent) or nothing at all (``latest``: replay every archived segment).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.wal import format_lsn, parse_lsn

KINDS = ('time', 'lsn', 'xid', 'name', 'immediate')
ACTIONS = ('promote', 'pause')
_TIME_RE = re.compile(r'^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$',
                      re.IGNORECASE)


class TargetError(ValueError):
    """A target that cannot be used, in words."""


def parse_time(text):
    """An aware UTC datetime from ``2026-06-12T09:10:00Z``, ``2026-06-12 09:10:00+02:00``, ``... +0200``.

    A time without a zone is refused: the server's zone, the controller's and the operator's may all differ.
    """
    match = _TIME_RE.match(str(text).strip())
    if not match:
        raise TargetError('target time %r is not a time with a zone: write it like 2026-06-12T09:10:00Z or '
                          '2026-06-12 11:10:00+02:00' % (text,))
    day, clock, zone = match.groups()
    if clock.count(':') == 1:
        clock += ':00'
    if zone.upper() in ('Z', 'UTC'):
        offset = datetime.timedelta(0)
    else:
        digits = zone[1:].replace(':', '')
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        offset = datetime.timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == '-' else 1)
    fmt = '%Y-%m-%d %H:%M:%S.%f' if '.' in clock else '%Y-%m-%d %H:%M:%S'
    try:
        naive = datetime.datetime.strptime('%s %s' % (day, clock), fmt)
    except ValueError as exc:
        raise TargetError('target time %r is not a valid date and time: %s' % (text, exc))
    return (naive - offset).replace(tzinfo=datetime.timezone.utc)


def pg_time(when):
    """A time as PostgreSQL reads it in recovery_target_time, always in UTC: ``2026-06-12 09:10:00.000000+00``."""
    return when.astimezone(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f+00')


def parse_target(target):
    """The normalised target from the module's ``target`` option (a dict with at most one kind, or empty).

    Returns a dict: ``kind`` (one of KINDS or ``latest``), ``value`` (the setting's text), and ``when`` (an aware
    datetime) for a time, ``lsn`` (an int) for an LSN. TargetError in words for anything else.
    """
    given = dict((key, value) for key, value in (target or {}).items() if value not in (None, '', False))
    unknown = sorted(set(given) - set(KINDS))
    if unknown:
        raise TargetError('unknown target key(s) %s: give one of %s' % (', '.join(unknown), ', '.join(KINDS)))
    if len(given) > 1:
        raise TargetError('give one target, not %s' % ' and '.join(sorted(given)))
    if not given:
        return dict(kind='latest', value=None, text='the end of the archived WAL')
    kind, value = list(given.items())[0]
    if kind == 'time':
        when = parse_time(value)
        return dict(kind=kind, value=pg_time(when), when=when, text='time %s' % pg_time(when))
    if kind == 'lsn':
        try:
            lsn = parse_lsn(str(value).strip())
        except ValueError:
            raise TargetError('target lsn %r is not an LSN like 0/5000148' % (value,))
        return dict(kind=kind, value=format_lsn(lsn), lsn=lsn, text='LSN %s' % format_lsn(lsn))
    if kind == 'xid':
        text = str(value).strip()
        if not text.isdigit() or int(text) < 3 or int(text) > 0xFFFFFFFFFFFFFFFF:
            raise TargetError('target xid %r is not a transaction id (a whole number from 3)' % (value,))
        return dict(kind=kind, value=str(int(text)), text='transaction %s' % int(text))
    if kind == 'name':
        text = str(value)
        if len(text.encode('utf-8')) > 63 or not text.strip():
            raise TargetError('target name %r is not a restore point name (1 to 63 bytes)' % (value,))
        return dict(kind=kind, value=text, text='restore point %r' % text)
    if value is not True:
        raise TargetError('target immediate must be true (stop as soon as the base backup is consistent)')
    return dict(kind='immediate', value='immediate', text='the end of the base backup (immediate)')


def recovery_settings(target, action, restore_command, inclusive=True, timeline='latest'):
    """``[(name, value)]``: the settings that make a server restore to ``target`` (from :func:`parse_target`)."""
    if action not in ACTIONS:
        raise TargetError('target_action must be one of %s, got %r' % (', '.join(ACTIONS), action))
    settings = [('restore_command', restore_command), ('recovery_target_timeline', timeline)]
    kind = target['kind']
    if kind == 'immediate':
        settings.append(('recovery_target', 'immediate'))
    elif kind != 'latest':
        settings.append(('recovery_target_%s' % kind, target['value']))
        settings.append(('recovery_target_inclusive', 'on' if inclusive else 'off'))
    settings.append(('recovery_target_action', action))
    return settings


def conf_value(value):
    """A setting's value as a postgresql.conf string literal: quoted, with ``'`` and ``\\`` escaped."""
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "''")


def conf_lines(settings, header):
    """postgresql.conf text for ``settings`` (``[(name, value)]``), after a ``# header`` comment line."""
    return ''.join(['# %s\n' % header] + ['%s = %s\n' % (name, conf_value(value)) for name, value in settings])


def backup_fits(manifest, target):
    """Whether a base backup (its runner manifest) can reach ``target``: it must end before the target."""
    kind = target['kind']
    if kind == 'time':
        finished = manifest.get('finished_at')
        try:
            return parse_time(finished) <= target['when']
        except TargetError:
            return False
    if kind == 'lsn':
        try:
            return parse_lsn(manifest.get('end_lsn') or '') <= target['lsn']
        except ValueError:
            return False
    return True


def choose_backup(manifests, target, wanted='latest'):
    """The base backup to restore from: ``(manifest, None)`` or ``(None, why not)``.

    ``manifests`` are good base backups' runner manifests (any order); ``wanted`` is ``latest`` or the stamp or
    directory name of one. The newest one that ends before the target wins.
    """
    ordered = sorted(manifests, key=lambda item: item.get('stamp') or '', reverse=True)
    if not ordered:
        return None, 'there is no good base backup (a runner manifest saying ok, with its files)'
    if wanted not in (None, '', 'latest'):
        chosen = [m for m in ordered if wanted in (m.get('stamp'), _dir_name(m))]
        if not chosen:
            return None, 'no good base backup named %s; there are: %s' % (wanted, ', '.join(_dir_name(m) for m in ordered))
        if not backup_fits(chosen[0], target):
            return None, ('base backup %s ends after the target (%s): recovery cannot stop before a backup is consistent; '
                          'choose an older one' % (_dir_name(chosen[0]), target['text']))
        return chosen[0], None
    for manifest in ordered:
        if backup_fits(manifest, target):
            return manifest, None
    return None, ('every base backup ends after the target (%s); the oldest, %s, ended at %s (LSN %s): there is no base '
                  'backup to restore that point from' % (target['text'], _dir_name(ordered[-1]), ordered[-1].get('finished_at'),
                                                         ordered[-1].get('end_lsn')))


def _dir_name(manifest):
    return (manifest.get('path') or '').rstrip('/').rsplit('/', 1)[-1] or manifest.get('stamp') or '?'


def rpo_seconds(target, reached_target, newest_archived_at, now):
    """The achieved RPO of a point-in-time restore: how much before the target the newest restorable point lies.

    0 when recovery stopped at the target itself (the server said "recovery stopping", or the target was the end of
    the base backup); for ``latest``, the time since the newest archived segment was archived (what was written
    after it is not restorable); None when it cannot be told.
    """
    if target['kind'] != 'latest':
        return 0.0 if reached_target or target['kind'] == 'immediate' else None
    if newest_archived_at is None:
        return None
    return round(max(0.0, now - newest_archived_at), 3)
