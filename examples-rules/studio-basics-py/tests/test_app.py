"""studio-basics-py's unit tests, natively with pytest (no WebAssembly): the same cases as the
Rust twin's (examples-rules/studio-basics/src/lib.rs), through ldap2ftrack_rules.testing."""

import pytest

from app import StudioBasics
from ldap2ftrack_rules import RuleError, Skip, Sync, UserFields, testing


def sync(rules, entry):
    answer = testing.transform_user(rules, entry)
    assert isinstance(answer, Sync), answer
    return answer.user


def test_maps_the_seed_attributes():
    rules = testing.configure(StudioBasics)
    entry = (testing.entry("uid=ada,ou=people,dc=studio,dc=example")
             .attr("uid", "Ada").attr("mail", "ada@Studio.Example")
             .attr("givenName", "Ada").attr("sn", "Lovelace").attr("telephoneNumber", "555")
             .group("cn=artists,ou=groups,dc=studio,dc=example")
             .build())
    # Exactly what the host passes: the declared attributes, no groups.
    passed = testing.as_passed(rules, entry)
    assert [a.name for a in passed.attributes] == ["uid", "mail", "givenName", "sn"]
    assert passed.groups == []
    assert sync(rules, entry) == UserFields("ada", "ada@studio.example", "Ada", "Lovelace")
    assert testing.hooks_of(StudioBasics) == ["transform_user"]


def test_names_fall_back_to_display_name_then_cn():
    rules = testing.configure(StudioBasics)
    entry = testing.entry("uid=b,dc=x").attr("uid", "b").attr("cn", "Björn van Ødegård").build()
    assert sync(rules, entry) == UserFields("b", None, "Björn", "van Ødegård")
    one_word = testing.entry("uid=c,dc=x").attr("uid", "c").attr("displayName", "Cher") \
        .attr("cn", "Cher Sarkisian").build()
    assert sync(rules, one_word) == UserFields("c", None, "Cher", None)


def test_usernames_are_normalised_or_skipped():
    rules = testing.configure(StudioBasics)
    for uid, username in [("STUDIO\\Chen", "chen"), ("jdoe@STUDIO.LOCAL", "jdoe"),
                          ("John  Doe", "john.doe")]:
        assert sync(rules, testing.entry("uid=x,dc=x").attr("uid", uid).build()).username == username
    bad = testing.entry("uid=x,dc=x").attr("uid", "-dash").build()
    assert testing.transform_user(rules, bad) == Skip("uid `-dash` is not a usable username")


def test_invalid_mail_policies():
    entry = testing.entry("uid=c,dc=x").attr("uid", "STUDIO\\Chen").attr("mail", "chen at studio") \
        .build()
    drop = testing.configure(StudioBasics, {"email_domain": "studio.example"})
    user = sync(drop, entry)
    assert (user.username, user.email) == ("chen", "chen@studio.example")
    assert any("not a valid e-mail" in message for _, message in testing.take_logs())

    skip = testing.configure(StudioBasics, 'invalid_email = "skip"')  # TOML, as in sync.toml
    assert isinstance(testing.transform_user(skip, entry), Skip)

    reject = testing.configure(StudioBasics, invalid_email="reject")
    with pytest.raises(RuleError, match="`chen at studio` is not a valid e-mail address"):
        testing.transform_user(reject, entry)


def test_missing_username_skips_and_skip_stays_skip():
    rules = testing.configure(StudioBasics)
    entry = testing.entry("cn=x,dc=x").build()
    assert testing.transform_user(rules, entry) == Skip("no uid attribute")
    assert testing.transform_user(rules, entry, Skip("earlier stage")) == Skip("earlier stage")


def test_bad_configuration_is_refused():
    with pytest.raises(RuleError, match="invalid_email"):
        testing.configure(StudioBasics, invalid_email="ignore")
    with pytest.raises(RuleError, match="email_domain"):
        testing.configure(StudioBasics, email_domain="not a domain")
    with pytest.raises(RuleError, match="unknown key `mail_attr`"):
        testing.configure(StudioBasics, mail_attr="mail")
