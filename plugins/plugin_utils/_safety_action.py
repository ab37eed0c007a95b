# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of the safety model, shared by every dbfleet action plugin.

Inventory is the source of truth for a host's mode: ``dbfleet_mode`` (plan | edit | bypass) and
``dbfleet_deny_paths`` are read from the host's variables and passed to the module. A task may
make a host stricter than its inventory, never looser, and may add deny-list entries, never drop
them.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import MODES, strictest_mode


class SafetyActionBase(ActionBase):
    """Run the module of the same name with the host's safety settings merged in."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def _host_value(self, task_vars, name):
        value = task_vars.get(name)
        return self._templar.template(value) if value is not None else None

    def safety_args(self, task_vars):
        """Module arguments with the effective mode and deny-list for this host."""
        args = dict(self._task.args)
        inventory_mode = self._host_value(task_vars, 'dbfleet_mode')
        if inventory_mode is not None and inventory_mode not in MODES:
            raise AnsibleActionFail(
                "dbfleet_mode for this host is %r; it must be one of %s. Fix the host's inventory."
                % (inventory_mode, ', '.join(MODES)))
        task_mode = args.get('dbfleet_mode')
        if task_mode is not None and task_mode not in MODES:
            raise AnsibleActionFail('dbfleet_mode=%r: it must be one of %s.' % (task_mode, ', '.join(MODES)))
        args['dbfleet_mode'] = strictest_mode(inventory_mode, task_mode)

        inventory_deny = self._host_value(task_vars, 'dbfleet_deny_paths') or []
        if isinstance(inventory_deny, str):
            inventory_deny = [inventory_deny]
        deny = list(args.get('dbfleet_deny_paths') or [])
        deny.extend(p for p in inventory_deny if p not in deny)
        args['dbfleet_deny_paths'] = deny
        return args

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result.update(self._execute_module(
            module_name=self._task.resolved_action or self._task.action,
            module_args=self.safety_args(task_vars),
            task_vars=task_vars,
        ))
        return result
