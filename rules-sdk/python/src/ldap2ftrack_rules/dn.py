"""Distinguished names: split a DN into its parts, read its RDN, compare DNs. LDAP escapes
(`\\,`, `\\2C`) are honoured, so `cn=Smith\\, John,ou=people` has two parts, not three.

Behaves like the Rust SDK's `dn` module and the host (src/ldap_syntax/dn.rs), which all run
the shared test vectors (rules-sdk/testdata/helpers.json), following RFC 4514: hex escapes
are UTF-8 bytes (`\\C3\\A9` is `é`), a multi-valued RDN (`cn=a+uid=b`) is one RDN for
`parent`, `normalize`, `same` and `is_under`, and an escaped space is part of a value.
"""

from dataclasses import dataclass

from ._unicode import ascii_lower, eq_ignore_ascii_case, trim, trim_end, trim_start

_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class Rdn:
    """One `attribute=value` part of a DN, the value unescaped."""

    attr: str
    """The attribute type, lower-cased (`cn`, `ou`, `dc`, ...)."""
    value: str
    """The value, unescaped, without the white space around it. An escaped space (`\\ `, or
    `\\20`) is part of the value, as RFC 4514 and the host say: `cn=x\\ ` is `x `."""


def _rdns(dn):
    """The DN's RDNs, leftmost first, each a list of its `attribute=value` parts."""
    rdns, current = [], []
    attr, value = [], []
    pending = bytearray()  # consecutive hex escapes: the UTF-8 bytes of one or more characters
    in_value = False
    # The pieces of `value` written escaped, first and last: white space is trimmed only
    # outside them.
    escaped = []

    def target():
        return value if in_value else attr

    def mark_escaped():
        if in_value and escaped:
            escaped[1] = len(value) - 1
        elif in_value:
            escaped.extend([len(value) - 1, len(value) - 1])

    def emit_pending():
        if pending:
            target().append(pending.decode("utf-8", "replace"))
            pending.clear()
            mark_escaped()

    def end_part():
        emit_pending()
        name = ascii_lower(trim("".join(attr)))
        if name:
            if escaped:
                first, last = escaped
                text = (
                    trim_start("".join(value[:first]))
                    + "".join(value[first : last + 1])
                    + trim_end("".join(value[last + 1 :]))
                )
            else:
                text = trim("".join(value))
            current.append(Rdn(name, text))
        attr.clear()
        value.clear()
        escaped.clear()

    i, n = 0, len(dn)
    while i < n:
        c = dn[i]
        i += 1
        if c == "\\":
            if i >= n:
                break
            nxt = dn[i]
            i += 1
            if nxt in _HEX and i < n and dn[i] in _HEX:
                pending.append(int(nxt + dn[i], 16))
                i += 1
            else:
                emit_pending()
                target().append(nxt)
                mark_escaped()
        elif c == "=" and not in_value:
            emit_pending()
            in_value = True
        elif c in ",;+" and in_value:
            end_part()
            in_value = False
            if c != "+" and current:
                rdns.append(current)
                current = []
        else:
            emit_pending()
            target().append(c)
    if in_value:
        end_part()
    if current:
        rdns.append(current)
    return rdns


def parse(dn):
    """The parts of a DN, leftmost (most specific) first, as `Rdn`s. Multi-valued RDNs
    (`cn=a+uid=b`) are split into their components too."""
    return [part for rdn in _rdns(dn) for part in rdn]


def rdn_value(dn):
    """The value of the first (most specific) RDN: `jdoe` for `uid=jdoe,ou=people,dc=x`."""
    parts = parse(dn)
    return parts[0].value if parts else None


def _format(rdns, lower):
    def part(p):
        return p.attr + "=" + escape(p.value.lower() if lower else p.value)

    if lower:  # a multi-valued RDN is a set: sorted, as the host does
        return ",".join("+".join(sorted(part(p) for p in rdn)) for rdn in rdns)
    return ",".join("+".join(part(p) for p in rdn) for rdn in rdns)


def parent(dn):
    """The DN without its first RDN: `ou=people,dc=x` for `uid=jdoe,ou=people,dc=x`."""
    rdns = _rdns(dn)
    return _format(rdns[1:], lower=False) if len(rdns) >= 2 else None


def values_of(dn, attr):
    """All values of one attribute type, in order: `values_of(dn, "ou")` is `["vfx", "people"]`."""
    return [p.value for p in parse(dn) if eq_ignore_ascii_case(p.attr, attr)]


def domain(dn):
    """The DNS domain spelled by the `dc=` parts: `example.com` for `...,dc=example,dc=com`."""
    dcs = values_of(dn, "dc")
    return ascii_lower(".".join(dcs)) if dcs else None


def normalize(dn):
    """A comparable form: attribute types and values lower-cased, spaces around separators
    removed, escapes resolved."""
    return _format(_rdns(dn), lower=True)


def same(a, b):
    """True when two DNs name the same entry."""
    if eq_ignore_ascii_case(a, b):
        return True
    # Plain ASCII DNs (no escapes, no spaces around separators) that differ beyond ASCII
    # case differ: skip the parse (as Rust does, so the answers stay identical).
    if _plain(a) and _plain(b):
        return False
    return normalize(a) == normalize(b)


def _plain(s):
    """ASCII, no escapes or multi-valued RDNs, no spaces around `,` or `=`."""
    if not s.isascii() or s[:1] == " " or s[-1:] == " ":
        return False
    if "\\" in s or '"' in s or "+" in s or ";" in s:
        return False
    return not (" ," in s or ", " in s or " =" in s or "= " in s)


def is_under(dn, base):
    """True when `dn` is at or below `base`."""
    dn, base = normalize(dn), normalize(base)
    return dn == base or dn.endswith("," + base)


def escape(value):
    """Escape a value for use in a DN (RFC 4514 special characters)."""
    last = len(value) - 1
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;=' or (i == 0 and c in "# ") or (i == last and c == " "):
            out.append("\\")
        out.append(c)
    return "".join(out)
