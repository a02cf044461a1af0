"""Drives the official ftrack-python-api event hub against the emulator's hub.

Run by ftrack-emulator/tests/official_client.rs together with test_official_client.py.
The client is used as an ftrack user would use it (connect, subscribe, publish, replies,
actions); the only emulator-specific calls are the admin endpoints under
/_emulator/hub/ that let a test wait until the hub has registered a subscription and
read what it recorded.
"""

import logging
import os
import time

import ftrack_api
import ftrack_api.event.hub
import ftrack_api.exception
import pytest
import requests
from ftrack_api.event.base import Event

SERVER = os.environ["FTRACK_SERVER"]
API_USER = os.environ["FTRACK_API_USER"]
API_KEY = os.environ["FTRACK_API_KEY"]
TIMEOUT = 10


def new_session():
    return ftrack_api.Session(
        server_url=SERVER,
        api_user=API_USER,
        api_key=API_KEY,
        plugin_paths=[],
        auto_connect_event_hub=False,
        schema_cache_path=False,
    )


@pytest.fixture
def sessions():
    """Make connected sessions on demand; close them all afterwards."""
    requests.delete(SERVER + "/_emulator/hub/events", timeout=10).raise_for_status()
    made = []

    def make():
        s = new_session()
        s.event_hub.connect()
        assert s.event_hub.connected
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def pump(hubs, done, what):
    """Let each hub handle its events until done() holds."""
    deadline = time.time() + TIMEOUT
    while not done():
        assert time.time() < deadline, "timed out waiting for " + what
        for hub in hubs:
            hub.wait(0.05)


def hub_get(path):
    return requests.get(SERVER + "/_emulator/hub/" + path, timeout=10).json()


def wait_for_subscription(subscription, count=1):
    """Wait until the hub has registered `count` subscribers with this expression."""
    deadline = time.time() + TIMEOUT
    while True:
        found = [s for s in hub_get("subscribers") if s["subscription"] == subscription]
        if len(found) >= count:
            return found
        assert time.time() < deadline, "hub never registered " + subscription
        time.sleep(0.02)


def recorded(topic):
    return [e for e in hub_get("events") if e["event"]["topic"] == topic]


def test_connect_subscribe_publish_receive(sessions):
    hub = sessions().event_hub
    received = []
    hub.subscribe("topic=ldap2ftrack.test.hello and data.n=1", received.append)
    hub.publish(Event("ldap2ftrack.test.hello", data={"n": "1", "who": "me"}))
    hub.publish(Event("ldap2ftrack.test.hello", data={"n": "2"}))
    pump([hub], lambda: received, "the published event")
    hub.wait(0.3)
    assert [e["data"] for e in received] == [{"n": "1", "who": "me"}]
    event = received[0]
    assert event["source"]["id"] == hub.id
    assert event["source"]["user"] == {"username": API_USER}
    assert event["target"] == ""
    assert event["in_reply_to_event"] is None
    assert event["sent"] is None
    # Delivered back to its publisher only when a subscription matched.
    assert [e["delivered_to"] for e in recorded("ldap2ftrack.test.hello")] == [1, 0]


def test_events_reach_other_sessions(sessions):
    listener = sessions().event_hub
    talker = sessions().event_hub
    heard = []
    listener.subscribe("topic=ldap2ftrack.test.*", heard.append)
    wait_for_subscription("topic=ldap2ftrack.test.*")
    talker.publish(Event("ldap2ftrack.test.news", data={"headline": "sync done"}))
    pump([listener, talker], lambda: heard, "the other session's event")
    assert heard[0]["data"] == {"headline": "sync done"}
    assert heard[0]["source"]["id"] == talker.id


def test_reply_round_trip(sessions):
    provider = sessions().event_hub
    caller = sessions().event_hub
    calls = []

    def ping(event):
        calls.append(event)
        return {"pong": event["data"]["value"]}

    provider_id = provider.subscribe("topic=ldap2ftrack.test.ping", ping)
    wait_for_subscription("topic=ldap2ftrack.test.ping")
    replies = []
    question = Event("ldap2ftrack.test.ping", data={"value": 42})
    caller.publish(question, on_reply=replies.append)
    pump([provider, caller], lambda: replies, "a reply")
    assert len(calls) == 1
    reply = replies[0]
    assert reply["topic"] == "ftrack.meta.reply"
    assert reply["data"] == {"pong": 42}
    assert reply["in_reply_to_event"] == question["id"]
    assert reply["target"] == "id={0}".format(caller.id)
    assert reply["source"]["id"] == provider_id
    # The reply was targeted: only the caller's connection got it.
    assert [e["delivered_to"] for e in recorded("ftrack.meta.reply")] == [1]


def test_action_discover_and_launch(sessions):
    """Two action providers and a UI-like caller: discover, collect items, launch one."""
    ui = sessions().event_hub
    launched = []

    def provider(session, identifier, label):
        hub = session.event_hub

        def discover(event):
            assert event["data"]["selection"][0]["entityType"] == "User"
            return {"items": [{"label": label, "actionIdentifier": identifier,
                               "variant": "now"}]}

        def launch(event):
            launched.append((identifier, event["data"]))
            return {"success": True, "message": "{0} started".format(label)}

        hub.subscribe("topic=ftrack.action.discover", discover)
        hub.subscribe("topic=ftrack.action.launch and data.actionIdentifier={0}".format(
            identifier), launch)
        return hub

    hubs = [provider(sessions(), "ldap2ftrack.sync", "Sync users"),
            provider(sessions(), "ldap2ftrack.report", "Report")]
    wait_for_subscription("topic=ftrack.action.discover", count=2)
    wait_for_subscription("topic=ftrack.action.launch and data.actionIdentifier=ldap2ftrack.sync")
    selection = [{"entityId": "u1", "entityType": "User"}]
    items = []
    ui.publish(Event("ftrack.action.discover", data={"selection": selection}),
               on_reply=lambda reply: items.extend(reply["data"]["items"]))
    pump(hubs + [ui], lambda: len(items) == 2, "two discover replies")
    assert sorted(i["label"] for i in items) == ["Report", "Sync users"]

    chosen = next(i for i in items if i["actionIdentifier"] == "ldap2ftrack.sync")
    results = []
    ui.publish(Event("ftrack.action.launch", data=dict(chosen, selection=selection)),
               on_reply=lambda reply: results.append(reply["data"]))
    pump(hubs + [ui], lambda: results, "the launch reply")
    for hub in hubs + [ui]:
        hub.wait(0.2)
    assert results == [{"success": True, "message": "Sync users started"}]
    assert [identifier for identifier, _ in launched] == ["ldap2ftrack.sync"]
    assert launched[0][1]["selection"] == selection


def test_bad_credentials_are_refused():
    hub = ftrack_api.event.hub.EventHub(SERVER, API_USER, "wrong-key")
    with pytest.raises(ftrack_api.exception.EventHubConnectionError) as err:
        hub.connect()
    assert "401" in str(err.value)
    assert not hub.connected


def test_a_subscription_the_hub_refuses_is_reported(sessions, caplog):
    """The Python grammar accepts `data..x`; the emulator refuses it (strict) and the
    client logs the refusal from the ack."""
    caplog.set_level(logging.WARNING, logger="ftrack_api.event.hub")
    hub = sessions().event_hub
    hub.subscribe("topic=x and data..y=1", lambda event: None)
    deadline = time.time() + TIMEOUT
    while not any("Server failed to subscribe" in r.getMessage() for r in caplog.records):
        assert time.time() < deadline, "no warning about the refused subscription"
        time.sleep(0.02)
    message = next(r.getMessage() for r in caplog.records
                   if "Server failed to subscribe" in r.getMessage())
    assert "empty part" in message
    assert hub.connected


def test_client_reconnects_after_a_hub_restart(sessions):
    hub = sessions().event_hub
    received = []
    hub.subscribe("topic=ldap2ftrack.test.after", received.append)
    first = wait_for_subscription("topic=ldap2ftrack.test.after")[0]["connection"]
    closed = requests.post(SERVER + "/_emulator/hub/restart", timeout=10).json()["closed"]
    assert closed >= 1
    # The client answers `0::` with a new handshake and re-sends its subscriptions.
    deadline = time.time() + TIMEOUT
    while True:
        subs = [s for s in hub_get("subscribers")
                if s["subscription"] == "topic=ldap2ftrack.test.after"]
        if subs and subs[0]["connection"] != first:
            break
        assert time.time() < deadline, "the client did not reconnect"
        time.sleep(0.05)
    hub.publish(Event("ldap2ftrack.test.after", data={"ok": "yes"}))
    pump([hub], lambda: received, "an event after the restart")
    assert received[0]["data"] == {"ok": "yes"}
