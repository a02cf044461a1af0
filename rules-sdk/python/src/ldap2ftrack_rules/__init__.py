"""ldap2ftrack rules SDK for Python: write ldap2ftrack rule modules (sandboxed WebAssembly
components, built with componentize-py) as one plain Python class, without touching the
generated WIT bindings. The Python twin of the Rust SDK (rules-sdk/src): the same hooks,
metadata, configuration schema, `reads`, `log`, and helpers (`names`, `email`, `dn`) that
give the same answers (shared test vectors: rules-sdk/testdata/helpers.json).

    from ldap2ftrack_rules import Rules, Sync, config, export, names

    class Lowercase(Rules):
        name, version, description = "lowercase", "0.1.0", "Lower-case usernames"
        reads = []

        def transform_user(self, entry, proposal):
            if isinstance(proposal, Sync):
                proposal.user.username = names.normalize_username(proposal.user.username)
            return proposal

    Hooks = export(Lowercase)   # in app.py: what componentize-py exports

Unit-test the class natively with `ldap2ftrack_rules.testing` (pytest, no WebAssembly).
"""

import importlib.util

from . import config, dn, email, log, names
from ._rules import ABI_VERSION, Metadata, Rules
from ._types import (
    Access, Attribute, DepartedUser, Disable, Entry, EntryFields, GroupRef, Keep, RoleGrant,
    RuleError, Skip, Sync, UserFields,
)

__version__ = "1.0.0"

__all__ = [
    "ABI_VERSION", "Access", "Attribute", "DepartedUser", "Disable", "Entry", "EntryFields",
    "GroupRef", "Keep", "Metadata", "RoleGrant", "RuleError", "Rules", "Skip", "Sync",
    "UserFields", "config", "dn", "email", "export", "log", "names",
]


def export(rules_class):
    """The `Hooks` class componentize-py exports for `rules_class`: write
    `Hooks = export(YourRules)` at the end of app.py.

    In a component build it is the WIT glue (`_component`). Natively, where the generated
    `wit_world` bindings do not exist, it is a stand-in that only refuses to run, so app.py
    imports in pytest; test the class itself with `ldap2ftrack_rules.testing`. Either way the
    metadata is checked now, so a missing `name` fails the import, not the first sync."""
    from . import _rules

    _rules.metadata(rules_class)
    if importlib.util.find_spec("wit_world") is not None:
        from ._component import hooks_for

        return hooks_for(rules_class)

    class Hooks:
        """Native stand-in for the component's exports."""

        rules = rules_class

        def __init__(self):
            raise RuntimeError(
                "Hooks is what componentize-py exports; natively, test %s with "
                "ldap2ftrack_rules.testing" % rules_class.__name__
            )

    return Hooks
