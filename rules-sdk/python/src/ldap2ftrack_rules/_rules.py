"""The `Rules` base class and what the SDK does around a module's hooks, independent of
WebAssembly: the metadata it reports, configuring it from its `[rules.config]` table, what
it reads of each entry, and calling a hook (checking its answer, turning exceptions into the
message the host reports). `_component` wires this to the WIT exports; `testing` uses it
natively, so a pytest exercises exactly what the component runs.
"""

import os
import traceback
from dataclasses import dataclass
from typing import List

from .config import ConfigKey
from ._types import (
    Access, Disable, EntryFields, Keep, RoleGrant, RuleError, Skip, Sync, UserFields,
)

ABI_VERSION = "1.0.0"
"""The rule ABI this SDK builds modules for (the WIT package `ldap2ftrack:rules@1.0.0`)."""

HOOKS = ("transform_user", "map_groups", "deprovision")


class Rules:
    """A rule module. Subclass it, set `name`, `version` and `description`, declare the
    configuration with `config.*` class attributes, and override only the hooks you need:
    the others pass the proposal through, and the host never calls them."""

    name = None
    """The module's name, shown in plans and logs."""
    version = None
    """The module's version."""
    description = ""
    """One line saying what the module does."""
    reads = None
    """What the hooks read of each entry: attribute names, an `EntryFields`, or a method
    returning either (when it depends on the configuration). None: everything."""

    def configure(self):
        """Called once the configuration keys are set on `self`: check what types cannot
        say (ranges, formats) and raise RuleError to refuse the configuration."""

    def transform_user(self, entry, proposal):
        """LDAP entry + the previous stage's proposal (`Sync(user)` or `Skip(reason)`) ->
        `Sync(UserFields)` or `Skip(reason)`."""
        return proposal

    def map_groups(self, entry, user, proposal):
        """LDAP entry + the user's `UserFields` + the proposed `Access` -> `Access`."""
        return proposal

    def deprovision(self, user, proposal):
        """A `DepartedUser` + the proposal (`Keep(reason)` or `Disable(reason)`) -> a verdict."""
        return proposal


@dataclass
class Metadata:
    """What a module says about itself, as the host sees it."""

    name: str
    version: str
    description: str
    abi_version: str
    hooks: List[str]
    """The hooks the module overrides, in ABI order; the host calls only these."""
    config_schema: List[ConfigKey]


def config_schema(rules_class):
    """The class's `config.*` keys, base classes' first, each in declaration order."""
    keys = {}
    for klass in reversed(rules_class.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, ConfigKey):
                keys.pop(attr, None)
                keys[attr] = value
            elif attr in keys:  # a subclass replaced the key with something else
                del keys[attr]
    return list(keys.values())


def hooks_of(rules_class):
    """The hooks the class overrides."""
    return [h for h in HOOKS if getattr(rules_class, h) is not getattr(Rules, h)]


def metadata(rules_class):
    """The metadata the module reports; RuleError when the class leaves something out."""
    if not (isinstance(rules_class, type) and issubclass(rules_class, Rules)):
        raise TypeError("%r is not a subclass of ldap2ftrack_rules.Rules" % (rules_class,))
    who = rules_class.__name__
    for attr in ("name", "version"):
        if not isinstance(getattr(rules_class, attr), str) or not getattr(rules_class, attr):
            raise RuleError("%s: set the class attribute `%s` (a non-empty string)" % (who, attr))
    if not isinstance(rules_class.description, str):
        raise RuleError("%s: `description` must be a string" % who)
    schema = config_schema(rules_class)
    for key in schema:
        if key.default is not None:
            key.check(key.default, "its default")
    names = [k.name for k in schema]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuleError("%s: two config keys are named `%s`" % (who, duplicates[0]))
    return Metadata(
        name=rules_class.name,
        version=rules_class.version,
        description=rules_class.description,
        abi_version=ABI_VERSION,
        hooks=hooks_of(rules_class),
        config_schema=schema,
    )


def configure(rules_class, values):
    """A configured module from its `[rules.config]` table (a dict, as JSON gives it):
    unknown keys, types, required keys and choices checked, defaults applied, then the
    class's own `configure()`. RuleError (the host reports it, exit 2) when it is refused."""
    if not isinstance(values, dict):
        raise RuleError("the configuration must be a table (a JSON object)")
    schema = config_schema(rules_class)
    known = {k.name for k in schema}
    for name in values:
        if name not in known:
            raise RuleError("unknown key `%s` (known keys: %s)" % (
                name, ", ".join(k.name for k in schema) or "none"))
    rules = rules_class()
    for key in schema:
        if key.name in values:
            value = key.check(values[key.name])
        elif key.required:
            raise RuleError("missing required key `%s`" % key.name)
        else:
            value = key.default
        # The instance attribute shadows the class's ConfigKey: reading it is a dict look-up.
        rules.__dict__[key.attr] = value
    _call(rules.configure, "configure")
    return rules


def reads(rules):
    """What the configured module reads of each entry, as an EntryFields."""
    fields = rules.reads
    if callable(fields):
        fields = _call(fields, "reads")
    if fields is None:
        return EntryFields.all()
    if isinstance(fields, EntryFields):
        return fields
    if isinstance(fields, (list, tuple, set, frozenset)) and all(isinstance(a, str) for a in fields):
        return EntryFields.only(fields)
    raise RuleError("`reads` must be a list of attribute names or an EntryFields, not %s"
                    % type(fields).__name__)


def transform_user(rules, entry, proposal):
    """The hook's answer, checked; RuleError rejects the entry."""
    answer = _call(rules.transform_user, "transform_user", entry, proposal)
    if isinstance(answer, Sync) and isinstance(answer.user, UserFields):
        u = answer.user
        # Spelled out (no generator): this runs once per entry.
        if (
            type(u.username) is str
            and (u.email is None or type(u.email) is str)
            and (u.first_name is None or type(u.first_name) is str)
            and (u.last_name is None or type(u.last_name) is str)
        ):
            return answer
        raise RuleError("transform_user returned %r: username must be a string, the other "
                        "fields strings or None" % (u,))
    if isinstance(answer, Skip) and isinstance(answer.reason, str):
        return answer
    raise _wrong_answer("transform_user", answer, "Sync(UserFields(...)) or Skip(reason)")


def map_groups(rules, entry, user, proposal):
    """The hook's answer, checked; RuleError rejects the entry."""
    answer = _call(rules.map_groups, "map_groups", entry, user, proposal)
    if (
        isinstance(answer, Access)
        and all(isinstance(g, str) for g in answer.groups)
        and all(
            isinstance(r, RoleGrant) and isinstance(r.role, str)
            and (r.project is None or isinstance(r.project, str))
            for r in answer.roles
        )
    ):
        return answer
    raise _wrong_answer("map_groups", answer,
                        "Access(groups=[names], roles=[RoleGrant(role, project)])")


def deprovision(rules, user, proposal):
    """The hook's answer, checked; RuleError rejects the entry."""
    answer = _call(rules.deprovision, "deprovision", user, proposal)
    if isinstance(answer, (Keep, Disable)) and isinstance(answer.reason, str):
        return answer
    raise _wrong_answer("deprovision", answer, "Keep(reason) or Disable(reason)")


def _wrong_answer(hook, answer, expected):
    return RuleError("%s returned %r; return %s (the proposal, to change nothing)"
                     % (hook, answer, expected))


def _call(function, what, *args):
    try:
        return function(*args)
    except RuleError:
        raise
    except Exception as e:
        raise RuleError(describe(e, what)) from e


def describe(error, what):
    """An unexpected exception as one line for the admin: type, message, and where."""
    message = "%s: %s" % (type(error).__name__, error) if str(error) else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        f = frames[-1]
        message += " (%s, line %s, in %s)" % (os.path.basename(f.filename), f.lineno, f.name)
    return "%s failed: %s" % (what, message)
