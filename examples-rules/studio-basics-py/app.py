"""studio-basics-py: the `studio-basics` rule module in Python, on the Python rules SDK
(rules-sdk/python). It exists to show that a rule module can come from another language and
behave identically: it passes the same fixture cases as its Rust twin
(examples-rules/studio-basics).

uid -> username (normalised: DOMAIN\\user, user@REALM and "First Last" become lower-case),
mail -> email (validated; an invalid one is dropped, skips the user, or rejects the entry),
givenName/sn -> names with displayName/cn as fallbacks, and username@email_domain for users
without a (valid) mail.

Build (from the repository root; tests/run.sh does this):
    .venv/bin/componentize-py -d rules-sdk/wit -w rule componentize --stub-wasi \\
        -p examples-rules/studio-basics-py -p rules-sdk/python/src app \\
        -o examples-rules/target/wasm32-wasip2/release/studio_basics_py.wasm
"""

from ldap2ftrack_rules import (
    RuleError, Rules, Skip, Sync, UserFields, config, email, export, log, names,
)


class StudioBasics(Rules):
    name = "studio-basics-py"
    version = "1.0.0"
    description = ("uid/mail/givenName/sn to ftrack user fields, with e-mail validation "
                   "and username normalisation (the Python twin of studio-basics)")

    username_attr = config.string(
        "uid", description="LDAP attribute holding the username (sAMAccountName on AD)")
    email_attr = config.string("mail", description="LDAP attribute holding the e-mail address")
    first_name_attr = config.string(
        "givenName", description="LDAP attribute holding the first name")
    last_name_attr = config.string("sn", description="LDAP attribute holding the last name")
    name_fallbacks = config.string_list(
        ["displayName", "cn"],
        description="Attributes split into first and last name when those are missing")
    email_domain = config.string(
        description="Domain for username@domain when the mail is missing or invalid")
    invalid_email = config.string(
        "drop", choices=["drop", "skip", "reject"],
        description='An invalid mail: "drop" it, "skip" the user, or "reject" the entry')

    def configure(self):
        if self.email_domain is not None and not email.is_valid("x@" + self.email_domain):
            raise RuleError("`email_domain` `%s` is not a mail domain" % self.email_domain)

    def reads(self):
        return [self.username_attr, self.email_attr, self.first_name_attr,
                self.last_name_attr, *self.name_fallbacks]

    def transform_user(self, entry, proposal):
        if isinstance(proposal, Skip):
            return proposal
        raw = entry.first(self.username_attr)
        if raw is None:
            return Skip("no %s attribute" % self.username_attr)
        username = names.normalize_username(raw)
        if not names.is_valid_username(username):
            return Skip("%s `%s` is not a usable username" % (self.username_attr, raw))
        address = self.email_of(entry, username)
        if isinstance(address, Skip):
            return address
        first_name, last_name = self.names_of(entry)
        return Sync(UserFields(username, address, first_name, last_name))

    def email_of(self, entry, username):
        """The address to sync (or None), or Skip; RuleError rejects the entry."""
        fallback = "%s@%s" % (username, self.email_domain) if self.email_domain else None
        raw = entry.first(self.email_attr)
        if raw is None:
            return fallback
        address = email.normalize(raw)
        if email.is_valid(address):
            return address
        why = "%s `%s` is not a valid e-mail address" % (self.email_attr, raw)
        if self.invalid_email == "skip":
            return Skip(why)
        if self.invalid_email == "reject":
            raise RuleError(why)
        log.warn("%s: %s; synced without it" % (entry.dn, why))
        return fallback

    def names_of(self, entry):
        """givenName and sn; what is missing comes from the first fallback with a value."""
        first_name = entry.first(self.first_name_attr)
        last_name = entry.first(self.last_name_attr)
        if first_name is not None and last_name is not None:
            return first_name, last_name
        words = (entry.first_of(self.name_fallbacks) or "").split()
        return (first_name or (words[0] if words else None),
                last_name or (" ".join(words[1:]) or None))


Hooks = export(StudioBasics)
