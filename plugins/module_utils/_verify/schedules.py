# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's dump schedules left behind, read the root-safe way: their configs, their state (the last run's
summary, a run that died), and the artifacts and manifests in their destinations, grouped per database.

Everything here only reads. Configs come from ``/etc/dbfleet/pg_dump/NAME.json`` (the ``NAME.s3.json`` and
``NAME.pgpass`` secrets beside them are never opened); state and destination directories belong to the
database's OS user, so directories are reached with ``_files.open_dir``, entries are ``lstat``-ed (a symlink is
never followed, a FIFO never opened) and JSON files are read bounded with ``_files.read_regular``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import open_dir
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.locking import pid_alive
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import manifest_name, parse_artifact_name
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.retention import own_entries
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.state import LAST_RUN_FILE, RUNNING_FILE, died_message
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify.artifact import MISSING, read_json_object

CONFIG_DIR = runner_config.DEFAULT_DIRS['config_dir']
SECRET_SUFFIXES = ('.s3.json', '.pgpass')
# What a last-run summary or a manifest may tell about itself in a result (never the whole file).
LAST_RUN_KEYS = ('status', 'started_at', 'finished_at', 'errors', 'warnings', 'not_dumped', 'exit_code', 'previous_run')


def _listing(directory):
    """``[(name, lstat)]`` of a directory reached root-safely; ``None`` when it does not exist."""
    try:
        fd = open_dir(directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        found = []
        for entry in os.scandir(fd):
            try:
                found.append((entry.name, os.lstat(entry.name, dir_fd=fd)))
            except OSError:
                continue  # removed meanwhile (retention)
        return sorted(found)
    finally:
        os.close(fd)


def config_files(config_dir):
    """The schedule configs in ``config_dir`` as ``[(name, path)]``; secrets are never listed. None: no such dir."""
    listing = _listing(config_dir)
    if listing is None:
        return None
    return [(name[:-len('.json')], os.path.join(config_dir, name)) for name, info in listing
            if name.endswith('.json') and not name.endswith(SECRET_SUFFIXES) and not name.startswith('.')
            and stat.S_ISREG(info.st_mode)]


def load_schedule(name, path):
    """``(config, problems)``: the config as the runner will apply it (defaults filled), or None and why not (no
    problem when the file was removed since it was listed)."""
    data, problem = read_json_object(path)
    if problem == MISSING:
        return None, []  # removed since it was listed: no schedule any more
    if problem:
        return None, ['cannot read the schedule config %s: %s' % (path, problem)]
    if data.get('name') != name:
        return None, ['the schedule config %s names the schedule %r, not %r: the runner refuses it' % (path, data.get('name'), name)]
    errors = runner_config.validate_config(data)
    if errors:
        return None, ['the schedule config %s is not valid, so every run of it fails: %s (install it again with '
                      'dbfleet.postgresql.pg_dump_schedule)' % (path, '; '.join(errors))]
    rest = dict(data)
    return runner_config.build_config(rest.pop('name'), rest.pop('dest'), **rest), []


def run_state(state_dir):
    """The schedule's last run and a run that holds (or held) its lock: ``{last_run, running, died}``.

    Like ``_runner.state.run_state``, read root-safely; unreadable files are reported in ``problems``.
    """
    state = dict(last_run=None, running=None, died=None, problems=[])
    for key, filename in (('last_run', LAST_RUN_FILE), ('running', RUNNING_FILE)):
        path = os.path.join(state_dir, filename)
        data, problem = read_json_object(path)
        if data is not None:
            state[key] = data
        elif problem != MISSING:
            state['problems'].append('cannot read %s: %s' % (path, problem))
    running = state['running']
    if running is not None:
        alive = isinstance(running.get('pid'), int) and not isinstance(running.get('pid'), bool) and pid_alive(running['pid'])
        state['running'] = dict(pid=running.get('pid'), started_at=running.get('started_at'), alive=alive)
        if not alive:
            state['died'] = died_message(running)
    if state['last_run'] is not None:
        state['last_run'] = dict((key, state['last_run'].get(key)) for key in LAST_RUN_KEYS)
    return state


def _entry_status(entry):
    """ok / failed / missing / unknown, as the runner's retention sees a (db, stamp) set of files."""
    data = entry['manifest']
    if data is None:
        return 'unknown' if entry['dumps'] or entry['manifest_problem'] is None else 'failed'
    if data.get('status') != 'ok':
        return 'failed'
    named = os.path.basename(data.get('path') or '')
    return 'ok' if named and named in entry['dumps'] else 'missing'


def scan_dest(dest):
    """The runner's artifacts in ``dest``, one entry per (db, stamp): ``db``, ``stamp``, ``when``, ``dumps`` (name ->
    lstat), ``manifest`` (its content, None when absent or unreadable), ``manifest_problem``, ``schedule``, ``status``.

    None when ``dest`` does not exist. Symlinks, FIFOs and other non-regular entries are never artifacts.
    """
    listing = _listing(dest)
    if listing is None:
        return None
    groups = {}
    for name, info in listing:
        parsed = parse_artifact_name(name)
        if parsed is None:
            continue
        entry = groups.setdefault((parsed['db'], parsed['stamp']), dict(
            db=parsed['db'], stamp=parsed['stamp'], when=parsed['when'], dumps={}, manifest=None,
            manifest_problem=None, schedule=None))
        if parsed['kind'] == 'manifest':
            if stat.S_ISREG(info.st_mode):
                entry['manifest'], entry['manifest_problem'] = read_json_object(os.path.join(dest, name))
            else:
                entry['manifest_problem'] = 'not a regular file'
        elif stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
            entry['dumps'][name] = info
    for entry in groups.values():
        if entry['manifest'] is not None and isinstance(entry['manifest'].get('schedule'), str):
            entry['schedule'] = entry['manifest']['schedule']
        entry['status'] = _entry_status(entry)
    return sorted(groups.values(), key=lambda item: (item['db'], item['stamp']))


def by_database(entries, schedule):
    """The entries ``schedule`` made (the runner's own rule), per database, newest first."""
    dbs = {}
    for entry in own_entries(entries, schedule):
        dbs.setdefault(entry['db'], []).append(entry)
    return dict((db, sorted(items, key=lambda item: item['stamp'], reverse=True)) for db, items in dbs.items())


def artifact_path(dest, entry):
    """The dump an entry's manifest names (else its only dump file), as a path in ``dest``; None without one."""
    named = os.path.basename((entry['manifest'] or {}).get('path') or '')
    if named in entry['dumps']:
        return os.path.join(dest, named)
    if len(entry['dumps']) == 1:
        return os.path.join(dest, list(entry['dumps'])[0])
    return None


def sidecar(dest, entry):
    return os.path.join(dest, manifest_name(entry['db'], entry['stamp']))
