"""The WIT glue (`_component`) natively: componentize-py generates the same `wit_world`
bindings the component build uses (plain Python dataclasses), the host's log is replaced by a
recorder, and the glue's conversions, metadata, configuration and errors are checked without
building a component. Skipped where componentize-py is not installed."""

import importlib
import pathlib
import shutil
import subprocess
import sys

import pytest

from ldap2ftrack_rules import (
    Keep, Rules, Skip, Sync, UserFields, config, export, log,
)

WIT = pathlib.Path(__file__).resolve().parents[2] / "wit"


class Studio(Rules):
    name = "studio"
    version = "2.0.0"
    description = "every hook, for the glue"
    domain = config.string("example.com", description="Mail domain")
    reads = ["uid", "mail"]

    def transform_user(self, entry, proposal):
        uid = entry.first("uid")
        if uid is None:
            return Skip("no uid")
        if uid == "crash":
            raise KeyError(uid)
        log.warn("seen %s in %s groups" % (uid, len(entry.groups)))
        return Sync(UserFields(uid.lower(), "%s@%s" % (uid.lower(), self.domain), None, "Doe"))

    def map_groups(self, entry, user, proposal):
        return proposal.with_group("all-" + user.username).with_role("Lead", project="spring")

    def deprovision(self, user, proposal):
        if user.entry is not None and user.entry.disabled:
            return Keep("disabled in LDAP since %s" % user.missing_since)
        return proposal


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """(the exported Hooks class, the bindings' types module, what the host log received)."""
    tool = shutil.which("componentize-py") or shutil.which(
        "componentize-py", path=str(pathlib.Path(sys.executable).parent))
    if tool is None:
        pytest.skip("componentize-py is not installed")
    out = tmp_path_factory.mktemp("bindings")
    subprocess.run([tool, "-d", str(WIT), "-w", "rule", "bindings", str(out)], check=True)
    sys.path.insert(0, str(out))
    sink = log._sink
    try:
        host = importlib.import_module("wit_world.imports.host")
        received = []
        host.log = lambda level, message: received.append((level, message))
        hooks = export(Studio)
        yield hooks, importlib.import_module("wit_world.imports.types"), received
    finally:
        log._sink = sink
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.split(".")[0] in (
                "wit_world", "componentize_py_types", "ldap2ftrack_rules._component")]:
            del sys.modules[name]


def wit_entry(t, uid=None, disabled=False):
    attributes = [t.Attribute("uid", [" ", uid])] if uid is not None else []
    groups = [t.GroupRef("cn=artists,dc=x", "artists", True)]
    return t.LdapEntry("uid=x,dc=x", "guid-1", disabled, attributes, groups)


def test_metadata_lists_the_hooks_and_schema(glue):
    hooks, t, _ = glue
    meta = hooks().metadata()
    assert (meta.name, meta.version, meta.abi_version) == ("studio", "2.0.0", "1.0.0")
    assert meta.hooks == [t.Hook.TRANSFORM_USER, t.Hook.MAP_GROUPS, t.Hook.DEPROVISION]
    assert meta.config_schema == [
        t.ConfigKey("domain", t.ConfigType.STRING, '"example.com"', "Mail domain", False)]


def test_configure_then_hooks_convert_both_ways(glue):
    hooks, t, received = glue
    from componentize_py_types import Err

    with pytest.raises(Err) as early:
        hooks().transform_user(wit_entry(t, "A"), t.UserDecision_Skip("x"))
    assert early.value.value == "the module was called before `configure`"

    assert hooks().configure('{"domain": "studio.example"}') == t.EntryFields(["uid", "mail"], False)
    # A new Hooks object per call still sees the configured module.
    answer = hooks().transform_user(wit_entry(t, "JDoe"), t.UserDecision_Sync(t.UserFields("", None, None, None)))
    assert answer == t.UserDecision_Sync(t.UserFields("jdoe", "jdoe@studio.example", None, "Doe"))
    assert received[-1] == (t.LogLevel.WARN, "seen JDoe in 1 groups")
    assert hooks().transform_user(wit_entry(t), t.UserDecision_Skip("x")) == t.UserDecision_Skip("no uid")

    access = hooks().map_groups(wit_entry(t, "a"), t.UserFields("a", None, None, None),
                                t.Access(["x"], [t.RoleGrant("Artist", t.RoleScope_AllOpenProjects())]))
    assert access == t.Access(["x", "all-a"], [
        t.RoleGrant("Artist", t.RoleScope_AllOpenProjects()),
        t.RoleGrant("Lead", t.RoleScope_Project("spring"))])

    gone = t.DepartedUser("a", None, True, "2025-12-01", "2026-01-01", wit_entry(t, "a", disabled=True))
    assert hooks().deprovision(gone, t.Verdict_Disable("gone")) == t.Verdict_Keep(
        "disabled in LDAP since 2025-12-01")
    missing = t.DepartedUser("b", None, False, None, "2026-01-01", None)
    assert hooks().deprovision(missing, t.Verdict_Disable("gone")) == t.Verdict_Disable("gone")


def test_errors_become_wit_errs(glue):
    hooks, t, _ = glue
    from componentize_py_types import Err

    for config_json, message in [
        ("{", "the configuration is not valid JSON: "),
        ('{"domian": "x"}', "unknown key `domian` (known keys: domain)"),
        ('{"domain": 1}', "`domain` must be a string, not a number"),
    ]:
        with pytest.raises(Err) as refused:
            hooks().configure(config_json)
        assert refused.value.value.startswith(message)
    hooks().configure("{}")
    with pytest.raises(Err) as crashed:
        hooks().transform_user(wit_entry(t, "crash"), t.UserDecision_Skip("x"))
    assert crashed.value.value.startswith("transform_user failed: KeyError: 'crash' (test_component.py")
