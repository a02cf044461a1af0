"""Unit-test rule modules natively with pytest, without WebAssembly: build entries and
departed users, configure a module from a dict (or TOML text) the way the host does, and call
its hooks through the same checks the component applies.

    from ldap2ftrack_rules import Skip, testing
    from app import StudioBasics

    def test_skips_entries_without_uid():
        rules = testing.configure(StudioBasics, {"email_domain": "studio.example"})
        entry = testing.entry("cn=x,dc=example").attr("cn", "X").build()
        assert testing.transform_user(rules, entry) == Skip("no uid attribute")
"""

import json

from . import _rules, log
from ._types import (
    Access, Attribute, DepartedUser, Disable, Entry, GroupRef, RuleError, Sync, UserFields,
)
from .dn import rdn_value

__all__ = [
    "EntryBuilder", "RuleError", "as_passed", "config_for", "configure", "departed",
    "deprovision", "entry", "hooks_of", "map_groups", "metadata", "take_logs",
    "transform_user", "user",
]


def configure(rules_class, table=None, /, **values):
    """A configured module, as the host configures it: `table` is the `[rules.config]` table as
    a dict or as TOML text, `values` more keys. Unknown keys, types, required keys and choices
    are checked and defaults applied; RuleError carries the message the host would report."""
    if isinstance(table, str):
        import tomllib  # Python 3.11+; only natively

        table = tomllib.loads(table)
    merged = dict(table or {})
    merged.update(values)
    # The host hands the module JSON: what does not survive it would not reach the module.
    return _rules.configure(rules_class, json.loads(json.dumps(merged, default=str)))


def config_for(rules_class, table=None, /, **values):
    """The configuration values a module gets from this table (defaults applied), as a dict."""
    rules = configure(rules_class, table, **values)
    return {k.name: rules.__dict__[k.attr] for k in _rules.config_schema(rules_class)}


def metadata(rules_class):
    """The metadata the module reports (name, version, hooks, config schema...)."""
    return _rules.metadata(rules_class)


def hooks_of(rules_class):
    """The hooks the module reports (the ones it overrides): e.g. ["transform_user"]."""
    return _rules.hooks_of(rules_class)


def as_passed(rules, entry):
    """The entry as the host would pass it to this configured module: only what `reads`
    declares. The hook helpers below do this, so an undeclared attribute shows in tests."""
    return _rules.reads(rules).filter(entry)


def transform_user(rules, entry, proposal=None):
    """Call transform_user as the host does: the entry filtered by `reads`, the answer
    checked. `proposal` defaults to `Sync(UserFields())`; RuleError means rejected."""
    if proposal is None:
        proposal = Sync(UserFields())
    return _rules.transform_user(rules, as_passed(rules, entry), proposal)


def map_groups(rules, entry, user=None, proposal=None):
    """Call map_groups as the host does. `user` defaults to `UserFields()`, `proposal` to an
    empty `Access()`; RuleError means rejected."""
    return _rules.map_groups(rules, as_passed(rules, entry), user or UserFields(),
                             proposal if proposal is not None else Access())


def deprovision(rules, user, proposal=None):
    """Call deprovision as the host does (the departed user's entry, if any, filtered by
    `reads`). `proposal` defaults to `Disable("missing from LDAP")`."""
    if user.entry is not None:
        user = DepartedUser(**{**vars(user), "entry": as_passed(rules, user.entry)})
    return _rules.deprovision(rules, user, proposal or Disable("missing from LDAP"))


def entry(dn):
    """Start building an entry: `testing.entry(dn).attr("uid", "jdoe").group(dn).build()`."""
    return EntryBuilder(dn)


class EntryBuilder:
    """Builds an `Entry` for a test, one call per attribute or group."""

    def __init__(self, dn):
        self._entry = Entry(dn)

    def attr(self, name, *values):
        """Add an attribute with its values: `.attr("mail", "a@x.org")`, `.attr("cn", "A", "B")`
        or `.attr("cn", ["A", "B"])`."""
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = values[0]
        self._entry.attributes.append(Attribute(name, [str(v) for v in values]))
        return self

    def group(self, dn, direct=True, name=None):
        """Add a group by DN; its name is the DN's first RDN value unless given."""
        self._entry.groups.append(
            GroupRef(dn, name if name is not None else rdn_value(dn) or "", direct))
        return self

    def stable_id(self, stable_id):
        """Set the stable id (entryUUID, objectGUID...)."""
        self._entry.stable_id = stable_id
        return self

    def disabled(self, disabled=True):
        """Mark the entry disabled in the directory."""
        self._entry.disabled = disabled
        return self

    def build(self):
        """The entry."""
        return self._entry


def user(username="", email=None, first_name=None, last_name=None):
    """ftrack user fields, e.g. for map_groups or a transform_user proposal."""
    return UserFields(username, email, first_name, last_name)


def departed(username, today, missing_since=None, email=None, ldap_disabled=False, entry=None):
    """A user missing from LDAP since `missing_since` (or just now, when None), seen `today`
    (YYYY-MM-DD); `ldap_disabled` with `entry` for one still in LDAP but disabled there."""
    if isinstance(entry, EntryBuilder):
        entry = entry.build()
    return DepartedUser(username, today, email, ldap_disabled, missing_since, entry)


def take_logs():
    """What the module logged since the last call, as (level, message) pairs."""
    kept = list(log._kept)
    log._kept.clear()
    return kept
