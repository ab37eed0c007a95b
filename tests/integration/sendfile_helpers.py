# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the send_file tests and benchmark share: the one 1 GiB file, remote hashes, a kernel block of one port,
the controller's footprint while it relays, and a runner-made dump with its manifest."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time

SOURCE = 'db-primary'
DEST = 'backup-box'
BIG_DIR = '/srv/sendfile-big'
BIG = BIG_DIR + '/big-20260101T000000Z.dump'    # random bytes, named like a dump; 1 GiB
BIG_SIZE = 1 << 30
NFT_TABLE = 'dbfleet_send_file_test'

HASH = ('import hashlib, sys\nh = hashlib.sha256()\nwith open(sys.argv[1], "rb", buffering=0) as f:\n'
        '    for b in iter(lambda: f.read(1 << 20), b""):\n        h.update(b)\nprint(h.hexdigest())\n')


def sha256_on(lab, host, path):
    """SHA-256 of a file on a lab host (Python's hashlib there: sha256sum is 4x slower on these machines)."""
    return lab.exec(host, '/usr/bin/python3', '-c', HASH, path).stdout.strip()


def make_random(lab, host, path, size):
    """A file of ``size`` random bytes on ``host`` (made once; its SHA-256 is kept beside it)."""
    marker = path + '.sha256'
    have = lab.exec(host, 'sh', '-c', 'cat %s 2>/dev/null; stat -c %%s %s 2>/dev/null' % (marker, path), check=False).stdout.split()
    if len(have) == 2 and have[1] == str(size):
        return have[0]
    lab.exec(host, 'sh', '-c', 'mkdir -p "$(dirname %s)" && head -c %d /dev/urandom > %s.tmp && mv %s.tmp %s'
             % (path, size, path, path, path), timeout=600)
    digest = sha256_on(lab, host, path)
    lab.exec(host, 'sh', '-c', 'cat > %s' % marker, input=digest)
    return digest


def host_path(lab, host, path):
    """Where a path of a lab host's private trees (/srv, ...) is on the real machine (for fast polling)."""
    return os.path.join(str(lab.state_dir), 'hosts', host, 'root', path.lstrip('/'))


def make_dump(lab, host, directory, db, stamp, fmt='custom', status='ok'):
    """A real pg_dump of app_prod as ``db-stamp`` with a runner-like manifest beside it; the manifest dict."""
    ext = '.dir' if fmt == 'directory' else '.dump'
    path = '%s/%s-%s%s' % (directory, db, stamp, ext)
    flag = '-Fd -f %s' % path if fmt == 'directory' else '-Fc -f %s' % path
    lab.exec(host, 'sh', '-c', 'mkdir -p %s && rm -rf %s && pg_dump -U postgres %s app_prod' % (directory, path, flag))
    code = ('import json, sys\nsys.path.insert(0, sys.argv[2])\n'
            'from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import hashing\n'
            'p = sys.argv[1]\nimport os\n'
            'd = hashing.hash_tree(p) if os.path.isdir(p) else hashing.hash_file(p)\n'
            'print(json.dumps({"size": d.size, "sha256": d.hexdigest(), "files": d.listing() if os.path.isdir(p) else None}))\n')
    facts = json.loads(lab.exec(host, '/usr/bin/python3', '-c', code, path, str(lab.repo / 'build' / 'collections')).stdout)
    manifest = dict(manifest_version=1, status=status, db=db, stamp=stamp, host=host, path=path, kind='database',
                    format=fmt, error=None if status == 'ok' else 'pg_dump failed (test)', **facts)
    lab.exec(host, 'sh', '-c', 'cat > %s/%s-%s.manifest.json' % (directory, db, stamp), input=json.dumps(manifest, indent=2))
    return manifest


@contextlib.contextmanager
def blocked_port(address, port):
    """Reject (TCP reset) every connection to ``address:port`` in the kernel, for real; removed afterwards."""
    rules = ('table inet %s {\n chain output {\n  type filter hook output priority 0; policy accept;\n'
             '  ip daddr %s tcp dport %d reject with tcp reset\n }\n}\n' % (NFT_TABLE, address, port))
    subprocess.run(['nft', '-f', '-'], input=rules.encode(), check=True)
    try:
        yield
    finally:
        subprocess.run(['nft', 'delete', 'table', 'inet', NFT_TABLE], check=False)


def _descendants(pid):
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    parent = int(handle.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _proc_value(pid, name, key):
    try:
        with open('/proc/%d/%s' % (pid, name)) as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Footprint:
    """Samples a controller process tree: the most resident memory at once, and what it wrote to storage."""

    def __init__(self, pid, every=0.05):
        self.pid, self.every = pid, every
        self.max_rss = 0
        self.written = {}
        self.processes = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for pid in _descendants(self.pid):
                self.processes.add(pid)
                total += _proc_value(pid, 'status', 'VmRSS:') * 1024
                self.written[pid] = max(self.written.get(pid, 0), _proc_value(pid, 'io', 'write_bytes:'))
            self.max_rss = max(self.max_rss, total)
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def storage_writes(self):
        return sum(self.written.values())
