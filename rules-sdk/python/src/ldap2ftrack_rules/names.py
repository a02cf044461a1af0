"""Usernames and group names: normal forms and comparisons, so rules agree with the host on
what "the same name" means. Behaves exactly like the Rust SDK's `names` module (shared test
vectors: rules-sdk/testdata/helpers.json)."""

from ._unicode import eq_ignore_ascii_case, is_alphanumeric, split_whitespace, trim

_ASCII_WHITESPACE = frozenset(" \t\n\x0c\r")  # Rust's is_ascii_whitespace: no vertical tab
_USERNAME_PUNCTUATION = str.maketrans("", "", "._-")


def normalize_username(name):
    """A username as ftrack should have it: trimmed, lower-case, any `DOMAIN\\` prefix or
    `@realm` suffix removed, inner whitespace replaced by `.`."""
    n = trim(name)
    n = n.rpartition("\\")[2]
    n = n.partition("@")[0]
    if n.isascii() and _ASCII_WHITESPACE.isdisjoint(n):
        return n.lower()
    return ".".join(split_whitespace(n)).lower()


def is_valid_username(name):
    """True when the username is usable: 1-128 characters of letters, digits, `.`, `_`, `-`,
    not starting with `.` or `-`."""
    if not 0 < len(name) <= 128 or name[0] in ".-":
        return False
    if name.isascii():  # the common case, in C: what is left without . _ - is alphanumeric
        rest = name.translate(_USERNAME_PUNCTUATION)
        return not rest or rest.isalnum()
    return all(c in "._-" or is_alphanumeric(c) for c in name)


def normalize_group(name):
    """A group name with surrounding whitespace removed and inner runs collapsed to one space."""
    return " ".join(split_whitespace(name))


def same_group(a, b):
    """True when two group names are the same group (whitespace-normalised, case-insensitive)."""
    if eq_ignore_ascii_case(a, b):
        return True
    # Rust's shortcut, kept for identical answers: two ASCII names without double spaces or
    # surrounding white space differ when they differ beyond letter case (even "a\tb" and "a b").
    if _plain(a) and _plain(b):
        return False
    return normalize_group(a).lower() == normalize_group(b).lower()


def _plain(name):
    return name.isascii() and "  " not in name and len(trim(name)) == len(name)


def strip_prefix(name, prefix):
    """`name` without `prefix` when it starts with it (ASCII case-insensitive), else None:
    `strip_prefix("ftrack-comp", "ftrack-")` is `"comp"`."""
    # Rust compares the first len(prefix) UTF-8 bytes; a cut inside a character is no match.
    raw, head = name.encode(), prefix.encode()
    if len(raw) < len(head) or (len(raw) > len(head) and 0x80 <= raw[len(head)] < 0xC0):
        return None
    if raw[: len(head)].lower() != head.lower():  # bytes.lower() is ASCII-only, as in Rust
        return None
    return raw[len(head):].decode()


def title_case(name):
    """Capitalise each word: `comp artists` is `Comp Artists`."""
    return " ".join(w[:1].upper() + w[1:] for w in normalize_group(name).split(" "))
