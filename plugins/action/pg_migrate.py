# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for pg_migrate: applies the host's dbfleet_mode and deny-list from inventory."""

from __future__ import annotations

from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._safety_action import SafetyActionBase


class ActionModule(SafetyActionBase):
    pass
