# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state of the files and directories a module installs on a host, compared, diffed and applied
the same way by every module (pg_dump_schedule, pg_wal_archiving, ...).

A module builds a list of :class:`DesiredDir` and :class:`DesiredFile`, asks which differ (that is
its ``changed``, identical in check mode and for real), shows their diffs (secrets only as
"changed", host programs not at all), and in a real run applies them with the root-safe
operations of ``_files``: directories through file descriptors, files atomically with owner and
mode set before content, edit-mode backups of non-secret files kept apart.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files

SECRET_CHANGED = '(secret: changed, not shown)\n'
SECRET_SAME = '(secret, not shown)\n'


def ids(owner, group=None):
    """``(uid, gid)`` of a user name and a group name (the user's primary group by default)."""
    entry = pwd.getpwnam(owner)
    gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    return entry.pw_uid, gid


def group_of(user):
    """The name of ``user``'s primary group: the group a run user reads its configs and secrets as."""
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


class DesiredDir:
    """A directory that must exist with this owner, group and mode."""

    def __init__(self, path, owner='root', group=None, mode=0o755):
        self.path, self.owner, self.group, self.mode = path, owner, group, mode

    def differs(self):
        """What differs ('missing', 'owner/mode') or None; a symlink that is not safe raises UnsafePath."""
        exists, uid, gid, mode = _files.dir_state(self.path)
        if not exists:
            return 'missing'
        if (uid, gid) != ids(self.owner, self.group) or mode != self.mode:
            return 'owner/mode'
        return None

    def diff(self):
        return dict(before_header=self.path, after_header=self.path, before='', after='(directory %s:%s %04o)\n' % (
            self.owner, self.group or self.owner, self.mode))

    def apply(self, module):
        uid, gid = ids(self.owner, self.group)
        _files.ensure_dir(self.path, uid, gid, self.mode)


class DesiredFile:
    """One file: content (bytes), owner, group, mode; ``secret`` hides content and skips backups,
    ``shown=False`` keeps it out of diffs (a host program)."""

    def __init__(self, path, content, owner='root', group=None, mode=0o644, secret=False, shown=True):
        self.path, self.content, self.owner, self.group, self.mode = path, content, owner, group, mode
        self.secret, self.shown = secret, shown
        self._current = self._unread = object()

    def current(self):
        """The file's bytes now (read once, safely), or None when it does not exist."""
        if self._current is self._unread:
            self._current = _files.read_regular(self.path)
        return self._current

    def differs(self):
        """What differs: 'content', 'owner/mode', or None."""
        if self.current() != self.content:
            return 'content'
        info = os.lstat(self.path)
        if (info.st_uid, info.st_gid) != ids(self.owner, self.group) or info.st_mode & 0o7777 != self.mode:
            return 'owner/mode'
        return None

    def diff(self):
        """A diff entry; secrets say only that they changed."""
        before, after = self.current(), self.content
        if self.secret:
            text_before = '' if before is None else (SECRET_SAME if before == after else SECRET_CHANGED)
            text_after = SECRET_SAME if before == after else SECRET_CHANGED
        else:
            text_before = '' if before is None else before.decode('utf-8', 'replace')
            text_after = after.decode('utf-8', 'replace')
        return dict(before_header=self.path, after_header=self.path, before=text_before, after=text_after)

    def apply(self, module):
        """Back up (edit mode, never a secret), then write atomically with owner and mode."""
        if self.current() is not None and self.current() != self.content:
            module.backup_before_overwrite(self.path, secret=self.secret)
        uid, gid = ids(self.owner, self.group)
        _files.write_file(self.path, self.content, uid, gid, self.mode)


class ObsoleteFile:
    """A file that must not exist any more (a passfile after the password option was dropped)."""

    def __init__(self, path, secret=False):
        self.path, self.secret = path, secret

    def differs(self):
        return 'obsolete' if _files.lstat_or_none(self.path) is not None else None

    def diff(self):
        return dict(before_header=self.path, after_header=self.path,
                    before=SECRET_SAME if self.secret else '(file)\n', after='')

    def apply(self, module):
        module.backup_before_overwrite(self.path, secret=self.secret)
        _files.remove_file(self.path)


def plan(items):
    """The items that differ, and the diffs to show for them."""
    changed = [item for item in items if item.differs()]
    diffs = [item.diff() for item in changed if getattr(item, 'shown', True)]
    return changed, diffs


def apply(module, changed):
    """Apply the changed items in order (directories come first in the list)."""
    for item in changed:
        item.apply(module)
