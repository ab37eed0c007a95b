# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: from the results of the verify modules to one row per host, printed as a table and written
as JSON and as one self-contained HTML page (inline CSS and SVG, nothing fetched from anywhere).

Used by the ``dbfleet.postgresql.fleet_report`` callback; pure functions and one recorder class, no Ansible state,
so the same code renders under ``ansible-playbook`` and ansible-runner.
"""

from __future__ import annotations

import datetime
import html
import json
import os

from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_duration, format_size

PREFIX = 'dbfleet.postgresql.'
CHECKS = ('backup_status', 'file_stat', 'replication_lag', 'wal_archive_status')
COLUMNS = ('host', 'role', 'newest dump', 'age', 'size', 'change', 'checksum', 'archiving', 'lag', 'verdict')
DEFAULT_DROP_PCT = 50.0
DEFAULT_BASELINE = 5


def check_name(action):
    """``backup_status`` for ``dbfleet.postgresql.backup_status`` (or the short name), else None."""
    name = (action or '').rsplit('.', 1)[-1] if (action or '').startswith(PREFIX) or '.' not in (action or '') else ''
    return name if name in CHECKS else None


def _report_of(data):
    """A ``dbfleet_report`` a result carries: at its top level, or in a fact set with set_fact."""
    if isinstance(data.get('dbfleet_report'), dict):
        return data['dbfleet_report']
    for value in (data.get('ansible_facts') or {}).values():
        if isinstance(value, dict) and isinstance(value.get('dbfleet_report'), dict):
            return value['dbfleet_report']
    return None


class HostRecord:
    """Everything the run said about one host, in the order it said it."""

    def __init__(self, name):
        self.name = name
        self.results = {}        # check name -> the last result of that module
        self.errors = {}         # check name -> why the module could not give a verdict
        self.verdict = None      # a dbfleet_report of check 'verdict' (set by the verify role)
        self.failures = []       # (task, message) of failed tasks before the verdict
        self.unreachable = None

    @property
    def relevant(self):
        return bool(self.results or self.errors or self.verdict or self.unreachable or self.failures)

    def add(self, action, task_name, data, status, ignored=False):
        """Record one result; ``status`` is ok, failed or unreachable."""
        items = data['results'] if isinstance(data.get('results'), list) and data['results'] else [data]
        for item in items:
            if isinstance(item, dict):
                self._add(action, task_name, item, status, ignored)

    def _add(self, action, task_name, data, status, ignored):
        message = data.get('msg') or data.get('reason') or 'no reason given'
        if status == 'unreachable' or data.get('unreachable'):
            self.unreachable = str(message).strip()
            return
        name = check_name(action)
        report = _report_of(data)
        if report is not None and report.get('check') == 'verdict':
            self.verdict = report
            return
        if name:
            if 'violations' in data and ('healthy' in data or 'ok' in data):
                self.results[name] = data
                self.errors.pop(name, None)
            elif status == 'failed' or data.get('failed_when_result') is False or 'msg' in data:
                self.errors[name] = str(message)
            return
        if status == 'failed' and not ignored and self.verdict is None:
            self.failures.append((task_name, str(message)))


def _troubled(dump, limit):
    """Whether the table should show this dump first: it no longer matches its manifest, is unreadable, or shrank."""
    change = dump.get('size_change_pct')
    return (dump.get('checksum') == 'mismatch' or dump.get('valid') is False
            or (change is not None and -change > (DEFAULT_DROP_PCT if limit is None else limit)))


def _newest_dump(backups, limit=None):
    """The dump the table shows: one with a problem, else the largest database's newest, else any."""
    dumps = [d for d in backups.get('dumps') or [] if d.get('path')]
    databases = [d for d in dumps if _troubled(d, limit)] or [d for d in dumps if d.get('kind') == 'database'] or dumps
    return max(databases, key=lambda d: d.get('size') or 0) if databases else None


def _from_file_stat(data):
    if not data.get('exists'):
        return None
    manifest = data.get('manifest') or {}
    drop = data.get('size_drop_pct')
    if not manifest:
        checksum = None
    elif not manifest.get('matches'):
        checksum = 'mismatch'
    else:
        checksum = 'ok' if data.get('sha256') else 'size-only'
    return dict(db=None, schedule=None, path=data.get('path'), stamp=None, age_seconds=data.get('age_seconds'),
                size=data.get('size'), size_change_pct=None if drop is None else -drop, checksum=checksum,
                valid=data.get('valid'), offsite=None, history=[])


def _replication(data):
    if data is None:
        return None
    facts = dict(role=data.get('role'), healthy=data.get('healthy'))
    if data.get('role') == 'primary':
        standbys = [s for s in data.get('standbys') or [] if s.get('state') != 'backup']
        lags = [s['lag_bytes'] for s in standbys if s.get('lag_bytes') is not None]
        seconds = [s['lag_seconds'] for s in standbys if s.get('lag_seconds') is not None]
        facts.update(standbys=[dict(name=s.get('application_name'), state=s.get('state'), lag_bytes=s.get('lag_bytes'),
                                    lag_seconds=s.get('lag_seconds')) for s in standbys],
                     lag_bytes=max(lags) if lags else None, lag_seconds=max(seconds) if seconds else None)
        streaming = len([s for s in standbys if s.get('state') == 'streaming'])
        lag = ('max %s / %s' % (format_size(facts['lag_bytes']), _secs(facts['lag_seconds']))) if lags else 'no lag to tell'
        facts['text'] = '%d streaming; %s' % (streaming, lag)
    else:
        own = data.get('replica') or {}
        facts.update(lag_bytes=own.get('lag_bytes'), lag_seconds=own.get('lag_seconds'), paused=own.get('replay_paused'))
        lag = '?' if own.get('lag_bytes') is None else format_size(own['lag_bytes'])
        facts['text'] = '%s / %s%s' % (lag, _secs(own.get('lag_seconds')), ', replay paused' if own.get('replay_paused') else '')
    return facts


def _archiving(data):
    if data is None:
        return None
    facts = dict(role=data.get('role'), healthy=data.get('healthy'), failing=data.get('failing'),
                 archiving_here=data.get('archiving_here'), last_archived_wal=data.get('last_archived_wal'),
                 last_archived_age_seconds=data.get('last_archived_age_seconds'), last_failed_wal=data.get('last_failed_wal'),
                 ready_segments=data.get('ready_segments'))
    if not data.get('archiving_here'):
        facts['text'] = 'on the primary' if data.get('role') == 'replica' else 'OFF'
    elif data.get('failing'):
        facts['text'] = 'FAILING at %s' % data.get('last_failed_wal')
    elif data.get('last_archived_wal'):
        facts['text'] = 'ok, %s %s ago' % (data['last_archived_wal'][:24],
                                           format_duration(data.get('last_archived_age_seconds') or 0))
    else:
        facts['text'] = 'nothing archived yet'
    if not data.get('healthy') and not facts['text'].startswith(('FAILING', 'OFF')):
        facts['text'] += ' (behind)'
    return facts


def _secs(value):
    return '?' if value is None else '%.1f s' % value


def _reasons(record):
    """``(verdict, reasons)``: healthy, unhealthy or unreachable, and the sentences that say why."""
    if record.unreachable:
        return 'unreachable', ['unreachable: %s' % record.unreachable]
    reasons = ['%s: %s' % (task, message) for task, message in record.failures]
    if record.verdict is not None:
        reasons = list(record.verdict.get('violations') or []) + reasons
    else:
        labels = dict(backup_status='backups', file_stat='backups', replication_lag='replication',
                      wal_archive_status='archiving')
        for name in CHECKS:
            if name in record.errors:
                reasons.append('%s: the check could not run: %s' % (labels[name], record.errors[name]))
            elif name in record.results:
                reasons.extend('%s: %s' % (labels[name], v) for v in record.results[name].get('violations') or [])
    return ('unhealthy' if reasons else 'healthy'), reasons


def host_row(record):
    """The report's row for one host (what fleet-report.json holds)."""
    backups = (record.results.get('backup_status') or {}).get('dbfleet_report') or {}
    thresholds = (record.results.get('backup_status') or {}).get('thresholds') or {}
    newest = _newest_dump(backups, thresholds.get('max_size_drop_pct')) if backups else _from_file_stat(record.results.get('file_stat') or {})
    replication = _replication(record.results.get('replication_lag'))
    archiving = _archiving(record.results.get('wal_archive_status'))
    verdict, reasons = _reasons(record)
    role = ((record.verdict or {}).get('role') or (replication or {}).get('role') or (archiving or {}).get('role') or '')
    change = (newest or {}).get('size_change_pct')
    checksum = (newest or {}).get('checksum')
    checksum = {'mismatch': 'MISMATCH', 'size-only': 'size ok'}.get(checksum, checksum or '-')
    if (newest or {}).get('valid') is False:
        checksum += ', UNREADABLE'
    cells = dict(host=record.name, role=role or '-',
                 **{'newest dump': os.path.basename((newest or {}).get('path') or '') or '-',
                    'age': format_duration(newest['age_seconds']) if newest and newest.get('age_seconds') is not None else '-',
                    'size': format_size(newest['size']) if newest and newest.get('size') is not None else '-',
                    'change': '-' if change is None else '%+.1f%%' % change,
                    'checksum': checksum,
                    'archiving': (archiving or {}).get('text') or '-',
                    'lag': (replication or {}).get('text') or ('unreachable' if record.unreachable else '-'),
                    'verdict': {'healthy': 'OK', 'unhealthy': 'RED', 'unreachable': 'UNREACHABLE'}[verdict]})
    return dict(host=record.name, role=role or None, verdict=verdict, healthy=verdict == 'healthy', reasons=reasons,
                cells=cells, newest_dump=newest, dumps=backups.get('dumps') or ([newest] if newest else []),
                basebackup=backups.get('basebackup'), replication=replication, archiving=archiving,
                max_size_drop_pct=thresholds.get('max_size_drop_pct'))


def rows_of(records):
    return [host_row(records[name]) for name in sorted(records) if records[name].relevant]


# --- text --------------------------------------------------------------------------------------------------------

def text_table(rows, width=48):
    """The table for the terminal, then one line per problem."""
    def cut(text):
        text = str(text)
        return text if len(text) <= width else text[:width - 3] + '...'
    table = [list(COLUMNS)] + [[cut(row['cells'][col]) for col in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ['  '.join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    for row in rows:
        for reason in row['reasons']:
            lines.append('%s: %s' % (row['host'], reason))
    healthy = len([r for r in rows if r['healthy']])
    lines.append('fleet: %d host(s), %d healthy, %d not' % (len(rows), healthy, len(rows) - healthy))
    return '\n'.join(lines)


# --- JSON --------------------------------------------------------------------------------------------------------

def report_data(rows, meta):
    healthy = len([r for r in rows if r['healthy']])
    return dict(meta, columns=list(COLUMNS), hosts=rows,
                summary=dict(hosts=len(rows), healthy=healthy, unhealthy=len(rows) - healthy))


# --- HTML / SVG ----------------------------------------------------------------------------------------------------

CSS = '''
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d2327;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.meta{color:#555;font-size:13px;margin-bottom:16px}
.summary{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600;margin-right:8px}
.ok{background:#e3f4e5;color:#1b5e20}.bad{background:#fde3e3;color:#b71c1c}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;
vertical-align:top}th{background:#f3f5f7}tr.healthy td{background:#f3fbf4}tr.unhealthy td,tr.unreachable td{background:#fdecec}
td.verdict{font-weight:700}tr.healthy td.verdict{color:#1b5e20}tr.unhealthy td.verdict,tr.unreachable td.verdict{color:#b71c1c}
.host{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:12px 0}.host.unhealthy,.host.unreachable{border-color:#e57373}
.host h3{margin:0 0 6px;font-size:15px}ul.reasons{margin:4px 0 8px;padding-left:20px;color:#b71c1c;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{font-size:12px;color:#333}.legend{font-size:12px;color:#555}
'''


def _points(history, limit, baseline, newest):
    """``[(stamp, size, status, red)]`` oldest first; a point is red when it failed or shrank past ``limit``."""
    out, previous = [], []
    for index, (stamp, size, status) in enumerate(history):
        red = status != 'ok'
        if status == 'ok' and size is not None:
            window = previous[-baseline:]
            if window:
                ordered = sorted(window)
                middle = len(ordered) // 2
                base = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0
                red = base > 0 and (base - size) * 100.0 / base > limit
            previous.append(size)
        if index == len(history) - 1 and newest and (newest.get('checksum') == 'mismatch' or newest.get('valid') is False):
            red = True
        out.append((stamp, size, status, red))
    return out


def svg_chart(dump, limit=None, baseline=DEFAULT_BASELINE, width=300, height=90):
    """A small inline SVG of a database's dump sizes over time; shrunk or failed dumps in red."""
    limit = DEFAULT_DROP_PCT if limit is None else limit
    points = _points(dump.get('history') or [], limit, baseline, dump)
    esc = html.escape
    label = '%s (%s)' % (dump.get('db') or '?', dump.get('schedule') or '?')
    if not points:
        return '<div class="chart">%s: no history</div>' % esc(label)
    top = max([p[1] for p in points if p[1]] or [1])
    left, right, upper, lower = 6, width - 6, 20, height - 14
    step = (right - left) / float(max(1, len(points) - 1))

    def xy(index, size):
        y = lower - (float(size or 0) / top) * (lower - upper)
        return left + index * step if len(points) > 1 else (left + right) / 2.0, y
    coords = [xy(i, p[1]) for i, p in enumerate(points)]
    parts = ['<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
             'aria-label="%s">' % (width, height, width, height, esc('dump sizes of ' + label)),
             '<rect x="0" y="0" width="%d" height="%d" fill="#fafbfc" stroke="#d0d7de"/>' % (width, height),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d0d7de"/>' % (left, lower, right, lower)]
    good = [c for c, p in zip(coords, points) if p[2] == 'ok']
    if len(good) > 1:
        parts.append('<polyline fill="none" stroke="#1976d2" stroke-width="2" points="%s"/>'
                     % ' '.join('%.1f,%.1f' % c for c in good))
    for (x, y), (stamp, size, status, red) in zip(coords, points):
        color = '#d32f2f' if red else '#1976d2'
        title = '%s: %s%s' % (stamp, format_size(size) if size is not None else 'no size',
                              '' if status == 'ok' else ' (%s)' % status)
        radius = 4.5 if red else 3
        parts.append('<circle cx="%.1f" cy="%.1f" r="%s" fill="%s"><title>%s</title></circle>' % (x, y, radius, color, esc(title)))
    parts.append('<text x="%d" y="11" font-size="10" fill="#555">%s</text>' % (left, esc('max ' + format_size(top))))
    last = points[-1]
    parts.append('<text x="%d" y="%d" font-size="10" fill="%s" text-anchor="end">%s</text>'
                 % (right, height - 3, '#d32f2f' if last[3] else '#333',
                    esc('newest ' + (format_size(last[1]) if last[1] is not None else '?'))))
    parts.append('</svg>')
    return '<div class="chart"><div>%s</div>%s</div>' % (esc(label), ''.join(parts))


def html_page(data):
    """One self-contained page: the table, then per host its problems and a chart per database."""
    esc = html.escape
    rows = data['hosts']
    summary = data['summary']
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>%s</title><style>%s</style></head><body>' % (esc(data['title']), CSS),
           '<h1>%s</h1>' % esc(data['title']),
           '<div class="meta">%s &middot; %s</div>' % (esc(data.get('generated_at') or ''), esc(data.get('playbook') or '')),
           '<div><span class="summary ok">%d healthy</span><span class="summary %s">%d not healthy</span></div>'
           % (summary['healthy'], 'bad' if summary['unhealthy'] else 'ok', summary['unhealthy']),
           '<h2>Fleet</h2><table><thead><tr>%s</tr></thead><tbody>' % ''.join('<th>%s</th>' % esc(c) for c in COLUMNS)]
    for row in rows:
        out.append('<tr class="%s">%s</tr>' % (row['verdict'], ''.join(
            '<td%s>%s</td>' % (' class="verdict"' if col == 'verdict' else '', esc(str(row['cells'][col])))
            for col in COLUMNS)))
    out.append('</tbody></table><h2>Hosts</h2>')
    for row in rows:
        out.append('<div class="host %s"><h3>%s &mdash; %s</h3>' % (row['verdict'], esc(row['host']),
                                                                    esc(row['cells']['verdict'])))
        if row['reasons']:
            out.append('<ul class="reasons">%s</ul>' % ''.join('<li>%s</li>' % esc(r) for r in row['reasons']))
        charts = [svg_chart(d, row.get('max_size_drop_pct')) for d in row['dumps'] if d.get('history')]
        if row.get('basebackup') and row['basebackup'].get('history'):
            charts.append(svg_chart(row['basebackup'], row.get('max_size_drop_pct')))
        if charts:
            out.append('<div class="charts">%s</div>' % ''.join(charts))
            out.append('<div class="legend">Dump sizes over time from the manifests, oldest left; red: a dump that '
                       'failed, shrank past the limit against the median of the ones before it, or no longer matches its '
                       'manifest.</div>')
        out.append('</div>')
    out.append('</body></html>')
    return '\n'.join(out)


def write_report(rows, out_dir, meta):
    """Write fleet-report.json and fleet-report.html into ``out_dir``; return their paths."""
    data = report_data(rows, meta)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, text in (('fleet-report.json', json.dumps(data, indent=2, sort_keys=True, default=str)),
                       ('fleet-report.html', html_page(data))):
        path = os.path.join(out_dir, name)
        tmp = os.path.join(out_dir, '.%s.tmp-%d' % (name, os.getpid()))
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(text + '\n')
        os.replace(tmp, path)
        paths.append(path)
    return paths


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
