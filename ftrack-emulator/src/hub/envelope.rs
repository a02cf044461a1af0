//! The event envelope (`shared/ftrack-event-hub.md` §3) and the hub's own requests
//! (`ftrack.meta.subscribe` / `ftrack.meta.unsubscribe`).
//!
//! A published event may carry only `id`, `topic`, `data`, `source`, `target`, `sent` and
//! `inReplyToEvent` (the official Python client builds `Event(**payload)` from what it
//! receives, so any other key would make every Python receiver drop the event). `id` and
//! `topic` are required; the rest get their defaults (`{}`, `{}`, `""`, `null`, `null`),
//! so every delivered event has exactly the seven keys.

use super::expression::{self, Expr};
use serde_json::{Map, Value};

/// The seven envelope keys, as they travel on the wire.
pub const KEYS: [&str; 7] = [
    "id",
    "topic",
    "data",
    "source",
    "target",
    "sent",
    "inReplyToEvent",
];

pub const SUBSCRIBE: &str = "ftrack.meta.subscribe";
pub const UNSUBSCRIBE: &str = "ftrack.meta.unsubscribe";

/// A checked event: the full envelope and its parsed target (`None`: everyone).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event: Value,
    pub target: Option<Expr>,
}

impl Envelope {
    pub fn topic(&self) -> &str {
        self.event["topic"].as_str().unwrap_or_default()
    }
    pub fn data(&self) -> &Value {
        &self.event["data"]
    }
}

/// Check an event and fill in the defaults. The error says what is wrong.
pub fn check(event: Value) -> Result<Envelope, String> {
    let Value::Object(mut map) = event else {
        return Err("an event must be a JSON object".to_string());
    };
    if let Some(extra) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        let hint = if extra == "in_reply_to_event" {
            " (on the wire it is \"inReplyToEvent\")"
        } else {
            ""
        };
        return Err(format!(
            "an event has only the keys {}; {extra:?} is not one of them{hint}",
            KEYS.join(", ")
        ));
    }
    for key in ["id", "topic"] {
        match map.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => return Err(format!("the event's {key:?} is empty")),
            Some(other) => {
                return Err(format!(
                    "the event's {key:?} must be a string, not {}",
                    kind(other)
                ))
            }
            None => return Err(format!("the event has no {key:?}")),
        }
    }
    for key in ["data", "source"] {
        match map.get(key) {
            None => {
                map.insert(key.to_string(), Value::Object(Map::new()));
            }
            Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(format!(
                    "the event's {key:?} must be an object, not {}",
                    kind(other)
                ))
            }
        }
    }
    let target = match map.get("target") {
        None => {
            map.insert("target".to_string(), Value::String(String::new()));
            None
        }
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => {
            Some(expression::parse(t).map_err(|e| format!("the event's target is refused: {e}"))?)
        }
        Some(other) => {
            return Err(format!(
                "the event's \"target\" must be a string, not {}",
                kind(other)
            ))
        }
    };
    match map.get("sent") {
        None => {
            map.insert("sent".to_string(), Value::Null);
        }
        Some(Value::Null | Value::String(_) | Value::Number(_)) => {}
        Some(other) => {
            return Err(format!(
                "the event's \"sent\" must be null, a string or a number, not {}",
                kind(other)
            ))
        }
    }
    match map.get("inReplyToEvent") {
        None => {
            map.insert("inReplyToEvent".to_string(), Value::Null);
        }
        Some(Value::Null | Value::String(_)) => {}
        Some(other) => {
            return Err(format!(
                "the event's \"inReplyToEvent\" must be null or an event id, not {}",
                kind(other)
            ))
        }
    }
    Ok(Envelope {
        event: Value::Object(map),
        target,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A request to the hub itself.
#[derive(Debug, Clone)]
pub enum Meta {
    Subscribe {
        /// `data.subscriber`, `id` included.
        metadata: Value,
        id: String,
        text: String,
        expr: Expr,
    },
    Unsubscribe {
        id: String,
    },
}

/// `Some` for the hub's own topics, with what they ask or why they cannot be done.
pub fn meta(envelope: &Envelope) -> Option<Result<Meta, String>> {
    let topic = envelope.topic();
    if topic != SUBSCRIBE && topic != UNSUBSCRIBE {
        return None;
    }
    Some(meta_request(topic, envelope.data()))
}

fn meta_request(topic: &str, data: &Value) -> Result<Meta, String> {
    let metadata = match data.get("subscriber") {
        Some(m @ Value::Object(_)) => m.clone(),
        _ => {
            return Err(format!(
                "{topic} needs data.subscriber, an object with an \"id\""
            ))
        }
    };
    let id = match metadata.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Err(format!(
                "{topic} needs data.subscriber.id, a non-empty string"
            ))
        }
    };
    if topic == UNSUBSCRIBE {
        return Ok(Meta::Unsubscribe { id });
    }
    let text = match data.get("subscription") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(format!(
                "{topic} needs data.subscription, an expression string"
            ))
        }
    };
    let expr = expression::parse(&text)
        .map_err(|e| format!("Subscriber {id}: the subscription is refused: {e}"))?;
    Ok(Meta::Subscribe {
        metadata,
        id,
        text,
        expr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_defaults_to_exactly_seven_keys() {
        let env = check(json!({"id": "e1", "topic": "t"})).expect("valid");
        assert_eq!(
            env.event,
            json!({"id": "e1", "topic": "t", "data": {}, "source": {}, "target": "",
                   "sent": null, "inReplyToEvent": null})
        );
        assert!(env.target.is_none());
        let env = check(json!({"id": "e1", "topic": "t", "target": "id=abc"})).expect("valid");
        assert!(env.target.is_some());
    }

    #[test]
    fn refuses_malformed_envelopes() {
        for (event, needle) in [
            (json!([]), "JSON object"),
            (json!({"topic": "t"}), "no \"id\""),
            (json!({"id": "e"}), "no \"topic\""),
            (json!({"id": "", "topic": "t"}), "empty"),
            (json!({"id": 5, "topic": "t"}), "a number"),
            (
                json!({"id": "e", "topic": "t", "data": []}),
                "\"data\" must be an object",
            ),
            (
                json!({"id": "e", "topic": "t", "data": true}),
                "not a boolean",
            ),
            (
                json!({"id": "e", "topic": "t", "source": "me"}),
                "\"source\"",
            ),
            (json!({"id": "e", "topic": "t", "target": 1}), "\"target\""),
            (
                json!({"id": "e", "topic": "t", "target": "id="}),
                "target is refused",
            ),
            (
                json!({"id": "e", "topic": "t", "target": "  "}),
                "target is refused",
            ),
            (json!({"id": "e", "topic": "t", "sent": {}}), "\"sent\""),
            (
                json!({"id": "e", "topic": "t", "inReplyToEvent": 3}),
                "inReplyToEvent",
            ),
            (
                json!({"id": "e", "topic": "t", "in_reply_to_event": null}),
                "on the wire",
            ),
            (json!({"id": "e", "topic": "t", "extra": 1}), "\"extra\""),
        ] {
            let err = check(event.clone()).expect_err(&event.to_string());
            assert!(err.contains(needle), "{event}: {err}");
        }
    }

    #[test]
    fn reads_meta_requests() {
        let sub = check(json!({"id": "e", "topic": SUBSCRIBE,
            "data": {"subscriber": {"id": "s1", "applicationId": "x"},
                     "subscription": "topic=a"}}))
        .expect("valid");
        match meta(&sub) {
            Some(Ok(Meta::Subscribe {
                id, text, metadata, ..
            })) => {
                assert_eq!(id, "s1");
                assert_eq!(text, "topic=a");
                assert_eq!(metadata["applicationId"], "x");
            }
            other => panic!("{other:?}"),
        }
        let bad = check(json!({"id": "e", "topic": SUBSCRIBE,
            "data": {"subscriber": {"id": "s1"}, "subscription": "topic="}}))
        .expect("valid envelope");
        let err = meta(&bad).expect("meta").expect_err("bad subscription");
        assert!(err.contains("Subscriber s1"), "{err}");
        for data in [
            json!({}),
            json!({"subscriber": {}}),
            json!({"subscriber": {"id": 1}}),
            json!({"subscriber": {"id": "s"}}),
            json!({"subscriber": {"id": "s"}, "subscription": 1}),
        ] {
            let env = check(json!({"id": "e", "topic": SUBSCRIBE, "data": data})).expect("valid");
            assert!(meta(&env).expect("meta").is_err(), "{data}");
        }
        let unsub = check(json!({"id": "e", "topic": UNSUBSCRIBE,
            "data": {"subscriber": {"id": "s1"}}}))
        .expect("valid");
        assert!(matches!(meta(&unsub), Some(Ok(Meta::Unsubscribe { id })) if id == "s1"));
        let other = check(json!({"id": "e", "topic": "ftrack.meta.reply"})).expect("valid");
        assert!(meta(&other).is_none());
    }
}
