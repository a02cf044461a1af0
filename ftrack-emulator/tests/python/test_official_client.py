"""Drives the official ftrack-python-api client against the emulator.

Run by ftrack-emulator/tests/official_client.rs, which starts an emulator in-process and
passes FTRACK_SERVER / FTRACK_API_USER / FTRACK_API_KEY. The emulator must behave like
an ftrack server for everything the sync relies on; these tests use the client exactly
as an ftrack user would, with no emulator-specific calls except the admin reset/counters.
"""

import os

import ftrack_api
import ftrack_api.exception
import pytest
import requests

SERVER = os.environ["FTRACK_SERVER"]
API_USER = os.environ["FTRACK_API_USER"]
API_KEY = os.environ["FTRACK_API_KEY"]


def new_session(api_key=API_KEY, **kwargs):
    return ftrack_api.Session(
        server_url=SERVER,
        api_user=API_USER,
        api_key=api_key,
        plugin_paths=[],
        auto_connect_event_hub=False,
        schema_cache_path=False,
        **kwargs,
    )


def counters():
    return requests.get(SERVER + "/_emulator/counters", timeout=10).json()


@pytest.fixture
def session():
    requests.post(SERVER + "/_emulator/reset", timeout=10).raise_for_status()
    s = new_session()
    yield s
    s.close()


def test_startup_and_api_user(session):
    assert session.server_information["version"]
    me = session.query('User where username is "{0}"'.format(API_USER)).one()
    assert me["is_active"] is True
    assert me["user_type"]["name"] == "ftrack"


def build_studio(session):
    alice = session.create("User", {"username": "alice", "email": "alice@studio.test",
                                    "first_name": "Alice", "last_name": "A"})
    bob = session.create("User", {"username": "bob", "email": "bob@studio.test"})
    carol = session.create("User", {"username": "carol", "is_active": False})
    artists = session.create("Group", {"name": "artists", "local": False})
    leads = session.create("Group", {"name": "leads", "local": False, "parent": artists})
    session.commit()
    session.create("Membership", {"user": alice, "group": artists})
    session.create("Membership", {"user": bob, "group": artists})
    session.create("Membership", {"user_id": alice["id"], "group_id": leads["id"]})
    supervisor = session.create("SecurityRole", {"name": "Supervisor", "type": "PROJECT"})
    api_role = session.create("SecurityRole", {"name": "API Runner", "type": "API"})
    project_schema = session.query("select id, name from ProjectSchema").first()
    show = session.create("Project", {"name": "show1", "full_name": "Show One",
                                      "project_schema": project_schema})
    secret = session.create("Project", {"name": "secret_show", "full_name": "Secret Show",
                                        "project_schema": project_schema, "is_private": True})
    session.commit()
    usr_all = session.create("UserSecurityRole", {
        "user": alice, "security_role": supervisor, "is_all_open_projects": True})
    usr_proj = session.create("UserSecurityRole", {"user": bob, "security_role": supervisor})
    session.commit()
    session.create("UserSecurityRoleProject", {
        "user_security_role": usr_proj, "project": show})
    alice["metadata"]["ldap2ftrack.id"] = "guid-alice"
    session.commit()
    return dict(alice=alice, bob=bob, carol=carol, artists=artists, leads=leads,
                supervisor=supervisor, api_role=api_role, show=show, secret=secret,
                usr_all=usr_all, usr_proj=usr_proj)


def test_create_and_read_back_in_a_fresh_session(session):
    w = build_studio(session)
    s2 = new_session()
    alice = s2.query('User where username is "alice"').one()
    assert alice["email"] == "alice@studio.test"
    assert dict(alice["metadata"]) == {"ldap2ftrack.id": "guid-alice"}
    groups = sorted(m["group"]["name"] for m in alice["memberships"])
    assert groups == ["artists", "leads"]
    leads = s2.get("Group", w["leads"]["id"])
    assert leads["parent"]["name"] == "artists"
    artists = s2.query('Group where name is "artists"').one()
    assert [c["name"] for c in artists["children"]] == ["leads"]
    roles = s2.query(
        "select user.username, security_role.name, is_all_open_projects, "
        "user_security_role_projects.project.name from UserSecurityRole").all()
    by_user = {r["user"]["username"]: r for r in roles}
    assert by_user["alice"]["is_all_open_projects"] is True
    assert by_user["alice"]["security_role"]["name"] == "Supervisor"
    assert by_user["bob"]["is_all_open_projects"] is False
    assert [p["project"]["name"] for p in by_user["bob"]["user_security_role_projects"]] == ["show1"]
    # Metadata queried directly, as the sync reads it.
    md = s2.query('select key, value, parent_id from Metadata where parent_id in ({0})'.format(
        alice["id"])).all()
    assert [(m["key"], m["value"]) for m in md] == [("ldap2ftrack.id", "guid-alice")]
    s2.close()


def test_queries_with_filters_paths_has_and_any(session):
    build_studio(session)
    q = lambda e: sorted(u["username"] for u in session.query(e).all())
    assert q('select username from User where is_active is False') == ["carol"]
    assert q("select username from User where email like '%@studio.test'") == ["alice", "bob"]
    assert q('select username from User where memberships any (group.name is "leads")') == ["alice"]
    assert q('select username from User where memberships.group.name is "artists"') == ["alice", "bob"]
    assert q('select username from User where user_security_roles any '
             '(security_role.name is "Supervisor" and is_all_open_projects is True)') == ["alice"]
    assert q('select username from User where metadata any (key is "ldap2ftrack.id")') == ["alice"]
    assert q('select username from User where not memberships any () and username != "{0}"'.format(
        API_USER)) == ["carol"]
    assert q('select username from User where username in ("alice", "carol")') == ["alice", "carol"]
    groups = session.query('select name from Group where parent has (name is "artists")').all()
    assert [g["name"] for g in groups] == ["leads"]
    first = session.query(
        'select username from User where username in ("bob", "alice") order by username').first()
    assert first["username"] == "alice"


def test_paging_over_more_than_500_rows(session):
    for i in range(650):
        session.create("User", {"username": "bulk{0:04d}".format(i)})
    session.commit()
    before = counters()
    users = session.query('select username from User where username like "bulk%"').all()
    after = counters()
    assert len(users) == 650
    assert len({u["username"] for u in users}) == 650
    assert after["queries"]["User"] - before["queries"].get("User", 0) == 2  # pages of 500
    it = session.query('select username from User where username like "bulk%" order by username desc')
    assert next(iter(it))["username"] == "bulk0649"


def test_update_is_active_and_delete_membership(session):
    w = build_studio(session)
    w["bob"]["is_active"] = False
    session.commit()
    membership = session.query(
        'Membership where user.username is "alice" and group.name is "leads"').one()
    session.delete(membership)
    session.commit()
    s2 = new_session()
    assert s2.query('User where username is "bob"').one()["is_active"] is False
    alice = s2.query('User where username is "alice"').one()
    assert [m["group"]["name"] for m in alice["memberships"]] == ["artists"]
    del alice["metadata"]["ldap2ftrack.id"]
    s2.commit()
    assert s2.query('Metadata where parent_id is "{0}"'.format(alice["id"])).all() == []
    s2.close()


def role_op(action, user, role, **scope):
    op = {"action": action, "user_id": user["id"], "role_id": role["id"]}
    op.update(scope)
    return op


def test_security_role_flow_through_call(session):
    w = build_studio(session)
    carol, role = w["carol"], w["supervisor"]
    show, secret = w["show"], w["secret"]

    # A grant needs the role first: ftrack answers NotFoundError.
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.call([role_op("grant_user_security_role_project", carol, role,
                              project_id=show["id"])])
    assert "NotFoundError" in str(err.value)
    assert "does not have the security role" in str(err.value)
    # Only PROJECT roles are given to users per project.
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.call([role_op("add_user_security_role", carol, w["api_role"])])
    assert "ValidationError" in str(err.value) and '"API"' in str(err.value)

    result = session.call([
        role_op("add_user_security_role", carol, role),
        role_op("grant_user_security_role_project", carol, role, all_open_projects=True),
        role_op("grant_user_security_role_project", carol, role, project_id=show["id"]),
        role_op("grant_user_security_role_project", carol, role, project_id=secret["id"]),
    ])
    assert [r["action"] for r in result] == [
        "add_user_security_role"] + ["grant_user_security_role_project"] * 3
    assert result[0]["data"]["is_all_open_projects"] is False

    def scopes():
        s = new_session()
        usr = s.query('select is_all_open_projects, security_role.name from UserSecurityRole '
                      'where user.username is "carol"').all()
        rows = s.query('select project.name, project.is_private from UserSecurityRoleProject '
                       'where user_security_role.user.username is "carol"').all()
        out = ([(u["security_role"]["name"], u["is_all_open_projects"]) for u in usr],
               sorted((r["project"]["name"], r["project"]["is_private"]) for r in rows))
        s.close()
        return out

    assert scopes() == ([("Supervisor", True)],
                        [("secret_show", True), ("show1", False)])
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.call([role_op("grant_user_security_role_project", carol, role,
                              project_id=show["id"])])
    assert "DuplicateEntryError" in str(err.value)

    session.call([role_op("revoke_user_security_role_project", carol, role,
                          project_id=show["id"])])
    assert scopes() == ([("Supervisor", True)], [("secret_show", True)])

    session.call([role_op("remove_user_security_role", carol, role)])
    assert scopes() == ([], [])
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.call([role_op("remove_user_security_role", carol, role)])
    assert "does not have the security role" in str(err.value)


def test_project_needs_a_project_schema(session):
    project_schema = session.query("select id, name from ProjectSchema").first()
    assert project_schema["name"] == "VFX Scheme"
    session.create("Project", {"name": "no_schema", "full_name": "No Schema"})
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.commit()
    assert "ValidationError" in str(err.value) and "project_schema" in str(err.value)
    session.rollback()
    session.create("Project", {"name": "open_show", "full_name": "Open Show",
                               "project_schema": project_schema})
    session.create("Project", {"name": "private_show", "full_name": "Private Show",
                               "project_schema": project_schema, "is_private": True})
    session.commit()
    s2 = new_session()
    projects = s2.query("select name, is_private, status, project_schema.name from Project").all()
    got = sorted((p["name"], p["is_private"], p["project_schema"]["name"]) for p in projects)
    assert got == [("open_show", False, "VFX Scheme"), ("private_show", True, "VFX Scheme")]
    assert s2.query("Project where is_private is True").one()["name"] == "private_show"
    s2.close()


def test_security_role_type_is_readable(session):
    build_studio(session)
    s2 = new_session()
    roles = s2.query("select id, name, type from SecurityRole").all()
    assert {r["name"]: r["type"] for r in roles} == {"Supervisor": "PROJECT", "API Runner": "API"}
    assert [r["name"] for r in s2.query('SecurityRole where type is "PROJECT"').all()] == [
        "Supervisor"]
    s2.close()


def test_duplicate_username_is_rejected(session):
    session.create("User", {"username": "dave"})
    session.commit()
    session.create("User", {"username": "dave"})
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.commit()
    assert "DuplicateEntryError" in str(err.value)
    session.rollback()


def test_bad_query_is_a_server_error(session):
    with pytest.raises(ftrack_api.exception.ServerError):
        session.query("User where (username is").all()
    with pytest.raises(ftrack_api.exception.ServerError):
        session.query("select shoe_size from User").all()
    # The session still works afterwards.
    assert session.query("User").first() is not None


def test_wrong_key_is_refused():
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        new_session(api_key="not-the-key")
    assert "InvalidCredentialsError" in str(err.value)


def test_failed_commit_rolls_back_the_whole_batch(session):
    session.create("User", {"username": "erin"})
    session.commit()
    session.create("User", {"username": "frank"})
    session.create("Group", {"name": "editors"})
    session.create("User", {"username": "erin"})  # duplicate: the batch must fail whole
    with pytest.raises(ftrack_api.exception.ServerError):
        session.commit()
    session.rollback()
    s2 = new_session()
    assert s2.query('User where username is "frank"').first() is None
    assert s2.query('Group where name is "editors"').first() is None
    s2.close()


def test_strict_mode_gets_error_status():
    s = new_session(strict_api=True)
    s.create("User", {"username": API_USER})
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        s.commit()
    assert "DuplicateEntryError" in str(err.value)
    s.rollback()
    s.close()


def test_metadata_on_a_loaded_user_and_value_changes(session):
    session.create("User", {"username": "gina"})
    session.commit()
    s2 = new_session()
    gina = s2.query('User where username is "gina"').one()
    assert dict(gina["metadata"]) == {}
    gina["metadata"]["a"] = "1"
    gina["metadata"]["b"] = "2"
    s2.commit()
    assert dict(gina["metadata"]) == {"a": "1", "b": "2"}
    gina["metadata"]["a"] = "3"
    s2.commit()
    s3 = new_session()
    assert dict(s3.query('User where username is "gina"').one()["metadata"]) == {"a": "3", "b": "2"}
    s2.close()
    s3.close()


def test_ensure_and_collection_append(session):
    g1 = session.ensure("Group", {"name": "ensured", "local": False})
    g2 = session.ensure("Group", {"name": "ensured", "local": False})
    assert g1["id"] == g2["id"]
    hank = session.create("User", {"username": "hank"})
    session.commit()
    membership = session.create("Membership", {"user": hank, "group": g1})
    hank["memberships"].append(membership)
    session.commit()
    s2 = new_session()
    group = s2.query('Group where name is "ensured"').one()
    assert [m["user"]["username"] for m in group["memberships"]] == ["hank"]
    users = s2.query("select id from User").all()
    s2.populate(users, "username, email")
    assert "hank" in [u["username"] for u in users]
    s2.delete(s2.query('User where username is "hank"').one())
    s2.commit()
    assert s2.query('Membership where group.name is "ensured"').all() == []
    s2.close()


# Values with quotes and backslashes. ftrack-python-api has no quoting helper: users put
# values in the expression themselves ('User where username is "{0}"'.format(...)), and
# its own ensure() wraps a string in "..." as it is. ftrack's JavaScript client
# (source/session.ts, `expression`) puts a backslash before each quote of a value; the
# emulator reads \" \' and \\ inside either quote style (README, query language).
AWKWARD = "o\"brien's\\x"  # o"brien's\x


def escaped(value):
    """value, ready to stand between quotes of either kind in a query."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


def test_username_with_quotes_and_a_backslash_is_found_again(session):
    user = session.create("User", {"username": AWKWARD, "email": "ob@studio.test"})
    decoy = session.create("User", {"username": "o"})
    session.commit()
    s2 = new_session()
    for expression in (
        'select username, email from User where username is "{0}"',
        "select username, email from User where username is '{0}'",
        'select username from User where username in ("{0}", "nobody")',
    ):
        found = s2.query(expression.format(escaped(AWKWARD))).all()
        assert [u["id"] for u in found] == [user["id"]], expression
        assert found[0]["username"] == AWKWARD
    # The client's own queries by id (get, auto-populate) bring the value back unchanged.
    s3 = new_session()
    again = s3.get("User", user["id"])
    assert again["username"] == AWKWARD
    assert again["email"] == "ob@studio.test"
    # An escaped quote stays inside the value: no `or` slips into the expression.
    sneaky = 'x" or username is "o'
    assert s2.query('User where username is "{0}"'.format(escaped(sneaky))).all() == []
    assert s2.query('User where username is "o"').one()["id"] == decoy["id"]
    s2.close()
    s3.close()


def test_ensure_puts_values_in_unescaped(session):
    session.create("User", {"username": AWKWARD})
    session.commit()
    # ensure() writes username is "o"brien's\x", which is a ParseError: no second user.
    with pytest.raises(ftrack_api.exception.ServerError) as err:
        session.ensure("User", {"username": AWKWARD})
    assert "ParseError" in str(err.value)
    session.rollback()
    s2 = new_session()
    assert len(s2.query('select id from User where username like "o%"').all()) == 1
    # A value with only the other quote needs no escape, and ensure() finds it.
    first = session.ensure("User", {"username": "o'hara"})
    assert session.ensure("User", {"username": "o'hara"})["id"] == first["id"]
    s2.close()
