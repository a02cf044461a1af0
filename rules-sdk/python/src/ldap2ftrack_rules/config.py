"""A module's configuration schema, declared as class attributes of its `Rules` class:

    email_domain = config.string(description="Mail domain for users without one")
    grace_days = config.integer(default=30, description="Days before a leaver is disabled")

Each declares one `[rules.config]` key (named after the attribute unless `key=` says
otherwise) with its type, default, description and whether it is required; the host checks
sync.toml against the schema, and the SDK checks it again (with `choices`) before `configure`.
On a configured module the attribute reads the key's value.
"""

import builtins
import copy
import json

from ._types import RuleError

_MISSING = object()

# The WIT's config-type cases, with how messages name them.
TYPES = {
    "string": "a string",
    "integer": "an integer",
    "float": "a number",
    "boolean": "true or false",
    "string-list": "a list of strings",
    "table": "a table",
    "table-list": "a list of tables",
}


def _is_number(v):
    return isinstance(v, (int, builtins.float)) and not isinstance(v, bool)


_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "string-list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "table": lambda v: isinstance(v, dict),
    "table-list": lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
}


def kind(value):
    """How a message names a JSON value's type (as the Rust SDK does)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class ConfigKey:
    """One `[rules.config]` key. Create it with `config.string(...)` and friends."""

    def __init__(self, value_type, default=_MISSING, description="", required=False,
                 key=None, choices=None):
        if value_type not in TYPES:
            raise ValueError("unknown config type %r (one of: %s)" % (value_type, ", ".join(TYPES)))
        self.value_type = value_type
        self.description = description
        self.required = required
        self.name = key
        self.attr = key
        self.choices = list(choices) if choices is not None else None
        self._default = default

    def __set_name__(self, owner, attr):
        self.attr = attr
        if self.name is None:
            self.name = attr

    def __get__(self, rules, owner=None):
        # On the class: the key itself. On a configured module the instance's own attribute
        # (set by configure) shadows this; an unconfigured one reads the default.
        if rules is None:
            return self
        return self.default

    @property
    def default(self):
        """The default value (a copy), or None."""
        return None if self._default is _MISSING else copy.deepcopy(self._default)

    @property
    def default_text(self):
        """The default as the host reads it (JSON, which is also TOML for these values)."""
        if self._default is _MISSING or self._default is None:
            return None
        return json.dumps(self._default, ensure_ascii=False, separators=(", ", ": "))

    def check(self, value, what=""):
        """`value` if it has this key's type (and is one of its choices); else RuleError."""
        if not _CHECKS[self.value_type](value):
            raise RuleError("`%s`%s must be %s, not %s" % (
                self.name, " (%s)" % what.strip() if what else "", TYPES[self.value_type],
                kind(value)))
        if self.choices is not None and value not in self.choices:
            raise RuleError("`%s` is `%s`; use %s" % (self.name, value, _one_of(self.choices)))
        return value

    def __repr__(self):
        return "config.%s(%r)" % (self.value_type.replace("-", "_"), self.name)


def _one_of(choices):
    quoted = [json.dumps(c, ensure_ascii=False) for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def string(default=_MISSING, *, description="", required=False, key=None, choices=None):
    """A string key; `choices` limits it to those values."""
    return ConfigKey("string", default, description, required, key, choices)


def integer(default=_MISSING, *, description="", required=False, key=None, choices=None):
    """An integer key."""
    return ConfigKey("integer", default, description, required, key, choices)


def float(default=_MISSING, *, description="", required=False, key=None):  # noqa: A001
    """A number key (integers are accepted too)."""
    return ConfigKey("float", default, description, required, key)


def boolean(default=_MISSING, *, description="", required=False, key=None):
    """A boolean key."""
    return ConfigKey("boolean", default, description, required, key)


def string_list(default=_MISSING, *, description="", required=False, key=None):
    """A list of strings."""
    return ConfigKey("string-list", default, description, required, key)


def table(default=_MISSING, *, description="", required=False, key=None):
    """A table (`[rules.config.NAME]`), read as a dict."""
    return ConfigKey("table", default, description, required, key)


def table_list(default=_MISSING, *, description="", required=False, key=None):
    """A list of tables (`[[rules.config.NAME]]`), read as a list of dicts."""
    return ConfigKey("table-list", default, description, required, key)
