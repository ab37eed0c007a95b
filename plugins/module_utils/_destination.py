# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a copy lands on this host, checked the same way by every module that brings one (send_file, s3_copy).

The directory is reached root-safely (``_files.open_dir``: no symlink another user could plant is followed)
and identified by device and inode, which the writer (``_runner.landing.Landing``) checks again when it opens
it; owner, group and modes are resolved and checked here; edit-mode backups of a replaced copy go to a
root-only directory under ``_files.BACKUP_ROOT`` mirroring the destination's path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired, _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_size


def parse_mode(module, option):
    """The permission mode in option ``option`` (an octal string); setuid, setgid and sticky bits refused."""
    text = module.params[option]
    try:
        value = int(text, 8)
    except (TypeError, ValueError):
        value = -1
    if not 0 <= value <= 0o777:
        module.fail_json(msg='%s=%r must be an octal permission mode like 0640, without setuid, setgid or sticky bits'
                             % (option, text))
    return value


def owner_ids(module):
    """``(uid, gid)`` of options ``owner`` and ``group``, or a failure naming them."""
    try:
        return _desired.ids(module.params['owner'], module.params['group'])
    except KeyError:
        module.fail_json(msg='owner %r / group %r does not exist on this host' % (module.params['owner'], module.params['group']))


def checked_directory(module, directory, owner, dir_mode, result):
    """``[st_dev, st_ino]`` of ``directory``, made (option ``create_dirs``) when missing; None in check mode then.

    Fills ``result['created_dirs']`` and ``result['free_bytes']``.
    """
    try:
        fd = _files.open_dir(directory)
    except _files.UnsafePath as exc:
        module.fail_json(msg='refused destination %s: %s' % (directory, exc))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            module.fail_json(msg='cannot open %s: %s' % (directory, exc))
        if not module.params.get('create_dirs'):
            module.fail_json(msg='%s does not exist: create it, or set create_dirs: true' % directory)
        result['created_dirs'] = directory
        if module.check_mode:
            return None
        try:
            _files.ensure_dir(directory, owner[0], owner[1], dir_mode)
            fd = _files.open_dir(directory)
        except (OSError, _files.UnsafePath) as exc:
            module.fail_json(msg='cannot create %s: %s' % (directory, exc))
    try:
        info = os.fstat(fd)
        free = os.fstatvfs(fd)
    finally:
        os.close(fd)
    result['free_bytes'] = free.f_bavail * free.f_frsize
    return [info.st_dev, info.st_ino]


def require_space(module, directory, needed, result):
    """Fail, in words, when the filesystem of ``directory`` has less than ``needed`` bytes free."""
    free = result.get('free_bytes')
    if free is not None and free < needed:
        module.fail_json(msg='%s has %s free; the copy needs %s more: free space first'
                             % (directory, format_size(free), format_size(needed)), **result)


def backup_dir(directory):
    """The root-only directory (created) that edit-mode backups of what is replaced in ``directory`` go to."""
    target = _files.BACKUP_ROOT
    _files.ensure_dir(target, 0, 0, 0o700)
    for part in [p for p in directory.split('/') if p]:
        target = os.path.join(target, part)
        _files.ensure_dir(target, 0, 0, 0o700)
    return target
