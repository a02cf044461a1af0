"""The values rules work with, as plain Python classes: what the hooks receive and return.
They mirror the WIT records (rules-sdk/wit/rules.wit) and the Rust SDK's types, helpers
included; `_component` converts between them and the generated bindings, so a module never
sees those."""

from dataclasses import dataclass, field
from typing import List, Optional

from . import dn as _dn
from . import names as _names
from ._unicode import WHITESPACE_CHARS, ascii_lower, eq_ignore_ascii_case, trim


class RuleError(Exception):
    """Rejects the entry (raised by a hook) or refuses the configuration (raised by
    `configure`); the message is what the admin sees. Any other exception does the same,
    its message prefixed with its type and where it was raised."""


@dataclass
class Attribute:
    """One LDAP attribute with all its values (binary values base64-encoded, under
    `<name>;base64`)."""

    name: str
    values: List[str]


@dataclass
class GroupRef:
    """An LDAP group the user belongs to, directly or through nested groups."""

    dn: str
    """Canonical (normalised) DN."""
    name: str
    """The group's cn."""
    direct: bool = True
    """True when the group lists the user itself (not through a nested group)."""


@dataclass
class Entry:
    """One directory user."""

    dn: str
    stable_id: Optional[str] = None
    """entryUUID / objectGUID / nsUniqueId, when the directory has one."""
    disabled: bool = False
    attributes: List[Attribute] = field(default_factory=list)
    groups: List[GroupRef] = field(default_factory=list)
    """Flattened groups (direct and nested), sorted by DN."""

    def values(self, name):
        """All values of an attribute, the name compared (ASCII) case-insensitively."""
        wanted = None
        for attribute in self.attributes:
            # Inlined eq_ignore_ascii_case: hooks look attributes up several times per entry.
            if attribute.name == name:
                return attribute.values
            if len(attribute.name) == len(name):
                if wanted is None:
                    wanted = ascii_lower(name)
                if ascii_lower(attribute.name) == wanted:
                    return attribute.values
        return []

    def first(self, name):
        """The first non-blank value of an attribute, trimmed; None when there is none."""
        for value in self.values(name):
            value = value.strip(WHITESPACE_CHARS)
            if value:
                return value
        return None

    def first_of(self, names):
        """The first non-blank value among several attributes, in order (e.g. displayName, cn)."""
        for name in names:
            value = self.first(name)
            if value is not None:
                return value
        return None

    def has_value(self, name, value):
        """True when the attribute has a value equal to `value` (ASCII case-insensitively)."""
        return any(eq_ignore_ascii_case(trim(v), value) for v in self.values(name))

    def in_group(self, group):
        """True when the user is in the group, directly or nested. `group` is a DN (compared
        after normalisation) or a group name (cn, case-insensitive)."""
        return self.group(group) is not None

    def group(self, group):
        """The `GroupRef` matching `group` (a DN or a cn), if the user is in it."""
        if "=" in group:
            return next((g for g in self.groups if _dn.same(g.dn, group)), None)
        return next((g for g in self.groups if _names.same_group(g.name, group)), None)

    def rdn_value(self):
        """The value of the entry's RDN (`jdoe` for `uid=jdoe,ou=people,dc=example,dc=com`)."""
        return _dn.rdn_value(self.dn)


@dataclass
class UserFields:
    """The ftrack user fields a stage proposes."""

    username: str = ""
    email: Optional[str] = None
    first_name: Optional[str] = None
    last_name: Optional[str] = None


@dataclass
class Sync:
    """transform_user's answer: sync the user with these fields."""

    user: UserFields


@dataclass
class Skip:
    """transform_user's answer: leave the entry out of the sync; `reason` says why."""

    reason: str


@dataclass
class RoleGrant:
    """A security role, on all open projects (`project=None`) or on one project, by name."""

    role: str
    project: Optional[str] = None


@dataclass
class Access:
    """map_groups' answer: the ftrack groups and security roles the user should have."""

    groups: List[str] = field(default_factory=list)
    roles: List[RoleGrant] = field(default_factory=list)

    def add_group(self, group):
        """Adds a group unless it is already there (names compared ASCII case-insensitively)."""
        if not self.has_group(group):
            self.groups.append(group)

    def with_group(self, group):
        """`add_group`, returning the Access (for chaining)."""
        self.add_group(group)
        return self

    def remove_group(self, group):
        """Removes a group (ASCII case-insensitively); True when it was there."""
        before = len(self.groups)
        self.groups = [g for g in self.groups if not eq_ignore_ascii_case(g, group)]
        return before != len(self.groups)

    def has_group(self, group):
        """True when the group is in the proposal (ASCII case-insensitively)."""
        return any(eq_ignore_ascii_case(g, group) for g in self.groups)

    def add_role(self, role, project=None):
        """Grants a role on all open projects, or on `project`, unless already granted."""
        grant = RoleGrant(role, project)
        if grant not in self.roles:
            self.roles.append(grant)

    def with_role(self, role, project=None):
        """`add_role`, returning the Access (for chaining)."""
        self.add_role(role, project)
        return self


@dataclass
class DepartedUser:
    """A managed ftrack user that LDAP no longer has, or has disabled."""

    username: str
    today: str
    """Today (YYYY-MM-DD), supplied by the host so rules stay deterministic."""
    email: Optional[str] = None
    ldap_disabled: bool = False
    """Still in LDAP but disabled there (otherwise: missing from LDAP)."""
    missing_since: Optional[str] = None
    """When the user was first found missing (YYYY-MM-DD)."""
    entry: Optional[Entry] = None
    """The LDAP entry, when the user is still there (disabled)."""


@dataclass
class Keep:
    """deprovision's answer: keep the user active; `reason` is shown in the plan."""

    reason: str


@dataclass
class Disable:
    """deprovision's answer: disable the user; `reason` is shown in the plan."""

    reason: str


@dataclass
class EntryFields:
    """What a module reads from each entry. The host passes only that: every string that
    crosses into the module costs time, and directory entries can be large (memberOf)."""

    attributes: Optional[List[str]] = None
    """The attributes read (names case-insensitive); None: all of them."""
    groups: bool = True
    """Whether the user's groups are read."""

    @staticmethod
    def all():
        """Every attribute and the groups: what a module gets unless it says otherwise."""
        return EntryFields(None, True)

    @staticmethod
    def only(attributes):
        """Only these attributes, and no groups until `with_groups()`."""
        return EntryFields(list(attributes), False)

    def with_groups(self):
        """Also the user's groups."""
        return EntryFields(self.attributes, True)

    def includes(self, attribute):
        """True when the attribute is among the ones read."""
        return self.attributes is None or any(
            eq_ignore_ascii_case(a, attribute) for a in self.attributes
        )

    def filter(self, entry):
        """The entry as the host hands it to the module: only these attributes, and the
        groups only when read."""
        return Entry(
            dn=entry.dn,
            stable_id=entry.stable_id,
            disabled=entry.disabled,
            attributes=[a for a in entry.attributes if self.includes(a.name)],
            groups=list(entry.groups) if self.groups else [],
        )
