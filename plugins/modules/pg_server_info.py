#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_server_info
short_description: What a PostgreSQL server is and how it is laid out on its host, read-only
version_added: 0.2.0
description:
  - Asks the server (psycopg 3, as the OS user O(run_as)) for its version, recovery state, data directory,
    configuration files, WAL and archiving settings and databases, and reads from the host how it runs - the
    postmaster's own binary directory, and how to restart it - so nothing assumes a layout.
  - Works the same on Debian/Ubuntu clusters (C(pg_ctlcluster)), RHEL-family hosts with PGDG packages
    (C(/usr/pgsql-N/bin), C(/var/lib/pgsql/N/data), systemd C(postgresql-N)) and clusters made by hand with
    C(initdb), whose binaries need not be on C(PATH).
  - Never prompts for a password and never waits longer than O(connect_timeout) seconds for a server. A host
    whose local connections need a password fails at once with a message naming the variables to set.
  - Changes nothing, in any mode.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  measure_data_directory:
    description: Also add up the size of the data directory (walks it; can take a while on a large cluster).
    type: bool
    default: false
requirements:
  - psycopg 3 on the host (Debian/Ubuntu python3-psycopg, RHEL-family python3-psycopg3)
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Look at the server before touching it
  dbfleet.postgresql.pg_server_info:
  register: pg

- name: A host whose local connections need a password
  dbfleet.postgresql.pg_server_info:
    login_user: postgres
    login_password: "{{ vault_pg_admin_password }}"
    login_host: 127.0.0.1
'''

RETURN = r'''
version:
  description: The server version as it reports it.
  returned: always
  type: str
  sample: "15.10 (Debian 15.10-0+deb12u1)"
version_num:
  description: server_version_num.
  returned: always
  type: int
  sample: 150010
major:
  description: The major version.
  returned: always
  type: int
  sample: 15
in_recovery:
  description: True on a streaming replica (or any server in recovery).
  returned: always
  type: bool
settings:
  description: The settings backups and restores depend on (data_directory, config_file, hba_file, port,
    unix_socket_directories, wal_level, archive_mode, archive_command, archive_library, max_wal_senders,
    hot_standby_feedback, max_standby_streaming_delay, cluster_name, server_encoding), null when the connecting role
    may not read one.
  returned: always
  type: dict
pending_restart:
  description: Settings changed in the configuration that take effect only after a restart.
  returned: always
  type: list
  elements: str
databases:
  description: Every database with its size in bytes, whether it accepts connections and whether it is a template.
  returned: always
  type: list
  elements: dict
total_db_bytes:
  description: The sum of the databases' sizes.
  returned: always
  type: int
uptime_seconds:
  description: Seconds since the postmaster started.
  returned: always
  type: float
postmaster_pid:
  description: The postmaster's process id, from postmaster.pid in the data directory.
  returned: when the data directory is known and readable
  type: int
bin_dir:
  description: Directory of the running postmaster's binary; the matching client tools are there too.
  returned: when the postmaster was found
  type: str
  sample: /usr/pgsql-15/bin
layout:
  description: V(debian) (pg_ctlcluster manages it), V(pgdg) (RHEL-family packages) or V(initdb) (made by hand).
  returned: always
  type: str
restart:
  description: How to restart this server - C(method) (pg_ctlcluster, systemd or pg_ctl), C(argv) and C(run_as)
    (the user to run argv as).
  returned: always
  type: dict
data_directory_bytes:
  description: Size of the data directory, with O(measure_data_directory=true).
  returned: when measured
  type: int
'''

import os
import re
import shutil

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath, read_regular
from ansible_collections.dbfleet.postgresql.plugins.module_utils._look import LookModule

SETTINGS = ('data_directory', 'config_file', 'hba_file', 'port', 'unix_socket_directories', 'wal_level', 'archive_mode',
            'archive_command', 'archive_library', 'max_wal_senders', 'hot_standby_feedback', 'max_standby_streaming_delay',
            'cluster_name', 'server_encoding')
_UNIT_RE = re.compile(r'/([^/]+\.service)$')

STATEMENTS = [
    ("SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS version_num, "
     "pg_is_in_recovery() AS in_recovery, extract(epoch FROM now() - pg_postmaster_start_time())::float AS uptime", None),
    ("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]),
    ("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name", None),
    ("SELECT datname, datallowconn, datistemplate, "
     "CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname) END "
     "FROM pg_database ORDER BY datname", None),
]


def server_facts(module):
    """Everything the server says about itself, as one dict."""
    return facts_from_results(*module.query(STATEMENTS))


def facts_from_results(first, settings, pending, databases):
    """The server's facts from the results of STATEMENTS (``{columns, rows}`` each)."""
    version, version_num, in_recovery, uptime = first['rows'][0]
    found = dict((name, None) for name in SETTINGS)
    found.update(dict(settings['rows']))
    dbs = [dict(name=name, allow_connections=allow, is_template=template, size=size)
           for name, allow, template, size in databases['rows']]
    return dict(version=version, version_num=version_num, major=version_num // 10000, in_recovery=in_recovery,
                uptime_seconds=uptime, settings=found, pending_restart=[row[0] for row in pending['rows']],
                databases=dbs, total_db_bytes=sum(db['size'] or 0 for db in dbs))


def pid_from_pidfile(text):
    """The postmaster's pid: the first line of postmaster.pid (bytes), or None when there is none."""
    if not text:
        return None
    try:
        return int(text.decode('ascii', 'replace').splitlines()[0])
    except (ValueError, IndexError):
        return None


def bin_dir_from_exe(exe):
    """The directory of a process's binary, from the target of its /proc/PID/exe link."""
    return os.path.dirname(exe.replace(' (deleted)', ''))


def postmaster(data_directory):
    """``(pid, bin_dir)`` of the postmaster serving ``data_directory``, from postmaster.pid and /proc."""
    if not data_directory:
        return None, None
    try:
        text = read_regular(os.path.join(data_directory, 'postmaster.pid'), 4096)
    except (OSError, UnsafePath):
        return None, None
    pid = pid_from_pidfile(text)
    if pid is None:
        return None, None
    try:
        exe = os.readlink('/proc/%d/exe' % pid)
    except OSError:
        return pid, None
    return pid, bin_dir_from_exe(exe)


def unit_from_cgroup(text):
    """The systemd service (``postgresql-15.service``) named in the text of a /proc/PID/cgroup file, or None."""
    for line in text.splitlines():
        match = _UNIT_RE.search(line.strip())
        if match:
            return match.group(1)
    return None


def systemd_unit(pid):
    """The systemd service running ``pid``, from its cgroup, when systemd manages it."""
    if not pid or not shutil.which('systemctl'):
        return None
    try:
        with open('/proc/%d/cgroup' % pid) as handle:
            return unit_from_cgroup(handle.read())
    except OSError:
        return None


def debian_cluster(config_file, has_pg_ctlcluster=None):
    """``(version, cluster)`` when Debian's postgresql-common manages this server, else None.

    ``has_pg_ctlcluster``: whether ``pg_ctlcluster`` is installed (looked up on PATH when None).
    """
    match = re.match(r'^/etc/postgresql/([^/]+)/([^/]+)/postgresql\.conf$', config_file or '')
    if not match:
        return None
    if has_pg_ctlcluster is None:
        has_pg_ctlcluster = bool(shutil.which('pg_ctlcluster'))
    return (match.group(1), match.group(2)) if has_pg_ctlcluster else None


def restart_plan(settings, bin_dir, debian=None, unit=None):
    """``(layout, restart)``: how this server is laid out and how to restart it.

    ``settings`` are the server's (``config_file``, ``data_directory``), ``bin_dir`` the postmaster's
    binary directory, ``debian`` what :func:`debian_cluster` found and ``unit`` what
    :func:`systemd_unit` found (None: nothing).
    """
    if debian:
        layout = 'debian'
    elif bin_dir and re.match(r'^/usr/pgsql-\d+/bin$', bin_dir):
        layout = 'pgdg'
    else:
        layout = 'initdb'
    if debian:
        restart = dict(method='pg_ctlcluster', argv=['pg_ctlcluster', debian[0], debian[1], 'restart'], run_as='root')
    elif unit:
        restart = dict(method='systemd', argv=['systemctl', 'restart', unit], run_as='root', unit=unit)
    elif bin_dir and settings['data_directory']:
        restart = dict(method='pg_ctl', run_as='postgres',
                       argv=[os.path.join(bin_dir, 'pg_ctl'), 'restart', '-D', settings['data_directory'], '-m', 'fast',
                             '-w', '-t', '300'])
    else:
        restart = dict(method=None, argv=None, run_as=None,
                       reason='the postmaster could not be found from the data directory (the connecting role may not '
                              'read data_directory: connect as a superuser, or set the restart command yourself)')
    return layout, restart


def directory_bytes(top):
    total = 0
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def main():
    module = LookModule(argument_spec=dict(measure_data_directory=dict(type='bool', default=False)), verdict=False,
                        supports_check_mode=True)
    params = module.params
    facts = server_facts(module)
    settings = facts['settings']
    pid, bin_dir = postmaster(settings['data_directory'])
    layout, restart = restart_plan(settings, bin_dir, debian_cluster(settings['config_file']), systemd_unit(pid))
    facts.update(changed=False, postmaster_pid=pid, bin_dir=bin_dir, layout=layout, restart=restart)
    if params['measure_data_directory'] and facts['settings']['data_directory']:
        facts['data_directory_bytes'] = directory_bytes(facts['settings']['data_directory'])
    module.exit_json(**facts)


if __name__ == '__main__':
    main()
