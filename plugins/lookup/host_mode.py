# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: host_mode
short_description: The dbfleet safety mode of the current host, with the inventory as the authority
version_added: 0.2.0
description:
  - Returns V(plan), V(edit) or V(bypass) for the host the task runs for.
  - The host's inventory (host and group variables) decides C(dbfleet_mode). Any other source - role defaults and
    vars, play and task vars, C(set_fact), C(include_vars), extra vars such as an AWX survey - can only make the host
    stricter, never looser.
  - Roles use it in the C(check_mode) keyword of tasks that are not dbfleet modules, so that a host whose inventory says
    V(plan) stays read-only (see the example).
options:
  _terms:
    description: Not used.
    required: false
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Write only where the inventory allows it
  ansible.builtin.copy:
    src: settings.conf
    dest: /etc/app/settings.conf
    mode: "0644"
  check_mode: "{{ ansible_check_mode or lookup('dbfleet.postgresql.host_mode') == 'plan' }}"
'''

RETURN = r'''
_raw:
  description: One string, the effective mode.
  type: list
  elements: str
'''

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._safety_action import effective_safety


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        hostvars = variables.get('hostvars')
        host = variables.get('inventory_hostname')
        manager = getattr(hostvars, '_variable_manager', None)
        if manager is None or not host:
            raise AnsibleLookupError('dbfleet.postgresql.host_mode needs a host context (use it inside a play)')
        try:
            mode, _deny, _inventory_mode = effective_safety(self._templar, manager, self._loader, [host], variables)
        except AnsibleError as exc:
            raise AnsibleLookupError(str(exc)) from exc
        return [mode]
