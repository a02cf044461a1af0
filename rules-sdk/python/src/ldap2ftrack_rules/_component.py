"""The WIT glue: the `Hooks` class componentize-py exports for the world `rule`, around a
module's `Rules` class. It converts the generated binding types to the SDK's plain classes
and back, reports the metadata, keeps the configured module between calls, sends `log` to
the host, and turns RuleError (and any exception) into the WIT `err` the host reports.

Imported only in a component build (it needs the `wit_world` bindings componentize-py
generates); natively, `export` returns a stand-in and tests go through `testing`.
"""

import json

import wit_world.exports
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports import types as wit

from . import _rules, log
from ._types import (
    Access, Attribute, DepartedUser, Disable, Entry, GroupRef, Keep, RoleGrant, RuleError, Skip,
    Sync, UserFields,
)

_LEVELS = {
    "trace": wit.LogLevel.TRACE,
    "debug": wit.LogLevel.DEBUG,
    "info": wit.LogLevel.INFO,
    "warn": wit.LogLevel.WARN,
    "error": wit.LogLevel.ERROR,
}
_HOOKS = {
    "transform_user": wit.Hook.TRANSFORM_USER,
    "map_groups": wit.Hook.MAP_GROUPS,
    "deprovision": wit.Hook.DEPROVISION,
}
_CONFIG_TYPES = {
    "string": wit.ConfigType.STRING,
    "integer": wit.ConfigType.INTEGER,
    "float": wit.ConfigType.FLOAT,
    "boolean": wit.ConfigType.BOOLEAN,
    "string-list": wit.ConfigType.STRING_LIST,
    "table": wit.ConfigType.TABLE,
    "table-list": wit.ConfigType.TABLE_LIST,
}


def _send_to_host(level, message):
    host.log(_LEVELS[level], message)


# --- WIT -> SDK ---------------------------------------------------------------------------

def _entry(e):
    return Entry(
        e.dn,
        e.stable_id,
        e.disabled,
        [Attribute(a.name, a.values) for a in e.attributes],
        [GroupRef(g.dn, g.name, g.direct) for g in e.groups],
    )


def _user(u):
    return UserFields(u.username, u.email, u.first_name, u.last_name)


def _decision(d):
    if isinstance(d, wit.UserDecision_Sync):
        return Sync(_user(d.value))
    return Skip(d.value)


def _access(a):
    return Access(
        list(a.groups),
        [RoleGrant(r.role, r.scope.value if isinstance(r.scope, wit.RoleScope_Project) else None)
         for r in a.roles],
    )


def _departed(u):
    return DepartedUser(
        username=u.username,
        today=u.today,
        email=u.email,
        ldap_disabled=u.ldap_disabled,
        missing_since=u.missing_since,
        entry=_entry(u.entry) if u.entry is not None else None,
    )


def _verdict(v):
    return Keep(v.value) if isinstance(v, wit.Verdict_Keep) else Disable(v.value)


# --- SDK -> WIT ---------------------------------------------------------------------------

def _wit_decision(d):
    if isinstance(d, Sync):
        u = d.user
        return wit.UserDecision_Sync(wit.UserFields(u.username, u.email, u.first_name, u.last_name))
    return wit.UserDecision_Skip(d.reason)


def _wit_access(a):
    return wit.Access(
        list(a.groups),
        [wit.RoleGrant(r.role, wit.RoleScope_AllOpenProjects() if r.project is None
                       else wit.RoleScope_Project(r.project))
         for r in a.roles],
    )


def _wit_verdict(v):
    return wit.Verdict_Keep(v.reason) if isinstance(v, Keep) else wit.Verdict_Disable(v.reason)


def _wit_metadata(meta):
    return wit.ModuleMetadata(
        name=meta.name,
        version=meta.version,
        description=meta.description,
        abi_version=meta.abi_version,
        hooks=[_HOOKS[h] for h in meta.hooks],
        config_schema=[
            wit.ConfigKey(k.name, _CONFIG_TYPES[k.value_type], k.default_text, k.description,
                          k.required)
            for k in meta.config_schema
        ],
    )


def hooks_for(rules_class):
    """The class componentize-py exports as the `hooks` interface, for `rules_class`."""
    meta = _rules.metadata(rules_class)  # a missing name fails the build, not the first run
    log._sink = _send_to_host
    # The configured module. componentize-py may make a Hooks object per call: keep it here.
    state = [None]

    def configured():
        if state[0] is None:
            raise Err("the module was called before `configure`")
        return state[0]

    class Hooks(wit_world.exports.Hooks):
        rules = rules_class

        def metadata(self):
            return _wit_metadata(meta)

        def configure(self, config_json):
            try:
                values = json.loads(config_json)
            except ValueError as e:
                raise Err("the configuration is not valid JSON: %s" % e)
            try:
                rules = _rules.configure(rules_class, values)
                fields = _rules.reads(rules)
            except RuleError as e:
                raise Err(str(e))
            state[0] = rules
            attributes = None if fields.attributes is None else [str(a) for a in fields.attributes]
            return wit.EntryFields(attributes, bool(fields.groups))

        def transform_user(self, entry, proposal):
            rules = configured()
            try:
                answer = _rules.transform_user(rules, _entry(entry), _decision(proposal))
            except RuleError as e:
                raise Err(str(e))
            return _wit_decision(answer)

        def map_groups(self, entry, user, proposal):
            rules = configured()
            try:
                answer = _rules.map_groups(rules, _entry(entry), _user(user), _access(proposal))
            except RuleError as e:
                raise Err(str(e))
            return _wit_access(answer)

        def deprovision(self, user, proposal):
            rules = configured()
            try:
                answer = _rules.deprovision(rules, _departed(user), _verdict(proposal))
            except RuleError as e:
                raise Err(str(e))
            return _wit_verdict(answer)

    Hooks.__qualname__ = Hooks.__name__ = "Hooks"
    return Hooks
