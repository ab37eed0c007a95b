# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  dbfleet_mode:
    description:
      - How much this task may change on the host.
      - V(plan) is read-only, exactly as if C(--check) had been given; V(edit) allows changes and keeps a
        backup of anything overwritten; V(bypass) allows changes without that backup.
      - The host's inventory variable C(dbfleet_mode) is applied by the action plugin. A task can make a host
        stricter than its inventory, never looser.
    type: str
    choices: [plan, edit, bypass]
    default: edit
  dbfleet_deny_paths:
    description:
      - Extra paths (or globs) this module must refuse to read or write, on top of the built-in deny-list
        (C(/etc/shadow), C(/etc/gshadow), C(/etc/sudoers), C(/boot), C(/proc), C(/sys), SSH host keys and
        private keys under C(.ssh/)).
      - The host's inventory variable C(dbfleet_deny_paths) is added by the action plugin. The built-in
        entries cannot be removed, in any mode.
    type: list
    elements: str
    default: []
'''
