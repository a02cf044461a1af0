//! socket.io 0.9 frames as ftrack's clients use them (`shared/ftrack-event-hub.md` §2):
//! `code:id:endpoint[:data]`. The server sends `0::`, `1::`, `2::`, `5:::{event}` and
//! `6:::N+[ack]`; it accepts from a client only `0::` (leave), `2::`/`2:::` (heartbeat
//! answer) and `5:N+::{…}`/`5:::{…}` carrying `{"name": "ftrack.event", "args": [EVENT]}`.
//! Everything else is a protocol error (the emulator then closes the connection).

use serde_json::{json, Value};

/// Sent before the server closes a connection.
pub const DISCONNECT: &str = "0::";
/// Sent once the websocket is open.
pub const CONNECT: &str = "1::";
/// Sent every heartbeat interval; the client answers with `2::` or `2:::`.
pub const HEARTBEAT: &str = "2::";
/// The only event name ftrack's hub carries.
pub const EVENT_NAME: &str = "ftrack.event";

/// A frame received from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `0::`: the client leaves.
    Disconnect,
    /// `2::` or `2:::`.
    Heartbeat,
    /// `5:N+::{…}` (ack wanted for packet `N`) or `5:::{…}`; `event` is `args[0]`, not
    /// yet validated as an event.
    Event { ack: Option<u64>, event: Value },
}

/// Why a frame was refused; `ack` is the packet id when it could be read, so the
/// refusal can still be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub ack: Option<u64>,
    pub message: String,
}

fn refuse(ack: Option<u64>, message: impl Into<String>) -> FrameError {
    FrameError {
        ack,
        message: message.into(),
    }
}

/// Shorten client input quoted in a message.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(MAX).collect();
    format!("{head:?}… ({} bytes)", text.len())
}

/// Read one text frame from a client.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let mut parts = text.splitn(4, ':');
    let code = parts.next().unwrap_or_default();
    let (Some(id), Some(endpoint)) = (parts.next(), parts.next()) else {
        return Err(refuse(
            None,
            format!(
                "not a socket.io frame `code:id:endpoint[:data]`: {}",
                excerpt(text)
            ),
        ));
    };
    let data = parts.next();
    let ack = parse_id(id).map_err(|m| refuse(None, m))?;
    if !endpoint.is_empty() {
        return Err(refuse(
            ack,
            format!(
                "the hub has no endpoint {:?}; send frames to the default one (empty)",
                excerpt(endpoint)
            ),
        ));
    }
    let bare = |name: &str, frame: ClientFrame| {
        if ack.is_some() {
            Err(refuse(
                None,
                format!("a {name} frame carries no packet id: {}", excerpt(text)),
            ))
        } else if data.is_some_and(|d| !d.is_empty()) {
            Err(refuse(
                None,
                format!("a {name} frame carries no data: {}", excerpt(text)),
            ))
        } else {
            Ok(frame)
        }
    };
    match code {
        "0" => bare("disconnect", ClientFrame::Disconnect),
        "2" => bare("heartbeat", ClientFrame::Heartbeat),
        "5" => {
            let data = data.unwrap_or_default();
            let event = parse_event_payload(data).map_err(|m| refuse(ack, m))?;
            Ok(ClientFrame::Event { ack, event })
        }
        "1" | "3" | "4" | "6" | "7" => Err(refuse(
            None,
            format!(
                "frame code {code} is not accepted from a client (only 0 disconnect, 2 heartbeat and 5 event): {}",
                excerpt(text)
            ),
        )),
        _ => Err(refuse(
            None,
            format!("unknown frame code {:?}: {}", excerpt(code), excerpt(text)),
        )),
    }
}

/// The packet id: empty, or digits followed by `+` (ack with data, as ftrack's Python
/// client always asks). Digits without `+` are refused: no ftrack client sends them, and
/// the bare ack socket.io would answer (`6:::N`) stops the Python client's reader.
fn parse_id(id: &str) -> Result<Option<u64>, String> {
    if id.is_empty() {
        return Ok(None);
    }
    let Some(digits) = id.strip_suffix('+') else {
        return Err(format!(
            "packet id {} must be digits followed by `+` (an ack with data)",
            excerpt(id)
        ));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("packet id {} is not a number", excerpt(id)));
    }
    digits
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("packet id {} is out of range", excerpt(id)))
}

/// `{"name": "ftrack.event", "args": [EVENT]}` → `EVENT` (any JSON object; the envelope
/// is checked separately).
fn parse_event_payload(data: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(data).map_err(|e| {
        format!(
            "the event frame's data is not JSON ({e}): {}",
            excerpt(data)
        )
    })?;
    let Value::Object(mut payload) = value else {
        return Err(format!(
            "the event frame's data must be {{\"name\": \"{EVENT_NAME}\", \"args\": [EVENT]}}: {}",
            excerpt(data)
        ));
    };
    if let Some(extra) = payload.keys().find(|k| *k != "name" && *k != "args") {
        return Err(format!(
            "the event frame's data has an unknown key {extra:?} (only \"name\" and \"args\")"
        ));
    }
    match payload.get("name") {
        Some(Value::String(n)) if n == EVENT_NAME => {}
        other => {
            return Err(format!(
                "the event name must be \"{EVENT_NAME}\", not {}",
                other.map_or("missing".to_string(), |v| excerpt(&v.to_string()))
            ))
        }
    }
    match payload.remove("args") {
        Some(Value::Array(mut args)) if args.len() == 1 && args[0].is_object() => {
            Ok(args.remove(0))
        }
        _ => Err("\"args\" must be an array of exactly one event object".to_string()),
    }
}

/// `5:::{"name":"ftrack.event","args":[event]}`.
pub fn event_frame(event: &Value) -> String {
    format!("5:::{}", json!({"name": EVENT_NAME, "args": [event]}))
}

/// `6:::N+[payload]`.
pub fn ack_frame(id: u64, payload: &Value) -> String {
    format!("6:::{id}+{}", Value::Array(vec![payload.clone()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_ftrack_clients_send() {
        assert_eq!(parse_client_frame("2::"), Ok(ClientFrame::Heartbeat));
        assert_eq!(parse_client_frame("2:::"), Ok(ClientFrame::Heartbeat));
        assert_eq!(parse_client_frame("0::"), Ok(ClientFrame::Disconnect));
        let ev = r#"{"name":"ftrack.event","args":[{"topic":"t"}]}"#;
        assert_eq!(
            parse_client_frame(&format!("5:7+::{ev}")),
            Ok(ClientFrame::Event {
                ack: Some(7),
                event: json!({"topic": "t"})
            })
        );
        assert_eq!(
            parse_client_frame(&format!("5:::{ev}")),
            Ok(ClientFrame::Event {
                ack: None,
                event: json!({"topic": "t"})
            })
        );
        // A colon inside the JSON data is data.
        let ev2 = r#"{"name":"ftrack.event","args":[{"topic":"a:b"}]}"#;
        assert!(matches!(
            parse_client_frame(&format!("5:1+::{ev2}")),
            Ok(ClientFrame::Event { .. })
        ));
    }

    #[test]
    fn refuses_everything_else() {
        let ev = r#"{"name":"ftrack.event","args":[{"topic":"t"}]}"#;
        for (frame, needle, ack) in [
            ("", "not a socket.io frame", None),
            ("2", "not a socket.io frame", None),
            ("2:", "not a socket.io frame", None),
            ("hello", "not a socket.io frame", None),
            ("8::", "unknown frame code", None),
            ("25::", "unknown frame code", None),
            ("1::", "not accepted from a client", None),
            ("3:::hi", "not accepted", None),
            ("4:::{}", "not accepted", None),
            ("6:::1+[{}]", "not accepted", None),
            ("7:::x", "not accepted", None),
            ("2::/chat", "no endpoint", None),
            ("2:1+::", "no packet id", None),
            ("2:::x", "no data", None),
            ("5:1::{}", "followed by `+`", None),
            ("5:x+::{}", "not a number", None),
            ("5:+::{}", "not a number", None),
            ("5:99999999999999999999+::{}", "out of range", None),
            ("5:3+::", "not JSON", Some(3)),
            ("5:3+::{oops", "not JSON", Some(3)),
            ("5:3+::[]", "must be", Some(3)),
            (
                r#"5:3+::{"name":"other","args":[{}]}"#,
                "event name",
                Some(3),
            ),
            (r#"5:3+::{"args":[{}]}"#, "missing", Some(3)),
            (
                r#"5:3+::{"name":"ftrack.event","args":[]}"#,
                "exactly one",
                Some(3),
            ),
            (
                r#"5:3+::{"name":"ftrack.event","args":[{},{}]}"#,
                "exactly one",
                Some(3),
            ),
            (
                r#"5:3+::{"name":"ftrack.event","args":["x"]}"#,
                "exactly one",
                Some(3),
            ),
            (
                r#"5:3+::{"name":"ftrack.event","args":{}}"#,
                "exactly one",
                Some(3),
            ),
            (
                r#"5:3+::{"name":"ftrack.event","args":[{}],"x":1}"#,
                "unknown key",
                Some(3),
            ),
        ] {
            let err = parse_client_frame(frame).expect_err(frame);
            assert!(err.message.contains(needle), "{frame:?}: {}", err.message);
            assert_eq!(err.ack, ack, "{frame:?}");
        }
        let err = parse_client_frame(&format!("5::/x:{ev}")).expect_err("endpoint");
        assert!(err.message.contains("no endpoint"));
    }

    #[test]
    fn writes_server_frames() {
        assert_eq!(
            ack_frame(4, &json!({"success": true})),
            r#"6:::4+[{"success":true}]"#
        );
        let f = event_frame(&json!({"topic": "t"}));
        let data = f.strip_prefix("5:::").expect("event frame");
        let v: Value = serde_json::from_str(data).expect("json");
        assert_eq!(v, json!({"name": "ftrack.event", "args": [{"topic": "t"}]}));
        let long = "x".repeat(500);
        assert!(excerpt(&long).contains("500 bytes"));
    }
}
