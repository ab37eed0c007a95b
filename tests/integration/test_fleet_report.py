# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_report callback on the fleet lab: the table at the end of the run, fleet-report.json and a
self-contained fleet-report.html - rendered in headless Chromium with every name resolution refused, its
screenshot decoded here (a PNG reader in pure Python) and checked for content - under ansible-playbook and
under ansible-runner with a private data directory as AWX runs a job."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from tests.integration.verify_lab import CALLBACK, DB_HOSTS, LAB_VARS, PRIMARY, VERIFY, changed_newest_dump, fresh_backups, run_verify

GHOST = 'db-ghost'
RED = (0xd3, 0x2f, 0x2f)


@pytest.fixture(scope='module')
def lab(fleet_lab):
    fresh_backups(fleet_lab)
    return fleet_lab


def ghost_inventory(lab, tmp_path):
    """The lab inventory plus a db host nothing answers for (an address in the loopback range with no sshd)."""
    ghost = tmp_path / 'ghost.yml'
    ghost.write_text(json.dumps({'all': {'children': {'db': {'hosts': {GHOST: {
        'ansible_host': '127.0.0.99', 'ansible_user': 'root', 'ansible_python_interpreter': '/usr/bin/python3',
        'ansible_ssh_common_args': '-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'}}}}}}))
    return [str(lab.inventory), str(ghost)]


# --- a PNG reader, enough for Chromium's screenshots (8-bit RGB/RGBA, non-interlaced) ------------------------------

def png_pixels(path):
    """``(width, height, rows)``: rows of ``(r, g, b)`` tuples."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, header = 8, b'', None
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    width, height, depth, color, _comp, _filter, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xff
            elif kind == 2:
                line[i] = (line[i] + up) & 0xff
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xff
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xff
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


def screenshot(html, out, tmp_path):
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if not chromium:
        pytest.skip('Debian\'s chromium package is not installed (bindep.txt, profile test)')
    argv = [chromium, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run', '--user-data-dir=%s' % (tmp_path / 'chromium'),
            '--host-resolver-rules=MAP * ~NOTFOUND', '--window-size=1300,1000', '--screenshot=%s' % out, 'file://%s' % html]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and os.path.getsize(out) > 0, proc.stderr[-3000:]
    return png_pixels(out)


def assert_self_contained(page):
    """Nothing in the page would make a browser ask the network (or the disk) for anything."""
    for pattern in (r'https?://', r'\bsrc\s*=', r'\bhref\s*=', r'url\s*\(', r'@import', r'<script', r'<link', r'<img',
                    r'<iframe', r'<object', r'<embed', r'//[a-z0-9.-]+\.[a-z]{2,}'):
        assert not re.search(pattern, page, re.I), 'the report refers to something outside itself: %s' % pattern


def test_report_after_a_run_with_an_unreachable_host_and_a_shrunk_dump(lab, tmp_path):
    report = tmp_path / 'report'
    with changed_newest_dump(lab, 'head -c 200000 /dev/urandom > $f') as newest:
        proc = run_verify(lab, report_dir=report, inventory=ghost_inventory(lab, tmp_path), json_output=False)
    out = proc.stdout
    assert 'PLAY RECAP' in out and 'DBFLEET FLEET REPORT' in out, out[-3000:]
    table = out[out.index('DBFLEET FLEET REPORT'):]
    header = [line for line in table.splitlines() if line.startswith('host ')][0]
    for column in ('host', 'role', 'newest dump', 'age', 'size', 'change', 'checksum', 'archiving', 'lag', 'verdict'):
        assert column in header, header
    lines = dict((line.split()[0], line) for line in table.splitlines() if line.split() and line.split()[0] in DB_HOSTS + [GHOST])
    assert lines[PRIMARY].rstrip().endswith('RED') and os.path.basename(newest) in lines[PRIMARY]
    assert 'MISMATCH' in lines[PRIMARY] and '195.3 KiB' in lines[PRIMARY]
    assert lines[GHOST].rstrip().endswith('UNREACHABLE')
    for host in ('db-replica-1', 'db-replica-2'):
        assert lines[host].rstrip().endswith('OK') and ' replica ' in lines[host]
    assert 'fleet: 4 host(s), 2 healthy, 2 not' in table

    data = json.loads((report / 'fleet-report.json').read_text())
    rows = dict((row['host'], row) for row in data['hosts'])
    assert sorted(rows) == sorted(DB_HOSTS + [GHOST]) and data['summary'] == dict(hosts=4, healthy=2, unhealthy=2)
    assert rows[GHOST]['verdict'] == 'unreachable' and 'unreachable' in rows[GHOST]['reasons'][0]
    primary = rows[PRIMARY]
    assert primary['verdict'] == 'unhealthy' and primary['role'] == 'primary'
    assert any('smaller than the median' in reason for reason in primary['reasons'])
    app = [d for d in primary['dumps'] if d['db'] == 'app_prod'][0]
    assert app['path'] == newest and app['size'] == 200000 and app['size_change_pct'] < -50 and app['checksum'] == 'mismatch'
    assert app['history'][-1][:2] == [app['stamp'], 200000] and len(app['history']) >= 2
    assert primary['archiving']['text'].startswith('ok, ') and primary['replication']['lag_bytes'] is not None
    assert rows['db-replica-1']['replication']['lag_seconds'] is not None

    page = (report / 'fleet-report.html').read_text()
    assert_self_contained(page)
    for host in DB_HOSTS + [GHOST]:
        assert '>%s<' % host in page
    assert page.count('<svg') >= 3 and 'fill="#d32f2f"' in page  # the shrunk dump is a red point in its chart
    width, height, pixels = screenshot(report / 'fleet-report.html', tmp_path / 'report.png', tmp_path)
    colours = set()
    ink = reds = 0
    for row in pixels:
        for pixel in row:
            colours.add(pixel)
            if pixel != (255, 255, 255):
                ink += 1
            if all(abs(a - b) < 40 for a, b in zip(pixel, RED)):
                reds += 1
    assert (width, height) == (1300, 1000)
    assert len(colours) > 50, 'a blank or near-blank page: %d colours' % len(colours)
    assert ink > width * height // 50, 'too little drawn: %d non-white pixels' % ink
    assert reds > 20, 'the red of an unhealthy host or a shrunk dump is not on the page'


def test_report_under_ansible_runner_lands_in_the_artifacts_and_in_the_configured_dir(lab, tmp_path):
    runner = os.path.join(os.path.dirname(sys.executable), 'ansible-runner')
    if not os.path.exists(runner):
        pytest.skip('ansible-runner is not installed in the venv')
    data_dir = tmp_path / 'job'
    for sub in ('project', 'inventory', 'env'):
        (data_dir / sub).mkdir(parents=True)
    # As an AWX project would: a playbook in the project that runs the collection's playbook by its name.
    (data_dir / 'project' / 'verify.yml').write_text('- name: Verify the fleet\n  ansible.builtin.import_playbook: '
                                                     'dbfleet.postgresql.verify_backups\n')
    shutil.copy(str(lab.inventory), str(data_dir / 'inventory' / 'hosts.yml'))
    (data_dir / 'env' / 'extravars').write_text(json.dumps(LAB_VARS))
    (data_dir / 'env' / 'settings').write_text(json.dumps({'idle_timeout': 300, 'job_timeout': 600}))
    import sysconfig  # pylint: disable=import-outside-toplevel
    envvars = {'ANSIBLE_CALLBACKS_ENABLED': CALLBACK, 'ANSIBLE_PIPELINING': 'True', 'ANSIBLE_HOST_KEY_CHECKING': 'False',
               'ANSIBLE_COLLECTIONS_PATH': '%s:%s' % (os.path.join(lab.repo, 'build', 'collections'),
                                                      sysconfig.get_paths()['purelib'])}
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'DBFLEET_')))
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    configured = tmp_path / 'configured'
    for ident, extra in (('default', {}), ('configured', {'DBFLEET_REPORT_DIR': str(configured)})):
        (data_dir / 'env' / 'envvars').write_text(json.dumps(dict(envvars, **extra)))
        proc = subprocess.run([runner, 'run', str(data_dir), '-p', 'verify.yml', '--ident', ident], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        artifacts = data_dir / 'artifacts' / ident
        stdout = (artifacts / 'stdout').read_text() if (artifacts / 'stdout').exists() else proc.stdout
        assert proc.returncode == 0 and (artifacts / 'rc').read_text().strip() == '0', stdout[-4000:] + proc.stderr[-2000:]
        assert 'DBFLEET FLEET REPORT' in stdout and 'fleet: 3 host(s), 3 healthy, 0 not' in stdout, stdout[-3000:]
        where = configured if extra else artifacts
        report = json.loads((where / 'fleet-report.json').read_text())
        assert [row['host'] for row in report['hosts']] == DB_HOSTS and report['summary']['healthy'] == 3
        assert report['playbook'] == 'verify.yml'
        assert_self_contained((where / 'fleet-report.html').read_text())
        if extra:
            assert not (artifacts / 'fleet-report.json').exists()
        # The same events AWX stores: the verify modules' results are in the job events too.
        events = [json.loads((artifacts / 'job_events' / name).read_text()) for name in os.listdir(artifacts / 'job_events')]
        tasks = set(e['event_data'].get('task') for e in events if e.get('event') == 'runner_on_ok')
        assert any("backup facts" in (t or '') for t in tasks), sorted(t for t in tasks if t)
    assert VERIFY.endswith('verify_backups.yml')
