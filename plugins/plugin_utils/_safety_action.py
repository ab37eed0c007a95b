# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of the safety model, shared by every dbfleet action plugin and lookup.

The inventory is the authority: ``dbfleet_mode`` (plan | edit | bypass) and ``dbfleet_deny_paths``
are read from the host's inventory - host and group variables, from inventory files and the
``host_vars``/``group_vars`` directories beside the inventory or the playbook. Every other source
(role defaults and vars, play and task vars, ``set_fact``, ``include_vars``, registered results,
extra vars such as an AWX survey) is honoured only when it makes the host stricter: the strictest
mode wins and deny-lists are unioned.
"""

from __future__ import annotations

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.inventory.helpers import get_group_vars, sort_groups
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources, get_vars_from_path

from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import MODES, strictest_mode


def _search_path(task, loader):
    if task is None:
        return [loader.get_basedir()]
    paths = task.get_search_path()
    if C.PLAYBOOK_VARS_ROOT in ('bottom', 'playbook_dir'):
        return paths[:1]
    if C.PLAYBOOK_VARS_ROOT == 'top':
        return [loader.get_basedir()]
    return paths


def inventory_vars(variable_manager, loader, host_name, task=None):
    """The variables the inventory gives ``host_name``: group and host vars, nothing else.

    The same sources, in the same order, as ``VariableManager.get_vars`` uses for a host, stopping
    before facts, play, role, task, include_vars, set_fact and extra vars.
    """
    inventory = variable_manager._inventory  # pylint: disable=protected-access
    host = inventory.get_host(host_name)
    if host is None:
        return {}
    all_group = inventory.groups.get('all')
    groups = sort_groups([g for g in host.get_groups() if g.name != 'all'])
    sources = inventory._sources  # pylint: disable=protected-access
    basedirs = _search_path(task, loader)

    def plugins_inventory(entities):
        return get_vars_from_inventory_sources(loader, sources, entities, 'task')

    def plugins_play(entities):
        data = {}
        for path in basedirs:
            data = combine_vars(data, get_vars_from_path(loader, path, entities, 'task'))
        return data

    loaders = {
        'all_inventory': all_group.get_vars,
        'groups_inventory': lambda: get_group_vars(groups),
        'all_plugins_inventory': lambda: plugins_inventory([all_group]),
        'all_plugins_play': lambda: plugins_play([all_group]),
        'groups_plugins_inventory': lambda: plugins_inventory(groups),
        'groups_plugins_play': lambda: plugins_play(groups),
    }
    data = {}
    for entry in C.VARIABLE_PRECEDENCE:
        if entry in loaders:
            data = combine_vars(data, loaders[entry]())
        elif entry == 'plugins_by_groups':
            for group in groups:
                data = combine_vars(data, plugins_inventory([group]))
                data = combine_vars(data, plugins_play([group]))
    data = combine_vars(data, host.get_vars())
    data = combine_vars(data, plugins_inventory([host]))
    data = combine_vars(data, plugins_play([host]))
    return data


def _as_list(value, where):
    if value is None or value == '':
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    raise AnsibleActionFail('dbfleet_deny_paths from %s must be a list of paths, got %r' % (where, value))


def _checked_mode(value, where):
    if value is None or value == '':
        return None
    if value not in MODES:
        raise AnsibleActionFail('dbfleet_mode from %s is %r; it must be one of %s.' % (where, value, ', '.join(MODES)))
    return value


def effective_safety(templar, variable_manager, loader, host_names, merged_vars, task=None, task_args=None):
    """``(mode, deny_paths, inventory_mode)`` for the hosts a task touches.

    ``merged_vars`` are the task's variables as Ansible merged them (any source); ``task_args`` the
    module arguments. Both can only tighten what the inventory says.
    """
    task_args = task_args or {}
    modes, deny = [], []
    inventory_modes = []
    if variable_manager is None:
        raise AnsibleActionFail('dbfleet cannot read this host\'s inventory (no variable manager): refusing to run '
                                'without its safety settings')
    for host_name in host_names:
        own = inventory_vars(variable_manager, loader, host_name, task)
        where = "the inventory of %s" % host_name
        mode = _checked_mode(templar.template(own.get('dbfleet_mode')), where)
        inventory_modes.append(mode or 'edit')
        modes.append(mode)
        deny.extend(_as_list(templar.template(own.get('dbfleet_deny_paths')), where))
    modes.append(_checked_mode(templar.template(merged_vars.get('dbfleet_mode')), 'the play, role, task or extra vars'))
    deny.extend(_as_list(templar.template(merged_vars.get('dbfleet_deny_paths')), 'the play, role, task or extra vars'))
    modes.append(_checked_mode(task_args.get('dbfleet_mode'), 'the task arguments'))
    deny.extend(_as_list(task_args.get('dbfleet_deny_paths'), 'the task arguments'))
    unique = []
    for path in deny:
        if path not in unique:
            unique.append(path)
    return strictest_mode(*modes), unique, strictest_mode(*inventory_modes)


def touched_hosts(task, templar, task_vars):
    """The inventory host the task runs for and, when delegated, the host it runs on."""
    hosts = [task_vars.get('inventory_hostname')]
    if task.delegate_to:
        delegated = templar.template(task.delegate_to)
        if delegated and delegated not in hosts:
            hosts.append(delegated)
    return [h for h in hosts if h]


class SafetyActionBase(ActionBase):
    """Run the module of the same name with the host's safety settings merged in."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def safety_args(self, task_vars):
        """Module arguments with the effective mode and deny-list for this host."""
        args = dict(self._task.args)
        mode, deny, _inventory_mode = effective_safety(
            self._templar, self._task.get_variable_manager(), self._loader,
            touched_hosts(self._task, self._templar, task_vars), task_vars, task=self._task, task_args=args)
        args['dbfleet_mode'] = mode
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
