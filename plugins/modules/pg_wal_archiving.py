#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_wal_archiving
short_description: Archive every WAL segment with the collection's archiver, never over someone else's
version_added: 0.2.0
description:
  - Installs the host program C(dbfleet-wal-archive) and its config, creates the archive directory, and points the
    server's C(archive_command) at the program (C(ALTER SYSTEM), then a configuration reload), with C(archive_mode=on)
    and C(wal_level) at least V(replica).
  - The archiver copies each segment to a temporary name, fsyncs file and directory and renames it; an identical
    segment already archived counts as success, a different one fails naming both SHA-256 sums. No shell command
    is built from any option; the archive directory travels in the config file.
  - A server that already archives WAL another way (pgBackRest, WAL-G, its own script, an C(archive_library)) keeps
    it - the module fails and shows the current setting - unless O(takeover=true).
  - C(archive_mode) and C(wal_level) take effect only after a restart; RV(restart_required) says when one is needed.
    The module never restarts the server itself.
  - Check mode reports the settings before and after and the files it would write, and changes nothing.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.safety
options:
  archive_dir:
    description: Directory the segments are archived to; created, owned by O(run_as), mode 0750.
    type: path
    required: true
  takeover:
    description: Replace an C(archive_command) or C(archive_library) that is not this collection's.
    type: bool
    default: false
  run_as:
    description: Operating-system user the server runs as (it runs the archiver) and the admin connection is made as.
    type: str
    default: postgres
  program_path:
    description: Where the archiver is installed.
    type: path
    default: /opt/dbfleet/bin/dbfleet-wal-archive
  config_path:
    description: The archiver's config file.
    type: path
    default: /etc/dbfleet/wal-archive.json
attributes:
  check_mode:
    description: Reports the settings before and after, changes nothing.
    support: full
  diff_mode:
    description: Shows the settings and the config before and after.
    support: full
requirements:
  - psycopg 3 on the host
notes:
  - Needs a superuser connection (C(ALTER SYSTEM)).
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Archive WAL for point-in-time restore
  dbfleet.postgresql.pg_wal_archiving:
    archive_dir: /srv/wal-archive
  register: archiving

- name: Replace a server's own archive script
  dbfleet.postgresql.pg_wal_archiving:
    archive_dir: /srv/wal-archive
    takeover: true
'''

RETURN = r'''
before:
  description: wal_level, archive_mode, archive_command and archive_library as the server had them.
  returned: always
  type: dict
after:
  description: The same settings as they are (or in check mode would be) configured now.
  returned: always
  type: dict
archive_command:
  description: The archive_command this module sets.
  returned: always
  type: str
restart_required:
  description: True when wal_level or archive_mode changed, or a change to them still waits for a restart.
  returned: always
  type: bool
files:
  description: Files and directories created or changed (or that would be).
  returned: always
  type: list
  elements: str
'''

import json
import os
import sys

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import connection_settings, postgres_common_argument_spec
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import program, walarchive
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

SETTINGS = ('wal_level', 'archive_mode', 'archive_command', 'archive_library')
WAL_LEVELS = ('minimal', 'replica', 'logical')
RESTART_SETTINGS = ('wal_level', 'archive_mode')


# With archive_mode off, SHOW archive_command says "(disabled)" and hides what is configured; the
# configuration files (postgresql.conf, conf.d, postgresql.auto.conf) still hold it.
FILE_SETTING = ("SELECT setting FROM pg_file_settings WHERE name = 'archive_command' AND error IS NULL "
                "ORDER BY seqno DESC LIMIT 1")


def current_settings(module, params):
    rows = run_statements(module, connection_settings(params),
                          [("SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]),
                           ("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", None),
                           (FILE_SETTING, None)],
                          password=params['login_password'], run_as=params['run_as'])
    return settings_from_results(*rows)


def settings_from_results(settings_rows, superuser_rows, file_rows):
    """``(settings, pending, superuser)`` from the results (``{rows}``) of the three statements above.

    ``archive_command`` is the configured one even when ``archive_mode`` is off (then the server
    shows "(disabled)"); ``archive_library`` is '' where the server has none (before PostgreSQL 15).
    """
    settings = dict((name, setting) for name, setting, _pending in settings_rows['rows'])
    settings.setdefault('archive_library', '')
    if settings.get('archive_command') == '(disabled)':
        settings['archive_command'] = file_rows['rows'][0][0] if file_rows['rows'] else ''
    pending = sorted(name for name, _setting, flag in settings_rows['rows'] if flag)
    return settings, pending, bool(superuser_rows['rows'] and superuser_rows['rows'][0][0])


def foreign_archiving(settings, command):
    """The other archiving this server has (a sentence), or None when there is none or it is ours."""
    existing = (settings.get('archive_command') or '').strip()
    if settings.get('archive_library'):
        return 'archive_library = %r' % settings['archive_library']
    if existing and existing != command and not walarchive.is_our_command(existing):
        return 'archive_command = %r' % existing
    return None


def desired_settings(settings, command):
    """The settings archiving needs: wal_level never lowered (at least replica), archive_mode on (always stays
    always), our archive_command and no archive_library."""
    level = settings.get('wal_level')
    return dict(wal_level=level if level in ('replica', 'logical') else 'replica', archive_mode='on' if settings.get(
        'archive_mode') != 'always' else 'always', archive_command=command, archive_library='')


def settings_changes(before, after):
    """The names of the settings ``after`` changes, in SETTINGS order (an unset one counts as '')."""
    return [name for name in SETTINGS if (before.get(name) or '') != after[name]]


def restart_needed(changed, pending):
    """Whether a restart is needed: a setting that takes effect only then changes now, or waits for one already."""
    return any(name in changed for name in RESTART_SETTINGS) or any(name in pending for name in RESTART_SETTINGS)


def settings_diff(before, after, changed):
    """The diff entry of the ALTER SYSTEM changes."""
    return dict(before_header='ALTER SYSTEM', after_header='ALTER SYSTEM',
                before=''.join('%s = %r\n' % (n, before.get(n) or '') for n in changed),
                after=''.join('%s = %r\n' % (n, after[n]) for n in changed))


def alter_statements(after, changed):
    """The statements that make the ``changed`` settings those of ``after``, then reload the configuration."""
    statements = [("ALTER SYSTEM SET %s = %s" % (name, _literal(after[name])), None) for name in changed
                  if name != 'archive_library']
    if 'archive_library' in changed:
        statements.append(("ALTER SYSTEM RESET archive_library", None))
    statements.append(("SELECT pg_reload_conf()", None))
    return statements


def desired_state(params, interpreter):
    """The directories and files the archiver needs: program root 0755, config root:<run_as's group> 0640, the
    archive directory owned by run_as, 0750."""
    config = json.dumps(dict(archive_dir=params['archive_dir']), indent=2, sort_keys=True).encode('utf-8') + b'\n'
    return [
        _desired.DesiredDir(os.path.dirname(params['program_path']), mode=0o755),
        _desired.DesiredDir(os.path.dirname(params['config_path']), mode=0o755),
        _desired.DesiredDir(params['archive_dir'], owner=params['run_as'], mode=0o750),
        _desired.DesiredFile(params['program_path'], program.build_program('dbfleet-wal-archive', interpreter),
                             mode=0o755, shown=False),
        _desired.DesiredFile(params['config_path'], config, group=_desired.group_of(params['run_as']), mode=0o640),
    ]


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        archive_dir=dict(type='path', required=True),
        takeover=dict(type='bool', default=False),
        run_as=dict(type='str', default='postgres'),
        program_path=dict(type='path', default='/opt/dbfleet/bin/dbfleet-wal-archive'),
        config_path=dict(type='path', default='/etc/dbfleet/wal-archive.json'),
    )
    module = DbfleetModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    module.require_write_destination(params['archive_dir'], 'archive_dir')
    try:
        _desired.ids(params['run_as'])
    except KeyError:
        module.fail_json(msg='run_as=%s: no such user on this host' % params['run_as'])

    command = walarchive.archive_command(sys.executable, params['program_path'], params['config_path'])
    try:
        before, pending, superuser = current_settings(module, params)
    except PgQueryError as exc:
        module.fail_json(msg='pg_wal_archiving: %s' % exc)
    if not superuser:
        module.fail_json(msg='pg_wal_archiving needs a superuser connection (ALTER SYSTEM); connect as postgres or set '
                             'login_user to a superuser', before=before)
    other = foreign_archiving(before, command)
    if other and not params['takeover']:
        module.fail_json(msg='this server already archives WAL its own way (%s). Nothing was changed: its archive keeps '
                             'receiving WAL. To archive with dbfleet instead, set takeover: true (in the backup role, '
                             'backup_wal_archive_takeover: true) - and make sure nothing still needs the old archive.'
                             % other, before=before, archive_command=command)
    after = desired_settings(before, command)
    changed_settings = settings_changes(before, after)

    try:
        changed_items, diffs = _desired.plan(desired_state(params, sys.executable))
    except UnsafePath as exc:
        module.fail_json(msg='pg_wal_archiving: %s' % exc)
    if changed_settings:
        diffs.append(settings_diff(before, after, changed_settings))
    restart_required = restart_needed(changed_settings, pending)
    result = dict(changed=bool(changed_items or changed_settings), before=before, after=after, archive_command=command,
                  restart_required=restart_required, files=[item.path for item in changed_items],
                  settings_changed=changed_settings, diff=diffs)
    if not module.writes_allowed:
        module.exit_json(**result)

    try:
        _desired.apply(module, changed_items)
    except (OSError, UnsafePath) as exc:
        module.fail_json(msg='pg_wal_archiving: could not install the archiver: %s' % exc, **result)
    if changed_settings:
        try:
            run_statements(module, connection_settings(params), alter_statements(after, changed_settings),
                           password=params['login_password'], run_as=params['run_as'], read_only=False, autocommit=True)
        except PgQueryError as exc:
            module.fail_json(msg='pg_wal_archiving: the archiver is installed but the settings could not be changed: %s'
                                 % exc, **result)
    module.exit_json(**result)


def _literal(value):
    """A SQL string literal (ALTER SYSTEM takes no parameters); the values here contain no control characters."""
    return "'%s'" % str(value).replace("'", "''")


if __name__ == '__main__':
    main()
