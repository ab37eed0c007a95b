#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: send_file
short_description: Copy a dump from this host to another inventory host, SHA-256 verified end to end
version_added: 0.2.0
description:
  - Sends O(path) (a file, or a directory such as a directory-format dump or a base backup, as one stream) from the
    host the task runs for to O(dest) on the inventory host O(to). No SSH trust between the two hosts is needed.
  - O(method=direct) opens a channel for this one transfer only - the destination listens on a one-time TLS port
    with a one-time certificate whose fingerprint the controller hands to the source, and both ends prove a
    one-time token - and the source streams straight to it; the port closes when the transfer is done.
    O(method=relay) streams through the controller over the two SSH connections Ansible already has the keys for,
    holding no more than pipe buffers of it. O(method=auto) tries direct and falls back to relay when the
    destination cannot be reached, and says so in RV(fallback).
  - Whatever the method, SHA-256 is computed while streaming on both ends and compared; the copy is written under a temporary name
    beside O(dest) and renamed only when the hashes match; an interrupted transfer leaves that partial copy, and the
    next one hashes it, compares it with the same prefix of the source and extends it only when they match. A
    mismatch removes it, so the destination never keeps a bad copy.
  - The deny-list and plan mode hold on both hosts, each from its own inventory. A destination in plan mode (or
    C(--check)) gets nothing; the result says what would be sent. An existing different O(dest) is backed up first
    (streamed to the destination's C(/var/lib/dbfleet/backups)) in C(edit) mode. An existing identical O(dest) is
    left alone (C(changed=false)).
  - The action plugin does the orchestration; this module is its host-side half, run on each of the two hosts.
extends_documentation_fragment:
  - dbfleet.postgresql.safety
options:
  path:
    description:
      - Absolute path of the file or directory to send, on the host the task runs for.
      - A directory is sent with its subdirectories and regular files; a symlink, FIFO or device inside it is refused.
    type: str
    required: true
  to:
    description:
      - The inventory name of the destination host. Its own inventory settings (address, user, key, C(dbfleet_mode),
        C(dbfleet_deny_paths)) apply to it.
    type: str
    required: true
  dest:
    description:
      - Absolute path the copy gets on O(to) (the file or directory itself, not the directory it goes into).
    type: str
    required: true
  method:
    description:
      - V(direct), V(relay), or V(auto) (direct, then relay if the destination cannot be reached).
    type: str
    choices: [auto, direct, relay]
    default: auto
  port:
    description:
      - TCP port the destination listens on for a direct transfer; V(0) picks a free one for each transfer.
    type: int
    default: 0
  direct_address:
    description:
      - Address the source connects to for a direct transfer. By default the destination's C(ansible_host).
    type: str
  listen_address:
    description:
      - Address the destination listens on for a direct transfer. By default O(direct_address); use V(0.0.0.0) when
        the source reaches the destination through NAT.
    type: str
  timeout:
    description:
      - Seconds without progress (or without a connection, for the destination's one-time port) before the transfer
        is given up. The partial copy stays for the next run to resume.
    type: int
    default: 60
  connect_timeout:
    description:
      - Seconds the source tries to connect for a direct transfer before O(method=auto) falls back to relay.
    type: int
    default: 15
  bandwidth_limit:
    description:
      - The most bytes per second to send, as bytes or with a unit (V(50MB), V(1GiB)); unlimited by default.
    type: str
  resume:
    description:
      - Extend a partial copy an interrupted transfer left, once it is verified. V(false) always sends everything.
    type: bool
    default: true
  create_dirs:
    description:
      - Create the directory O(dest) goes into (and missing ones above it) when it does not exist.
    type: bool
    default: false
  owner:
    description:
      - Owner of the copy on the destination.
    type: str
    default: root
  group:
    description:
      - Group of the copy; the owner's primary group by default.
    type: str
  mode:
    description:
      - Permissions of the copy (of each file, for a directory), as an octal string. No setuid, setgid or sticky bit.
    type: str
    default: '0640'
  directory_mode:
    description:
      - Permissions of each directory of a directory copy, and of directories O(create_dirs) makes.
    type: str
    default: '0750'
  side:
    description:
      - Internal, set by the action plugin - which half this run is.
    type: str
    choices: [source, destination]
  source:
    description:
      - Internal, set by the action plugin - what the source side found (kind, size), for the destination side.
    type: dict
  checksum:
    description:
      - Internal, set by the action plugin - have the source side hash O(path) (when the destination already has a
        copy of the same size).
    type: bool
    default: false
attributes:
  check_mode:
    description: Nothing is sent; the result says what would be sent, by which method, and whether it would resume.
    support: full
  diff_mode:
    description: Says what O(dest) is and what it would become (sizes and SHA-256, never content).
    support: full
notes:
  - Needs Python 3.8+ on both hosts and, for O(method=direct), C(openssl) on the destination; nothing is installed
    (the host-side programs travel on the SSH session's stdin). Streams need the ssh (key-based) or local connection.
  - The destination's one-time port must be reachable from the source for O(method=direct); O(method=relay) needs
    nothing but SSH from the controller to both hosts.
seealso:
  - module: dbfleet.postgresql.file_stat
  - module: dbfleet.postgresql.s3_copy
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Ship last night's dump to the off-site box (direct, relay if the port is blocked)
  dbfleet.postgresql.send_file:
    path: /srv/backups/app_prod-20260618T030000Z.dump.zst
    to: backup-box
    dest: /srv/offsite/db-primary/app_prod-20260618T030000Z.dump.zst
    create_dirs: true
  register: shipped

- name: A base backup directory, through the controller, at most 100 MB/s
  dbfleet.postgresql.send_file:
    path: /srv/basebackups/base-20260618T010000Z.dir
    to: backup-box
    dest: /srv/offsite/db-primary/base-20260618T010000Z.dir
    method: relay
    bandwidth_limit: 100MB
'''

RETURN = r'''
method:
  description: How the copy travelled (V(direct) or V(relay)); V(none) when nothing had to be sent.
  returned: always
  type: str
fallback:
  description: Why O(method=auto) did not go direct (the destination could not be reached), or null.
  returned: always
  type: str
bytes:
  description: Size of what was sent (for a directory, its stream).
  returned: success
  type: int
sent_bytes:
  description: Bytes that travelled in this run (less than RV(bytes) when a verified partial was extended).
  returned: success
  type: int
resumed_bytes:
  description: Bytes of a partial copy kept from an interrupted transfer, verified and extended.
  returned: success
  type: int
sha256:
  description: SHA-256 of the file (for a directory, its tree SHA-256 as manifests and M(dbfleet.postgresql.file_stat)
    give it), computed on both hosts while streaming.
  returned: success
  type: str
stream_sha256:
  description: SHA-256 of the stream itself, equal on both ends.
  returned: success
  type: str
seconds:
  description: Seconds the transfer took (programs started to verdict).
  returned: success
  type: float
throughput:
  description: RV(sent_bytes) per second of RV(seconds), for people (C(MiB/s)).
  returned: success
  type: str
throughput_bytes_per_second:
  description: The same, as a number.
  returned: success
  type: float
backup_file:
  description: Where the previous O(dest) was kept (edit mode), or null.
  returned: success
  type: str
partial_note:
  description: Why a kept partial copy was not extended (it did not match the source), or null.
  returned: success
  type: str
'''

import os
import stat
import sys

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _destination, _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.frames import TransferError
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_file, hash_tree, tree_size
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.landing import partial_name
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.tarstream import entry_bytes, scan
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule


def argument_spec():
    """Every option (the action plugin's and the host side's)."""
    return dict(
        path=dict(type='str', required=True),
        to=dict(type='str', required=True),
        dest=dict(type='str', required=True),
        method=dict(type='str', choices=['auto', 'direct', 'relay'], default='auto'),
        port=dict(type='int', default=0),
        direct_address=dict(type='str'),
        listen_address=dict(type='str'),
        timeout=dict(type='int', default=60),
        connect_timeout=dict(type='int', default=15),
        bandwidth_limit=dict(type='str'),
        resume=dict(type='bool', default=True),
        create_dirs=dict(type='bool', default=False),
        owner=dict(type='str', default='root'),
        group=dict(type='str'),
        mode=dict(type='str', default='0640'),
        directory_mode=dict(type='str', default='0750'),
        side=dict(type='str', choices=['source', 'destination']),
        source=dict(type='dict'),
        checksum=dict(type='bool', default=False),
    )


def _absolute(module, option):
    value = module.params[option]
    if not value.startswith('/') or value.rstrip('/') == '' or os.path.basename(value.rstrip('/')) in ('.', '..'):
        module.fail_json(msg='%s=%r must be an absolute path naming a file or directory (not /, . or ..)' % (option, value))
    return os.path.normpath(value)


def source_side(module):
    """What is to be sent: kind, size, identity, and its SHA-256 when asked."""
    path = _absolute(module, 'path')
    module.require_allowed_path(path, 'path')
    info = _files.lstat_or_none(path)
    if info is None:
        module.fail_json(msg='%s does not exist on the source host: nothing to send' % path)
    if stat.S_ISLNK(info.st_mode):
        module.fail_json(msg='%s is a symlink: give the real path of the file or directory to send' % path)
    result = dict(changed=False, id=[info.st_dev, info.st_ino], mtime=int(info.st_mtime), python=sys.executable)
    try:
        if stat.S_ISDIR(info.st_mode):
            fd = _files.open_dir(path)
            try:
                entries = scan(fd)
            finally:
                os.close(fd)
            for entry in entries:
                module.require_allowed_path(os.path.join(path, entry.rel), 'path')
            result.update(kind='tree', size=sum(entry_bytes(entry) for entry in entries) + 1024,
                          files=sum(1 for entry in entries if not entry.is_dir),
                          file_bytes=sum(entry.size for entry in entries))
            if module.params['checksum']:
                result['sha256'] = hash_tree(path).hexdigest()
        elif stat.S_ISREG(info.st_mode):
            result.update(kind='file', size=info.st_size, files=1, file_bytes=info.st_size)
            if module.params['checksum']:
                result['sha256'] = hash_file(path).hexdigest()
        else:
            module.fail_json(msg='%s is neither a regular file nor a directory: refused' % path)
    except (TransferError, _files.UnsafePath, OSError) as exc:
        module.fail_json(msg='cannot send %s: %s' % (path, exc))
    module.exit_json(**result)


def destination_side(module):
    """Where the copy goes: the checked directory, what is there already, the kept partial, owner and modes."""
    dest = _absolute(module, 'dest')
    module.require_write_destination(dest, 'dest')
    source = module.params['source'] or {}
    kind, size = source.get('kind'), source.get('size')
    if kind not in ('file', 'tree') or not isinstance(size, int):
        module.fail_json(msg='side=destination needs source: {kind, size} from the source side')
    owner = _destination.owner_ids(module)
    file_mode, dir_mode = _destination.parse_mode(module, 'mode'), _destination.parse_mode(module, 'directory_mode')
    directory = os.path.dirname(dest)
    result = dict(changed=False, python=sys.executable, owner=list(owner), file_mode=file_mode, dir_mode=dir_mode,
                  check_mode=module.check_mode, existing=None, partial_bytes=0, backup_dir=None, created_dirs=None)
    result['dir_id'] = _destination.checked_directory(module, directory, owner, dir_mode, result)
    info = _files.lstat_or_none(dest)
    if info is not None:
        is_dir = stat.S_ISDIR(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or not (is_dir or stat.S_ISREG(info.st_mode)):
            module.fail_json(msg='%s on the destination is a symlink or a special file: refused (give another dest)' % dest)
        if is_dir != (kind == 'tree'):
            module.fail_json(msg='%s on the destination is a %s, the source is a %s: give the full path of the copy '
                                 '(e.g. %s/NAME)' % (dest, 'directory' if is_dir else 'file', 'directory' if kind == 'tree' else 'file', dest))
        existing = dict(kind=kind, size=tree_size(dest) if is_dir else info.st_size)
        if existing['size'] == source.get('file_bytes', size):
            existing['sha256'] = (hash_tree(dest) if is_dir else hash_file(dest)).hexdigest()
        result['existing'] = existing
        if module.dbfleet_mode == 'edit' and not module.check_mode:
            result['backup_dir'] = _destination.backup_dir(directory)
    partial = _files.lstat_or_none(os.path.join(directory, partial_name(os.path.basename(dest))))
    if partial is not None:
        result['partial_bytes'] = partial.st_size if stat.S_ISREG(partial.st_mode) else -1
    _destination.require_space(module, directory, size - max(0, result['partial_bytes']), result)
    module.exit_json(**result)


def main():
    module = DbfleetModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params['side'] == 'source':
        source_side(module)
    elif module.params['side'] == 'destination':
        destination_side(module)
    module.fail_json(msg='send_file runs through its action plugin (dbfleet.postgresql.send_file), which runs this '
                         'module on the source and on the destination')


if __name__ == '__main__':
    main()
