"""studio-basics-py: the `studio-basics` rule module written in Python, built into a
WebAssembly component with componentize-py against the same WIT (rules-sdk/wit). It exists
to show that a rule module can come from another language and behave identically: it
passes the same fixture cases as its Rust twin (examples-rules/studio-basics).

uid -> username (normalised: DOMAIN\\user, user@REALM and "First Last" become lower-case),
mail -> email (validated; an invalid one is dropped, skips the user, or rejects the entry),
givenName/sn -> names with displayName/cn as fallbacks, and username@email_domain for users
without a (valid) mail.

Build (from the repository root; tests/run.sh does this):
    .venv/bin/componentize-py -d rules-sdk/wit -w rule componentize --stub-wasi \
        -p examples-rules/studio-basics-py app \
        -o examples-rules/target/wasm32-wasip2/release/studio_basics_py.wasm
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.exports import hooks as _hooks  # noqa: F401  (the interface implemented here)
from wit_world.imports import host, types as t

NAME = "studio-basics-py"
VERSION = "1.0.0"
ABI_VERSION = "1.0.0"

SCHEMA = [
    ("username_attr", t.ConfigType.STRING, '"uid"',
     "LDAP attribute holding the username (sAMAccountName on AD)"),
    ("email_attr", t.ConfigType.STRING, '"mail"', "LDAP attribute holding the e-mail address"),
    ("first_name_attr", t.ConfigType.STRING, '"givenName"', "LDAP attribute holding the first name"),
    ("last_name_attr", t.ConfigType.STRING, '"sn"', "LDAP attribute holding the last name"),
    ("name_fallbacks", t.ConfigType.STRING_LIST, '["displayName", "cn"]',
     "Attributes split into first and last name when those are missing"),
    ("email_domain", t.ConfigType.STRING, None,
     "Domain for username@domain when the mail is missing or invalid"),
    ("invalid_email", t.ConfigType.STRING, '"drop"',
     'An invalid mail: "drop" it, "skip" the user, or "reject" the entry'),
]

LOCAL_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.")
LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def normalize_username(name):
    """As the Rust SDK's names::normalize_username."""
    n = name.strip()
    if "\\" in n:
        n = n.rsplit("\\", 1)[1]
    if "@" in n:
        n = n.split("@", 1)[0]
    if not any(c.isspace() for c in n):
        return n.lower()
    return ".".join(n.split()).lower()


def is_valid_username(name):
    """As the Rust SDK's names::is_valid_username."""
    return (
        0 < len(name) <= 128
        and not name.startswith((".", "-"))
        and all(c.isalnum() or c in "._-" for c in name)
    )


def email_is_valid(address):
    """As the Rust SDK's email::is_valid."""
    if "@" not in address:
        return False
    local, domain = address.split("@", 1)
    if not local or len(local) > 64 or len(domain) > 253 or "@" in domain:
        return False
    local_ok = (
        all(c in LOCAL_CHARS for c in local)
        and not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
    )

    def label_ok(label):
        return (
            0 < len(label) <= 63
            and not label.startswith("-")
            and not label.endswith("-")
            and all(c in LABEL_CHARS for c in label)
        )

    if "." not in domain:
        return False
    rest, tld = domain.rsplit(".", 1)
    domain_ok = (
        len(tld) >= 2
        and all(c.isascii() and c.isalpha() for c in tld)
        and all(label_ok(label) for label in rest.split("."))
    )
    return local_ok and domain_ok


def email_normalize(address):
    """As the Rust SDK's email::normalize: trim, lower-case the domain."""
    a = address.strip()
    if "@" not in a:
        return a
    local, domain = a.rsplit("@", 1)
    return local + "@" + domain.lower()


def first(entry, name):
    """The first non-blank value of an attribute (names case-insensitive), trimmed."""
    wanted = name.lower()
    for attribute in entry.attributes:
        if attribute.name.lower() == wanted:
            for value in attribute.values:
                if value.strip():
                    return value.strip()
            return None
    return None


def log(level, message):
    host.log(level, message)


class Settings:
    def __init__(self, config):
        def string(key, default):
            value = config.get(key, default)
            if value is not None and not isinstance(value, str):
                raise Err("`%s` must be a string" % key)
            return value

        self.username_attr = string("username_attr", "uid")
        self.email_attr = string("email_attr", "mail")
        self.first_name_attr = string("first_name_attr", "givenName")
        self.last_name_attr = string("last_name_attr", "sn")
        self.name_fallbacks = list(config.get("name_fallbacks", ["displayName", "cn"]))
        self.email_domain = string("email_domain", None)
        self.invalid_email = string("invalid_email", "drop")
        for key in ("username_attr", "email_attr", "first_name_attr", "last_name_attr",
                    "invalid_email"):
            if not getattr(self, key):
                raise Err("`%s` is empty" % key)
        if self.invalid_email not in ("drop", "skip", "reject"):
            raise Err('`invalid_email` is `%s`; use "drop", "skip" or "reject"' % self.invalid_email)
        if self.email_domain is not None and not email_is_valid("x@" + self.email_domain):
            raise Err("`email_domain` `%s` is not a mail domain" % self.email_domain)

    def reads(self):
        names = [self.username_attr, self.email_attr, self.first_name_attr, self.last_name_attr]
        return t.EntryFields(attributes=names + self.name_fallbacks, groups=False)

    def email(self, entry, username):
        """(address or None, None) to sync; (None, why) to skip. Raises Err to reject."""
        fallback = username + "@" + self.email_domain if self.email_domain else None
        raw = first(entry, self.email_attr)
        if raw is None:
            return fallback, None
        address = email_normalize(raw)
        if email_is_valid(address):
            return address, None
        why = "%s `%s` is not a valid e-mail address" % (self.email_attr, raw)
        if self.invalid_email == "drop":
            log(t.LogLevel.WARN, "%s: %s; synced without it" % (entry.dn, why))
            return fallback, None
        if self.invalid_email == "skip":
            return None, why
        raise Err(why)

    def names(self, entry):
        first_name = first(entry, self.first_name_attr)
        last_name = first(entry, self.last_name_attr)
        if first_name is not None and last_name is not None:
            return first_name, last_name
        full = None
        for attribute in self.name_fallbacks:
            full = first(entry, attribute)
            if full is not None:
                break
        f = l = None
        if full is not None:
            words = full.split()
            if len(words) == 1:
                f = words[0]
            elif len(words) > 1:
                f, l = words[0], " ".join(words[1:])
        return first_name if first_name is not None else f, last_name if last_name is not None else l


SETTINGS = None


class Hooks(wit_world.exports.Hooks):
    def metadata(self):
        return t.ModuleMetadata(
            name=NAME,
            version=VERSION,
            description="uid/mail/givenName/sn to ftrack user fields, with e-mail validation "
            "and username normalisation (the Python twin of studio-basics)",
            abi_version=ABI_VERSION,
            hooks=[t.Hook.TRANSFORM_USER],
            config_schema=[
                t.ConfigKey(name=n, value_type=ty, default=d, description=desc, required=False)
                for (n, ty, d, desc) in SCHEMA
            ],
        )

    def configure(self, config_json):
        global SETTINGS
        try:
            config = json.loads(config_json)
        except ValueError as e:
            raise Err("the configuration is not JSON: %s" % e)
        if not isinstance(config, dict):
            raise Err("the configuration is not a table")
        SETTINGS = Settings(config)
        return SETTINGS.reads()

    def transform_user(self, entry, proposal):
        s = SETTINGS
        if s is None:
            raise Err("the module was called before `configure`")
        if isinstance(proposal, t.UserDecision_Skip):
            return proposal
        raw = first(entry, s.username_attr)
        if raw is None:
            return t.UserDecision_Skip("no %s attribute" % s.username_attr)
        username = normalize_username(raw)
        if not is_valid_username(username):
            return t.UserDecision_Skip("%s `%s` is not a usable username" % (s.username_attr, raw))
        address, why = s.email(entry, username)
        if why is not None:
            return t.UserDecision_Skip(why)
        first_name, last_name = s.names(entry)
        return t.UserDecision_Sync(t.UserFields(
            username=username, email=address, first_name=first_name, last_name=last_name))

    # Not listed in the metadata's hooks, so the host never calls these; the world exports
    # them, so they pass the proposal through.
    def map_groups(self, entry, user, proposal):
        return proposal

    def deprovision(self, user, proposal):
        return proposal
