# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the read-only modules that look at a server or a backup share (pg_server_info, replication_lag,
wal_archive_status, file_stat), written once.

They change nothing, in any mode. Those that ask a server take the same options to reach it (the
connection options, ``run_as``, ``connect_timeout``; ``fail_on_violation`` where they give a
verdict), refuse the same timeouts, and fail the host in words (with the ``stage`` that failed)
when the server cannot answer: :class:`LookModule`. Their thresholds become numbers with the
option's name in every error (:func:`parse_thresholds`), and the verdict is the same everywhere
(:func:`exit_with_verdict`): the result, or a failed host when it has violations and
``fail_on_violation`` asks for that.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import (
    connection_settings,
    postgres_common_argument_spec,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import parse_duration, parse_size

MAX_CONNECT_TIMEOUT = 600


def parse_count(value, option='count'):
    """A number of things (an int from the argument spec); None stays None; ValueError when negative."""
    if value is not None and value < 0:
        raise ValueError('%s must not be negative (got %d)' % (option, value))
    return value


PARSERS = dict(size=parse_size, duration=parse_duration, count=parse_count)


def parse_thresholds(params, kinds):
    """``{option: number or None}`` from ``params`` for ``kinds``, ``(option, kind)`` pairs read in that order.

    A kind is ``'size'`` (bytes, ``16MB``), ``'duration'`` (seconds, ``5m``), ``'count'`` (a whole
    number, not negative) or a parser called as ``parser(value, option)``. An option that is absent or
    None stays None. ValueError naming the option when a value is not understood.
    """
    return dict((option, PARSERS.get(kind, kind)(params.get(option), option)) for option, kind in kinds)


def look_argument_spec(verdict=True):
    """The connection options, ``run_as`` and ``connect_timeout``, and ``fail_on_violation`` when ``verdict``."""
    spec = postgres_common_argument_spec()
    spec.update(
        run_as=dict(type='str', default='postgres'),
        connect_timeout=dict(type='int', default=10),
    )
    if verdict:
        spec.update(fail_on_violation=dict(type='bool', default=False))
    return spec


def exit_with_verdict(module, result):
    """Exit with ``result``; fail the host instead when it has violations and ``fail_on_violation`` is true."""
    if result['violations'] and module.params['fail_on_violation']:
        module.fail_json(msg='; '.join(result['violations']), **result)
    module.exit_json(**result)


class LookModule(DbfleetModule):
    """A module that only asks a PostgreSQL server: :func:`look_argument_spec` plus its own options.

    Check mode runs the same as a real run; ``connect_timeout`` must be from 1 to 600 seconds;
    :meth:`query` runs statements as ``run_as`` with the login password and the timeout.
    """

    def __init__(self, argument_spec, verdict=True, **kwargs):
        spec = look_argument_spec(verdict)
        spec.update(argument_spec)
        kwargs['supports_check_mode'] = True  # it only reads: a check run is the same run
        super(LookModule, self).__init__(argument_spec=spec, **kwargs)
        timeout = self.params['connect_timeout']
        if not 1 <= timeout <= MAX_CONNECT_TIMEOUT:
            self.fail_json(msg='connect_timeout must be from 1 to %d seconds, got %d' % (MAX_CONNECT_TIMEOUT, timeout))
        self.connection = connection_settings(self.params)

    def query(self, statements):
        """``run_statements`` of ``statements`` (read-only); the host fails in words when the server cannot answer."""
        try:
            return run_statements(self, self.connection, statements, password=self.params['login_password'],
                                  run_as=self.params['run_as'], connect_timeout=self.params['connect_timeout'])
        except PgQueryError as exc:
            self.fail_json(msg=str(exc), stage=exc.stage)
        return None  # not reached: fail_json exits
