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
CRON_NAME_RE = re.compile(r'^[A-Za-z0-9_-]+$')


class ScheduleError(ValueError):
    """A schedule that cron cannot run, with the reason in words."""


def normalize_schedule(spec):
    """Return the 5-field cron expression for ``spec``.

    ``spec`` is standard cron (``0 3 * * *``), a nickname (``@daily``) or the 6-field form with
    seconds first (``0 0 3 * * *``). cron has minute resolution, so the seconds field must be 0.
    """
    text = ' '.join(str(spec or '').split())
    if not text:
        raise ScheduleError('the schedule is empty: give a cron expression such as "0 3 * * *"')
    if text in _NICKNAMES:
        return text
    fields = text.split(' ')
    if len(fields) == 6:
        seconds, fields = fields[0], fields[1:]
        if seconds not in ('0', '00'):
            raise ScheduleError('"%s" asks for second %s, but cron runs jobs on the minute: use 0 as the seconds field '
                                '(6-field form, seconds first) or a 5-field expression' % (text, seconds))
    elif len(fields) != 5:
        raise ScheduleError('"%s" has %d fields: use 5 (minute hour day month weekday, e.g. "0 3 * * *") or 6 with '
                            'seconds first (e.g. "0 0 3 * * *")' % (text, len(fields)))
    expression = ' '.join(fields)
    if HAS_CRONITER and not croniter.is_valid(expression):
        raise ScheduleError('"%s" is not a valid cron expression' % text)
    return expression


def next_runs(expression, count=5, now=None):
    """The next ``count`` run times (host local time, ISO 8601) of a 5-field expression."""
    base = now or datetime.datetime.now().astimezone()
    itr = croniter(expression, base)
    return [itr.get_next(datetime.datetime).isoformat() for dummy in range(count)]


def render_cron_file(description, expression, user, argv):
    """Content of an ``/etc/cron.d`` file running ``argv`` as ``user``."""
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
