//! The event envelope every ftrack client publishes and receives: exactly `id`, `topic`,
//! `data`, `source`, `target`, `sent` and `inReplyToEvent` on the wire (the official Python
//! client drops an event with any other top-level key, so none is ever added).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub topic: String,
    #[serde(default = "empty_object")]
    pub data: Value,
    #[serde(default = "empty_object")]
    pub source: Value,
    /// An expression on the receiving subscriber's metadata (`id=…`); empty: everyone.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub sent: Value,
    #[serde(rename = "inReplyToEvent", default)]
    pub in_reply_to_event: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Event {
    /// A new event on `topic` with `data`, a fresh id and no target.
    pub fn new(topic: impl Into<String>, data: Value) -> Event {
        Event {
            id: uuid::Uuid::new_v4().simple().to_string(),
            topic: topic.into(),
            data,
            source: empty_object(),
            target: String::new(),
            sent: Value::Null,
            in_reply_to_event: None,
        }
    }

    /// The reply to `self` from the subscriber described by `subscriber`: targeted at the
    /// publisher's hub (`id=<source.id>`), as the official clients reply.
    pub fn reply(&self, subscriber: &Value, data: Value) -> Event {
        let publisher = self
            .source
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Event {
            target: format!("id={publisher}"),
            in_reply_to_event: Some(self.id.clone()),
            source: subscriber.clone(),
            ..Event::new("ftrack.meta.reply", data)
        }
    }

    /// Who published the event, as its source says (`source.user.username`), if it says.
    pub fn username(&self) -> Option<&str> {
        self.source
            .pointer("/user/username")
            .and_then(Value::as_str)
    }

    /// The event as the JSON value expressions are matched against.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_exactly_the_seven_keys() {
        let event = Event::new("ldap2ftrack.sync.applied", json!({"created": 2}));
        let value = serde_json::to_value(&event).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "data",
                "id",
                "inReplyToEvent",
                "sent",
                "source",
                "target",
                "topic"
            ]
        );
        assert_eq!(event.id.len(), 32);
    }

    #[test]
    fn a_reply_targets_the_publishers_hub() {
        let mut asked = Event::new("ftrack.action.discover", json!({}));
        asked.source = json!({"id": "hub-1", "user": {"username": "jane"}});
        let reply = asked.reply(&json!({"id": "sub-9"}), json!({"items": []}));
        assert_eq!(reply.topic, "ftrack.meta.reply");
        assert_eq!(reply.target, "id=hub-1");
        assert_eq!(reply.in_reply_to_event.as_deref(), Some(asked.id.as_str()));
        assert_eq!(reply.source, json!({"id": "sub-9"}));
        assert_eq!(asked.username(), Some("jane"));
    }

    #[test]
    fn missing_keys_take_their_defaults() {
        let event: Event = serde_json::from_str(r#"{"id":"x","topic":"t"}"#).unwrap();
        assert_eq!(event.data, json!({}));
        assert_eq!(event.target, "");
        assert_eq!(event.in_reply_to_event, None);
    }
}
