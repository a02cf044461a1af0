"""The SDK natively: what a module reports (hooks, metadata, schema), how it is configured,
what it reads, how hook answers and exceptions reach the host, the entry/access helpers, and
the `testing` module an author's pytest relies on."""

import pytest

from ldap2ftrack_rules import (
    Access, Disable, Entry, EntryFields, Keep, RoleGrant, RuleError, Rules, Skip, Sync,
    UserFields, config, export, log, testing,
)


class Lowercase(Rules):
    name = "lowercase"
    version = "0.1.0"
    description = "Lower-case usernames; mail from uid"

    domain = config.string("example.com", description="Mail domain")
    days = config.integer(30)
    ratio = config.float()
    dry = config.boolean(False)
    protected = config.string_list([])
    mode = config.string("drop", choices=["drop", "skip"])
    site_name = config.string(key="site-name")
    reads = ["uid"]

    def transform_user(self, entry, proposal):
        if not isinstance(proposal, Sync):
            return proposal
        user = proposal.user
        user.username = entry.first("uid").lower()
        user.email = user.email or "%s@%s" % (user.username, self.domain)
        log.debug("%s -> %s" % (entry.dn, user.username))
        return proposal


class OnlyDeprovision(Rules):
    name, version = "only-deprovision", "0.0.1"

    def deprovision(self, user, proposal):
        return Keep("always")


class Required(Rules):
    name, version = "required", "1"
    token = config.string(required=True)


def test_only_overridden_hooks_are_reported():
    assert testing.hooks_of(Lowercase) == ["transform_user"]
    assert testing.hooks_of(OnlyDeprovision) == ["deprovision"]

    class Inherits(OnlyDeprovision):
        name = "inherits"

        def map_groups(self, entry, user, proposal):
            return proposal

    assert testing.hooks_of(Inherits) == ["map_groups", "deprovision"]


def test_metadata_and_schema():
    meta = testing.metadata(Lowercase)
    assert (meta.name, meta.version, meta.abi_version) == ("lowercase", "0.1.0", "1.0.0")
    keys = {k.name: k for k in meta.config_schema}
    assert list(keys) == ["domain", "days", "ratio", "dry", "protected", "mode", "site-name"]
    assert keys["domain"].default_text == '"example.com"'
    assert keys["days"].default_text == "30"
    assert keys["protected"].default_text == "[]"
    assert keys["ratio"].default_text is None and not keys["ratio"].required
    assert keys["domain"].description == "Mail domain"
    assert keys["days"].value_type == "integer"
    assert config.string_list(["a", "b"]).default_text == '["a", "b"]'  # the Rust spelling


def test_metadata_problems_fail_at_export():
    class Nameless(Rules):
        version = "1"

    with pytest.raises(RuleError, match="set the class attribute `name`"):
        export(Nameless)

    class BadDefault(Rules):
        name, version = "bad-default", "1"
        n = config.integer("3")

    with pytest.raises(RuleError, match=r"`n` \(its default\) must be an integer, not a string"):
        export(BadDefault)


def test_configure_applies_defaults_and_checks_keys():
    rules = testing.configure(Lowercase, {"site-name": "Paris"})
    assert (rules.domain, rules.days, rules.ratio, rules.dry) == ("example.com", 30, None, False)
    assert rules.site_name == "Paris"
    assert testing.configure(Lowercase, 'days = 7\nratio = 2').ratio == 2  # TOML; ints are numbers
    assert testing.configure(Lowercase, days=7).days == 7
    assert testing.config_for(Lowercase)["protected"] == []

    for table, message in [
        ({"dayz": 3}, "unknown key `dayz` (known keys: domain, days,"),
        ({"days": "3"}, "`days` must be an integer, not a string"),
        ({"days": True}, "`days` must be an integer, not a boolean"),
        ({"days": 1.5}, "`days` must be an integer, not a number"),
        ({"protected": ["a", 1]}, "`protected` must be a list of strings, not a list"),
        ({"mode": "ignore"}, '`mode` is `ignore`; use "drop" or "skip"'),
    ]:
        with pytest.raises(RuleError) as refused:
            testing.configure(Lowercase, table)
        assert message in str(refused.value)
    with pytest.raises(RuleError, match="missing required key `token`"):
        testing.configure(Required)
    with pytest.raises(RuleError, match="known keys: none"):
        testing.configure(OnlyDeprovision, {"x": 1})


def test_defaults_are_copies():
    a = testing.configure(Lowercase)
    a.protected.append("root")
    assert testing.configure(Lowercase).protected == []


def test_configure_hook_refuses_and_exceptions_say_where():
    class Checked(Rules):
        name, version = "checked", "1"
        days = config.integer(30)

        def configure(self):
            if self.days < 0:
                raise RuleError("`days` must be 0 or more")
            if self.days == 0:
                {}["boom"]

    assert testing.configure(Checked).days == 30
    with pytest.raises(RuleError, match=r"^`days` must be 0 or more$"):
        testing.configure(Checked, days=-1)
    with pytest.raises(RuleError) as crashed:
        testing.configure(Checked, days=0)
    assert str(crashed.value).startswith("configure failed: KeyError: 'boom' (test_rules.py, line ")
    assert str(crashed.value).endswith(", in configure)")


def test_reads_forms():
    class Reads(Rules):
        name, version = "reads", "1"
        attr = config.string("uid")

        def reads(self):
            return EntryFields.only([self.attr]).with_groups()

    assert testing.configure(Reads, attr="sAMAccountName").reads() == EntryFields(
        ["sAMAccountName"], True)

    from ldap2ftrack_rules import _rules

    assert _rules.reads(testing.configure(Lowercase)) == EntryFields(["uid"], False)
    assert _rules.reads(testing.configure(OnlyDeprovision)) == EntryFields.all()

    class Wrong(Rules):
        name, version = "wrong", "1"
        reads = "uid"

    with pytest.raises(RuleError, match="`reads` must be a list of attribute names"):
        _rules.reads(testing.configure(Wrong))


def test_transform_user_as_the_host_calls_it():
    rules = testing.configure(Lowercase)
    entry = testing.entry("uid=JDoe,ou=people,dc=example,dc=com").attr("uid", "JDoe") \
        .attr("telephoneNumber", "555").group("cn=artists,dc=x").build()
    passed = testing.as_passed(rules, entry)
    assert [a.name for a in passed.attributes] == ["uid"] and passed.groups == []
    assert testing.transform_user(rules, entry) == Sync(UserFields("jdoe", "jdoe@example.com"))
    assert testing.take_logs() == [("debug", "uid=JDoe,ou=people,dc=example,dc=com -> jdoe")]
    assert testing.take_logs() == []
    assert testing.transform_user(rules, entry, Skip("earlier")) == Skip("earlier")


def test_unwritten_hooks_pass_the_proposal_through():
    rules = testing.configure(OnlyDeprovision)
    entry = testing.entry("uid=a,dc=x").build()
    assert testing.transform_user(rules, entry, Skip("no")) == Skip("no")
    access = Access().with_group("artists")
    assert testing.map_groups(rules, entry, UserFields("a"), access) == access
    assert testing.deprovision(rules, testing.departed("a", today="2026-01-01")) == Keep("always")


def test_wrong_answers_and_crashes_become_rejections():
    class Sloppy(Rules):
        name, version = "sloppy", "1"

        def transform_user(self, entry, proposal):
            if entry.dn.startswith("uid=none"):
                return None
            if entry.dn.startswith("uid=int"):
                return Sync(UserFields(username=42))
            return {"uid": entry.first("uid")}["uid"].lower()  # crashes: no uid

        def map_groups(self, entry, user, proposal):
            return ["artists"]

        def deprovision(self, user, proposal):
            raise RuleError("%s is protected" % user.username)

    rules = testing.configure(Sloppy)
    with pytest.raises(RuleError, match=r"transform_user returned None; return Sync\(UserFields"):
        testing.transform_user(rules, testing.entry("uid=none,dc=x").build())
    with pytest.raises(RuleError, match="username must be a string"):
        testing.transform_user(rules, testing.entry("uid=int,dc=x").build())
    with pytest.raises(RuleError) as crashed:
        testing.transform_user(rules, testing.entry("uid=x,dc=x").build())
    assert str(crashed.value).startswith(
        "transform_user failed: AttributeError: 'NoneType' object has no attribute 'lower' "
        "(test_rules.py, line ")
    assert isinstance(crashed.value.__cause__, AttributeError)
    with pytest.raises(RuleError, match=r"map_groups returned \['artists'\]; return Access"):
        testing.map_groups(rules, testing.entry("uid=x,dc=x").build())
    with pytest.raises(RuleError, match="^root is protected$"):
        testing.deprovision(rules, testing.departed("root", today="2026-01-01"))


def test_entry_lookups():
    e = testing.entry("uid=a,dc=x").attr("mail", " ", "A@x.org ").attr("cn", ["Ann", "Anna"]) \
        .group("cn=Comp Artists,ou=groups,dc=x", direct=False).stable_id("42").disabled().build()
    assert e.first("MAIL") == "A@x.org"
    assert e.first_of(["displayName", "mail"]) == "A@x.org"
    assert e.values("cn") == ["Ann", "Anna"] and e.values("sn") == []
    assert e.has_value("mail", "a@x.org")
    assert e.in_group("CN=comp artists, OU=Groups, DC=x")
    assert e.in_group("comp  artists") and not e.in_group("lighting")
    assert e.group("comp artists").direct is False
    assert (e.rdn_value(), e.stable_id, e.disabled) == ("a", "42", True)
    assert Entry("uid=b,dc=x").first("uid") is None


def test_access_deduplicates():
    a = Access().with_group("Comp").with_group("comp")
    a.add_role("Artist")
    a.add_role("Artist")
    a.add_role("Artist", project="P1")
    assert a.groups == ["Comp"]
    assert a.roles == [RoleGrant("Artist"), RoleGrant("Artist", "P1")]
    assert a.remove_group("COMP") and a.groups == []
    assert not a.remove_group("comp")


def test_departed_user_with_its_entry_is_filtered_too():
    class Grace(Rules):
        name, version = "grace", "1"
        reads = ["uid"]

        def deprovision(self, user, proposal):
            return Disable(",".join(a.name for a in user.entry.attributes))

    rules = testing.configure(Grace)
    entry = testing.entry("uid=a,dc=x").attr("uid", "a").attr("mail", "a@x.org").disabled()
    user = testing.departed("a", today="2026-01-02", ldap_disabled=True, entry=entry)
    assert testing.deprovision(rules, user) == Disable("uid")


def test_export_natively_is_a_stand_in():
    hooks = export(Lowercase)
    assert hooks.rules is Lowercase
    with pytest.raises(RuntimeError, match="test Lowercase with ldap2ftrack_rules.testing"):
        hooks()


def test_log_levels():
    log.log("warn", "careful")
    log.error(42)
    assert testing.take_logs() == [("warn", "careful"), ("error", "42")]
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        log.log("loud", "x")
