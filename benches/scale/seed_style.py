"""The seed-style sync: what a studio writes by hand with the official ftrack client.

The baseline of issue 21's goal ("first apply of 10,000 users >= 20x faster than the
seed-style script, official client, one query per user, in the same run"). It does the
same job as `ldap2ftrack apply` on the scale bench's organisation, the way such scripts
are written: read LDAP (paged, with the pure-Python `ldap3` package), resolve nested
groups, then for each user one query for the user with its memberships and roles, the
creates and updates it needs, and a commit every 100 users. Groups are looked up once
each and cached; security roles go through ftrack's role actions
(`add_user_security_role`, then `grant_user_security_role_project`, sent together after
each commit), as the documentation prescribes.

Why every 100 users and not one commit per user, as such scripts often do: the official
client's `commit` walks every entity in the session's cache, so a commit per user grows
quadratically (1,000 users: 66 s, 3,033 requests; 256 s under cProfile, 97% in `commit`).
Batching is the strongest form of this style, so the comparison is with the fastest
hand-written script, not the slowest.

Run by `cargo bench --bench scale` (benches/scale/seed.rs) with the bench's own sync.toml:

    python seed_style.py SYNC_TOML

The LDAP password and ftrack key come from the environment variables the sync.toml names
(`bind_password_env`) and `FTRACK_API_KEY`. Prints one JSON line: the users read, the users
created and updated, the memberships and grants made, and the seconds taken.
"""

import json
import os
import sys
import time
import tomllib

import ftrack_api
import ldap3


def read_ldap(cfg):
    ldap_cfg = cfg["ldap"]
    server = ldap3.Server(ldap_cfg["url"])
    conn = ldap3.Connection(
        server,
        user=ldap_cfg["bind_dn"],
        password=os.environ[ldap_cfg["bind_password_env"]],
        auto_bind=True,
    )
    page = int(ldap_cfg.get("page_size", 1000))
    users = list(
        conn.extend.standard.paged_search(
            ldap_cfg["user_base_dn"],
            ldap_cfg.get("user_filter", "(objectClass=inetOrgPerson)"),
            attributes=["uid", "mail", "givenName", "sn"],
            paged_size=page,
            generator=True,
        )
    )
    groups = list(
        conn.extend.standard.paged_search(
            ldap_cfg["group_base_dn"],
            "(objectClass=groupOfNames)",
            attributes=["cn", "member"],
            paged_size=page,
            generator=True,
        )
    )
    conn.unbind()
    return [u for u in users if u.get("type") == "searchResEntry"], [
        g for g in groups if g.get("type") == "searchResEntry"
    ]


def groups_of_users(groups):
    """Every group each DN is in, nesting followed."""
    parents = {}
    names = {}
    for g in groups:
        dn = g["dn"].lower()
        names[dn] = g["attributes"]["cn"][0]
        for member in g["attributes"].get("member", []):
            parents.setdefault(member.lower(), []).append(dn)

    memo = {}

    def closure(dn):
        if dn in memo:
            return memo[dn]
        memo[dn] = set()
        out = set()
        for parent in parents.get(dn, []):
            out.add(parent)
            out |= closure(parent)
        memo[dn] = out
        return out

    return lambda dn: {names[g] for g in closure(dn.lower())}


def main():
    with open(sys.argv[1], "rb") as f:
        cfg = tomllib.load(f)
    mappings = cfg.get("group_mappings", {})
    started = time.monotonic()
    users, groups = read_ldap(cfg)
    ldap_groups_of = groups_of_users(groups)

    session = ftrack_api.Session(
        server_url=cfg["ftrack"]["server_url"],
        api_user=cfg["ftrack"]["api_user"],
        api_key=os.environ["FTRACK_API_KEY"],
        auto_connect_event_hub=False,
    )
    roles = {r["name"]: r for r in session.query("select id, name from SecurityRole")}
    group_cache = {}

    def ftrack_group(name):
        if name not in group_cache:
            found = session.query(f'Group where name is "{name}"').first()
            if found is None:
                found = session.create("Group", {"name": name})
                session.commit()
            group_cache[name] = found
        return group_cache[name]

    created = updated = memberships = grants = 0
    pending_roles = []

    def flush():
        session.commit()
        if pending_roles:
            session.call(pending_roles)
            pending_roles.clear()

    for n, entry in enumerate(users, 1):
        attrs = entry["attributes"]
        username = attrs["uid"][0]
        wanted_groups, wanted_roles = set(), set()
        for ldap_group in ldap_groups_of(entry["dn"]):
            mapping = mappings.get(ldap_group)
            if mapping:
                wanted_groups |= set(mapping.get("groups", []))
                wanted_roles |= set(mapping.get("roles", []))
        fields = {
            "email": attrs["mail"][0],
            "first_name": attrs["givenName"][0],
            "last_name": attrs["sn"][0],
        }
        # The one query per user.
        user = session.query(
            "select id, username, email, first_name, last_name, is_active,"
            " memberships.group.name, user_security_roles.security_role.name"
            f' from User where username is "{username}"'
        ).first()
        if user is None:
            user = session.create("User", dict(fields, username=username, is_active=True))
            have_groups, have_roles = set(), set()
            created += 1
        else:
            changed = False
            for key, value in fields.items():
                if user[key] != value:
                    user[key] = value
                    changed = True
            updated += changed
            have_groups = {m["group"]["name"] for m in user["memberships"]}
            have_roles = {r["security_role"]["name"] for r in user["user_security_roles"]}
        for name in sorted(wanted_groups - have_groups):
            session.create("Membership", {"user": user, "group": ftrack_group(name)})
            memberships += 1
        for name in sorted(wanted_roles - have_roles):
            role_id = roles[name]["id"]
            pending_roles.append(
                {"action": "add_user_security_role", "user_id": user["id"], "role_id": role_id}
            )
            pending_roles.append(
                {
                    "action": "grant_user_security_role_project",
                    "user_id": user["id"],
                    "role_id": role_id,
                    "all_open_projects": True,
                }
            )
            grants += 1
        if n % 100 == 0:
            flush()
    flush()
    session.close()
    print(
        json.dumps(
            {
                "users": len(users),
                "created": created,
                "updated": updated,
                "memberships": memberships,
                "grants": grants,
                "seconds": time.monotonic() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
