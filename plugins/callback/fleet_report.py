# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: fleet_report
type: aggregate
short_description: One table per run - per host its newest dump, age, size, change, checksum, archiving, lag, verdict
version_added: 0.2.0
description:
  - At the end of every run, prints one table with a row per host - host, role, newest dump, age, size, change in
    size (against the median of the previous good dumps), checksum, WAL archiving, replication lag and the verdict -
    followed by every problem in words, and writes it as C(fleet-report.json) and as C(fleet-report.html), one
    self-contained page (inline CSS and SVG, no font, script or image from anywhere) with, per host, a small chart of
    dump sizes over time from the manifests, in which a dump that shrank, failed or no longer matches its manifest is
    red.
  - It reads the results of C(dbfleet.postgresql.backup_status), C(dbfleet.postgresql.file_stat),
    C(dbfleet.postgresql.replication_lag) and C(dbfleet.postgresql.wal_archive_status) (by module name, and any result
    or fact carrying a C(dbfleet_report) - the verify role's per-host verdict), so it works with any playbook that runs
    them. An unreachable host, or one whose checks failed, is a red row with the reason.
  - Works the same under C(ansible-playbook) and under ansible-runner (AWX, Automation Platform) - there the files go
    to the job's artifact directory unless O(output_dir) says otherwise.
  - Needs to be enabled - C(callbacks_enabled = dbfleet.postgresql.fleet_report) in C(ansible.cfg), or
    C(ANSIBLE_CALLBACKS_ENABLED=dbfleet.postgresql.fleet_report) in the environment (AWX - the job template's
    environment, or C(env/envvars) of an ansible-runner private data directory).
requirements:
  - enable in configuration (callbacks_enabled)
options:
  output_dir:
    description:
      - Directory the report files are written to (created when missing).
      - By default the ansible-runner artifact directory of the job when the run is one (C(AWX_ISOLATED_DATA_DIR)),
        else C(fleet-report/) in the current directory.
    type: path
    env:
      - name: DBFLEET_REPORT_DIR
    ini:
      - section: dbfleet_fleet_report
        key: output_dir
  title:
    description: Title of the HTML page and of the JSON report.
    type: str
    default: dbfleet fleet report
    env:
      - name: DBFLEET_REPORT_TITLE
    ini:
      - section: dbfleet_fleet_report
        key: title
  write_files:
    description: Write C(fleet-report.json) and C(fleet-report.html); false prints the table only.
    type: bool
    default: true
    env:
      - name: DBFLEET_REPORT_WRITE
    ini:
      - section: dbfleet_fleet_report
        key: write_files
'''

import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._fleet_report import (
    HostRecord,
    rows_of,
    text_table,
    utc_now,
    write_report,
)


def _parts(result):
    """``(host name, task, result dict)`` on ansible-core 2.19 (host/task/result) and before (_host/_task/_result)."""
    host = getattr(result, 'host', None) or result._host  # pylint: disable=protected-access
    task = getattr(result, 'task', None) or result._task  # pylint: disable=protected-access
    data = getattr(result, 'result', None)
    if not isinstance(data, dict):
        data = result._result  # pylint: disable=protected-access
    return host.get_name(), task, data


class CallbackModule(CallbackBase):
    """Collects the verify results per host; renders them once, when the run ends."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'dbfleet.postgresql.fleet_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = {}
        self.playbook = None

    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(getattr(playbook, '_file_name', '') or '') or None

    def _record(self, result, status, ignored=False):
        name, task, data = _parts(result)
        record = self.records.setdefault(name, HostRecord(name))
        action = getattr(task, 'resolved_action', None) or task.action
        record.add(action, task.get_name(), data, status, ignored)

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed', ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        rows = rows_of(self.records)
        if not rows:
            return
        self._display.banner('DBFLEET FLEET REPORT')
        self._display.display(text_table(rows))
        if not self.get_option('write_files'):
            return
        out_dir = self.get_option('output_dir') or os.environ.get('AWX_ISOLATED_DATA_DIR') or os.path.join(
            os.getcwd(), 'fleet-report')
        meta = dict(title=self.get_option('title'), generated_at=utc_now(), playbook=self.playbook)
        try:
            paths = write_report(rows, out_dir, meta)
        except OSError as exc:
            self._display.warning('fleet report: cannot write the report files to %s: %s' % (out_dir, exc))
            return
        self._display.display('fleet report: %s' % ', '.join(paths))
