# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safety primitives shared by every dbfleet module: the path deny-list and per-host modes.

Private to the collection. Two rules, applied in every module:

* The hard deny-list refuses any path option that is, or lies under, a protected path, in every
  mode including ``bypass``. Inventory (``dbfleet_deny_paths``) may add entries, never remove any.
* ``dbfleet_mode`` is ``plan`` (read-only, as if ``--check`` were given), ``edit`` (writes
  allowed, anything overwritten is backed up first) or ``bypass`` (writes, no backup).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import math
import os
import posixpath
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files

MODES = ('plan', 'edit', 'bypass')

# Most restrictive first: when the task and the inventory disagree, the stricter one wins.
MODE_STRICTNESS = {'plan': 2, 'edit': 1, 'bypass': 0}

# A plain entry protects the path and everything under it; an entry with glob characters is
# matched against the whole path (fnmatch: ``*`` also crosses ``/``).
DEFAULT_DENY_PATHS = (
    '/etc/shadow',
    '/etc/shadow-',
    '/etc/gshadow',
    '/etc/gshadow-',
    '/etc/sudoers',
    '/etc/sudoers.d',
    '/boot',
    '/proc',
    '/sys',
    '/etc/ssh/ssh_host_*_key',
    '*/.ssh/id_rsa',
    '*/.ssh/id_dsa',
    '*/.ssh/id_ecdsa',
    '*/.ssh/id_ecdsa_sk',
    '*/.ssh/id_ed25519',
    '*/.ssh/id_ed25519_sk',
)

_GLOB_CHARS = frozenset('*?[')

# Where data (dumps, WAL, transfers) is never written, whatever the symlinks say: the system's own
# trees, and anyone's SSH directory.
SYSTEM_WRITE_ROOTS = ('/etc', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/dev', '/run',
                      '/boot', '/proc', '/sys')
_SSH_DIR_RE = re.compile(r'(^|/)\.ssh(/|$)')
# C0 controls and DEL: a newline in a value would start a new line in a cron file or config.
_CONTROL_RE = re.compile('[\x00-\x1f\x7f]')


def control_character_problem(value):
    """Why ``value`` (a string) cannot reach a file or a command line, or None."""
    match = _CONTROL_RE.search(value)
    if not match:
        return None
    return 'contains the control character %r at position %d' % (match.group(0), match.start())


def write_destination_problem(path):
    """Why data must not be written to ``path`` (a system directory, an .ssh directory), or None.

    Both the path as written and as symlinks resolve it are judged.
    """
    for candidate in _candidates(path):
        for root in SYSTEM_WRITE_ROOTS:
            if candidate == root or candidate.startswith(root + '/'):
                shown = candidate if candidate == posixpath.normpath(path) else '%s (resolves to %s)' % (path, candidate)
                return '%s is inside %s, a system directory: dbfleet never writes backups or transfers there' % (shown, root)
        if _SSH_DIR_RE.search(candidate):
            return '%s is inside an .ssh directory: dbfleet never writes there' % candidate
    return None


def safety_argument_spec():
    """Options every dbfleet module accepts; the action plugin fills them from inventory."""
    return dict(
        dbfleet_mode=dict(type='str', choices=list(MODES), default='edit'),
        dbfleet_deny_paths=dict(type='list', elements='str', default=[]),
    )


def strictest_mode(*modes):
    """Return the most restrictive of the given modes, ignoring empty values."""
    given = [m for m in modes if m]
    if not given:
        return 'edit'
    return max(given, key=lambda m: MODE_STRICTNESS[m])


def _has_glob(entry):
    return any(c in _GLOB_CHARS for c in entry)


def _match(candidate, entry):
    entry = entry.rstrip('/') or '/'
    if _has_glob(entry):
        if fnmatch.fnmatchcase(candidate, entry):
            return True
        # A directory matched by the glob protects what lies under it too.
        parent = candidate
        while parent not in ('/', ''):
            parent = posixpath.dirname(parent)
            if fnmatch.fnmatchcase(parent, entry):
                return True
        return False
    return candidate == entry or candidate.startswith(entry + '/') or entry == '/'


def _candidates(path):
    """The path as written (normalised) and as the filesystem resolves it (symlinks followed)."""
    expanded = os.path.expanduser(path)
    absolute = posixpath.normpath(os.path.abspath(expanded))
    resolved = os.path.realpath(expanded)
    return [absolute] if absolute == resolved else [absolute, resolved]


def deny_reason(path, extra_deny=()):
    """Why ``path`` is refused, or None when it is allowed.

    Both the path as given and its symlink-resolved form are checked, so a link pointing at a
    protected file is refused too.
    """
    if not path:
        return None
    entries = list(DEFAULT_DENY_PATHS) + [e for e in (extra_deny or []) if e]
    for candidate in _candidates(path):
        for entry in entries:
            if _match(candidate, entry):
                source = 'built-in' if entry in DEFAULT_DENY_PATHS else 'inventory (dbfleet_deny_paths)'
                shown = candidate if candidate == posixpath.normpath(path) else '%s (resolves to %s)' % (path, candidate)
                return '%s is protected by the %s deny-list entry %s' % (shown, source, entry)
    return None


def glob_static_prefix(pattern):
    """The leading directory part of a glob that contains no glob characters."""
    parts = []
    for part in pattern.split('/'):
        if _has_glob(part):
            break
        parts.append(part)
    return '/'.join(parts) or '/'


def _path_options(argument_spec):
    for name, spec in argument_spec.items():
        if spec.get('type') == 'path' or (spec.get('type') == 'list' and spec.get('elements') == 'path'):
            yield name


class DbfleetModule(AnsibleModule):
    """AnsibleModule with the dbfleet safety rules built in.

    Every option of type ``path`` (or list of paths) is checked against the deny-list before the
    module does anything; options holding globs are checked by the module with
    :meth:`require_allowed_path`. In ``plan`` mode the module runs as if in check mode.
    """

    def __init__(self, argument_spec, **kwargs):
        spec = dict(argument_spec)
        spec.update(safety_argument_spec())
        kwargs.setdefault('supports_check_mode', True)
        super(DbfleetModule, self).__init__(argument_spec=spec, **kwargs)
        self.dbfleet_mode = self.params['dbfleet_mode']
        self.deny_extra = self.params['dbfleet_deny_paths']
        if self.dbfleet_mode == 'plan':
            self.check_mode = True
        self._refuse_unsafe_values(self.argument_spec, self.params, '')
        for name in _path_options(argument_spec):
            value = self.params.get(name)
            for item in (value if isinstance(value, list) else [value]):
                self.require_allowed_path(item, name)

    def _refuse_unsafe_values(self, spec, params, prefix):
        """No control character in any string, no NaN or infinity in any number, nested options included."""
        for name, option in spec.items():
            value = params.get(name) if isinstance(params, dict) else None
            where = prefix + name
            secret = option.get('no_log')
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, str):
                    problem = control_character_problem(item)
                    if problem:
                        shown = 'its value' if secret else repr(item)
                        self.fail_json(msg='Refused option %s: %s %s. Values reach cron files, configs and command '
                                           'lines, where a newline would start a new line; nothing was changed.'
                                           % (where, shown, problem))
                elif isinstance(item, float) and not math.isfinite(item):
                    self.fail_json(msg='Refused option %s: %r is not a finite number; nothing was changed.' % (where, item))
                elif isinstance(item, dict):
                    if option.get('options'):
                        self._refuse_unsafe_values(option['options'], item, where + '.')
                    else:
                        self._refuse_unsafe_values(dict((key, {}) for key in item), item, where + '.')

    def require_write_destination(self, path, option=None):
        """Fail, changing nothing, when ``path`` is a place data must never be written to."""
        self.require_allowed_path(path, option)
        problem = write_destination_problem(path)
        if problem:
            where = ' (option %s)' % option if option else ''
            self.fail_json(msg='Refused%s: %s. Choose a directory for data, such as /srv/backups.' % (where, problem),
                           denied_path=path, dbfleet_mode=self.dbfleet_mode)

    def require_allowed_path(self, path, option=None):
        """Fail the host, changing nothing, when ``path`` is deny-listed."""
        reason = deny_reason(path, self.deny_extra)
        if reason:
            where = ' (option %s)' % option if option else ''
            self.fail_json(
                msg='Refused%s: %s. dbfleet never reads or writes deny-listed paths, in any mode; '
                    'point the task at another path.' % (where, reason),
                denied_path=path, dbfleet_mode=self.dbfleet_mode)

    @property
    def writes_allowed(self):
        """False in plan mode and under --check."""
        return not self.check_mode

    def backup_before_overwrite(self, path, secret=False):
        """In edit mode keep a copy of ``path``'s content before it is overwritten or removed.

        Copies live under ``_files.BACKUP_ROOT`` (root only, mode 0600, content only). Secrets
        (passfiles, credentials) are never copied: a rotated secret leaves nothing behind.
        Returns the backup's path, or None when nothing was copied (bypass mode, a secret, no file).
        """
        if self.dbfleet_mode != 'edit' or self.check_mode or secret:
            return None
        return _files.backup_copy(path)

    def exit_json(self, **kwargs):
        kwargs.setdefault('dbfleet_mode', self.dbfleet_mode)
        super(DbfleetModule, self).exit_json(**kwargs)
