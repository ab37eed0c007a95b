# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schedules: parsing the 5-field cron form and the 6-field (seconds first) form, and rendering
``/etc/cron.d`` entries."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import shlex

try:
    from croniter import croniter
    HAS_CRONITER = True
    CRONITER_IMPORT_ERROR = None
except ImportError as exc:  # the backup role installs it; modules report it with missing_required_lib
    croniter = None
    HAS_CRONITER = False
    CRONITER_IMPORT_ERROR = exc

_NICKNAMES = ('@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly')
CRON_NAME_RE = re.compile(r'^[A-Za-z0-9_-]+\Z')
_CONTROL_RE = re.compile('[\\x00-\\x1f\\x7f]')


class ScheduleError(ValueError):
    """A schedule that cron cannot run, with the reason in words."""


# (name, lowest, highest, three-letter names) per field, as cron(8) reads them.
_FIELDS = (
    ('minute', 0, 59, ()),
    ('hour', 0, 23, ()),
    ('day of month', 1, 31, ()),
    ('month', 1, 12, ('jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec')),
    ('day of week', 0, 7, ('sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat')),
)
_ITEM_RE = re.compile(r'^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\d+))?\Z', re.ASCII)


def _value(token, low, names):
    """The number a cron field token stands for (a name counts from the field's lowest value), or None."""
    if token.isdigit():
        return int(token)
    if token.lower() in names:
        return names.index(token.lower()) + low
    return None


def _field_problem(text, field):
    """Why one field is not cron syntax, or None. Accepts exactly what cron(8) runs: ``*``, ``N``,
    ``N-M``, ``*/S``, ``N-M/S`` and comma lists of those, with month and weekday names for numbers."""
    name, low, high, names = field
    syntax = ('%s "%s": %%s is not cron syntax (use *, N, N-M, */S or N-M/S, comma-separated; cron knows no L, W, # '
              'or ?)' % (name, text))
    for item in text.split(','):
        match = _ITEM_RE.match(item)
        if not match:
            return syntax % ('"%s"' % item)
        first, last, step = match.groups()[1:]
        if first is not None:
            numbers = [_value(token, low, names) for token in (first, last) if token is not None]
            if None in numbers:
                return syntax % ('"%s"' % item)
            for number in numbers:
                if not low <= number <= high:
                    return '%s "%s": %d is outside %d-%d' % (name, text, number, low, high)
            if len(numbers) == 2 and numbers[1] < numbers[0]:
                return '%s "%s": the range %s-%s runs backwards' % (name, text, first, last)
            if step is not None and last is None:
                return '%s "%s": a step needs a range or * before it (e.g. "*/%s" or "%s-%d/%s")' % (
                    name, text, step, first, high, step)
        if step is not None and not 1 <= int(step) <= high - low + 1:
            return '%s "%s": the step %s must be from 1 to %d' % (name, text, step, high - low + 1)
    return None


def normalize_schedule(spec):
    """Return the 5-field cron expression for ``spec``.

    ``spec`` is standard cron (``0 3 * * *``), a nickname (``@daily``) or the 6-field form with
    seconds first (``0 0 3 * * *``). cron has minute resolution, so the seconds field must be 0.
    Exactly cron's own syntax is accepted: a schedule croniter can read but cron cannot run
    (``L``, ``W``, ``#``, ``?``), or one that never runs (``0 3 31 2 *``), is refused.
    """
    if _CONTROL_RE.search(str(spec or '')):
        raise ScheduleError('the schedule %r contains a control character (a newline would start a new cron line)' % (spec,))
    text = ' '.join(str(spec or '').split())
    if not text:
        raise ScheduleError('the schedule is empty: give a cron expression such as "0 3 * * *"')
    if text in _NICKNAMES:
        return text
    if text.startswith('@'):
        raise ScheduleError('"%s" is not a cron nickname; use one of %s' % (text, ', '.join(_NICKNAMES)))
    fields = text.split(' ')
    if len(fields) == 6:
        seconds, fields = fields[0], fields[1:]
        if seconds not in ('0', '00'):
            raise ScheduleError('"%s" asks for second %s, but cron runs jobs on the minute: use 0 as the seconds field '
                                '(6-field form, seconds first) or a 5-field expression' % (text, seconds))
    elif len(fields) != 5:
        raise ScheduleError('"%s" has %d fields: use 5 (minute hour day month weekday, e.g. "0 3 * * *") or 6 with '
                            'seconds first (e.g. "0 0 3 * * *")' % (text, len(fields)))
    for value, field in zip(fields, _FIELDS):
        problem = _field_problem(value, field)
        if problem:
            raise ScheduleError('"%s" is not a valid cron expression: %s' % (text, problem))
    expression = ' '.join(fields)
    if HAS_CRONITER:
        try:
            next_runs(expression, 1)
        except Exception:  # pylint: disable=broad-except
            # croniter gives up when no date matches (the 31st of February, the 30th of February...).
            raise ScheduleError('"%s" never runs: no date matches its day and month fields' % text)
    return expression


def next_runs(expression, count=5, now=None):
    """The next ``count`` run times (host local time, ISO 8601) of a 5-field expression."""
    base = now or datetime.datetime.now().astimezone()
    itr = croniter(expression, base)
    return [itr.get_next(datetime.datetime).isoformat() for dummy in range(count)]


def render_cron_file(description, expression, user, argv):
    """Content of an ``/etc/cron.d`` file running ``argv`` as ``user``.

    No value may carry a control character: a newline in a database name would otherwise start a
    new cron line, run as root. The caller validates; this refuses again rather than trust it.
    """
    for value in [description, expression, user] + list(argv):
        if _CONTROL_RE.search(value):
            raise ScheduleError('refusing to write a cron file: %r contains a control character' % (value,))
    command = ' '.join(shlex.quote(arg) for arg in argv).replace('%', r'\%')  # cron treats % as newline
    return (
        '# %s\n'
        '# Managed by Ansible (dbfleet.postgresql); changes here are overwritten.\n'
        'SHELL=/bin/sh\n'
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
        '%s %s %s\n' % (description, expression, user, command)
    )


def cron_command(content):
    """The command part of the job line in a file written by :func:`render_cron_file`."""
    for line in content.splitlines():
        if line and not line.startswith('#') and '=' not in line.split(' ')[0]:
            fields = line.split(None, 6 if not line.startswith('@') else 2)
            command = fields[-1]
            return command.replace(r'\%', '%')
    return None
