"""E-mail addresses: a deliberately simple validity check (what ftrack and mail servers accept
in practice, not the full RFC 5322 grammar) and a normal form. Behaves exactly like the Rust
SDK's `email` module (shared test vectors: rules-sdk/testdata/helpers.json)."""

from ._unicode import ascii_lower, trim

_LOCAL_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~."
)
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _label_ok(label):
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and _LABEL_CHARS.issuperset(label)
    )


def is_valid(address):
    """True for `local@domain.tld` with a plausible local part and domain: no spaces, one `@`,
    a dot in the domain, no empty labels, printable ASCII only."""
    local, at, domain = address.partition("@")
    if not at or not local or len(local) > 64 or len(domain) > 253 or "@" in domain:
        return False
    if not _LOCAL_CHARS.issuperset(local) or local[0] == "." or local[-1] == ".":
        return False
    if ".." in local:
        return False
    rest, dot, tld = domain.rpartition(".")
    if not dot or len(tld) < 2 or not _LETTERS.issuperset(tld):
        return False
    for label in rest.split("."):
        if not _label_ok(label):
            return False
    return True


def normalize(address):
    """Trimmed, domain lower-cased (the local part is kept as written: it may be case-sensitive)."""
    a = trim(address)
    local, at, domain = a.rpartition("@")
    return local + "@" + ascii_lower(domain) if at else a


def domain(address):
    """The domain part, lower-cased; None without an `@`."""
    _, at, domain_part = trim(address).rpartition("@")
    return ascii_lower(domain_part) if at else None
