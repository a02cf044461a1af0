//! socket.io 0.9 frames as ftrack's event hub speaks them: `code:id:endpoint:data`. Only
//! what the hub sends or expects is named; anything else is kept as [`Frame::Other`] so a
//! server that says something new is logged and ignored, never fatal.

/// One frame received from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `0::` — the server is closing the connection.
    Disconnect,
    /// `1::` — the connection is open.
    Connect,
    /// `2::` — a heartbeat, to be answered.
    Heartbeat,
    /// `5:ID::{"name":…,"args":[…]}` — an event; the JSON text of the payload.
    Event(String),
    /// `6:::N+[…]` — the answer to the publish whose message id was `N`, and its data.
    Ack { id: u64, data: String },
    /// `7::…` — an error from the server.
    Error(String),
    /// A code this client does not use (`3`, `4`, `8`, …).
    Other(String),
}

/// Reads one websocket text message as a frame.
pub fn parse(text: &str) -> Result<Frame, String> {
    let mut parts = text.splitn(4, ':');
    let code = parts.next().unwrap_or_default();
    let _id = parts.next();
    let _endpoint = parts.next();
    let data = parts.next().unwrap_or_default();
    Ok(match code {
        "0" => Frame::Disconnect,
        "1" => Frame::Connect,
        "2" => Frame::Heartbeat,
        "5" => Frame::Event(data.to_string()),
        "6" => {
            // The ack's data is `N+[…]` (or `N` alone): the message id, then its arguments.
            let digits = data.bytes().take_while(u8::is_ascii_digit).count();
            let id = data[..digits]
                .parse()
                .map_err(|_| format!("an ack without a message id: {}", excerpt(text)))?;
            let rest = &data[digits..];
            let data = rest.strip_prefix('+').unwrap_or(rest).to_string();
            Frame::Ack { id, data }
        }
        "7" => Frame::Error(data.to_string()),
        _ => Frame::Other(excerpt(text)),
    })
}

/// The heartbeat answer (`2::`; the Python client sends `2:::`, the server takes both).
pub const HEARTBEAT: &str = "2::";

/// The frame that closes the connection from our side.
pub const DISCONNECT: &str = "0::";

/// An event frame asking for an acknowledgement under message id `id`.
pub fn event(id: u64, payload: &str) -> String {
    format!("5:{id}+::{payload}")
}

/// The start of `text`, for log lines about a frame that was not understood: frames carry
/// event data, which is not logged whole.
fn excerpt(text: &str) -> String {
    let end = text
        .char_indices()
        .nth(40)
        .map_or(text.len(), |(index, _)| index);
    format!(
        "{}{}",
        &text[..end],
        if end < text.len() { "…" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_frames_the_hub_sends() {
        assert_eq!(parse("0::").unwrap(), Frame::Disconnect);
        assert_eq!(parse("1::").unwrap(), Frame::Connect);
        assert_eq!(parse("2::").unwrap(), Frame::Heartbeat);
        assert_eq!(
            parse(r#"5:::{"name":"ftrack.event","args":[{"a":"b:c"}]}"#).unwrap(),
            Frame::Event(r#"{"name":"ftrack.event","args":[{"a":"b:c"}]}"#.to_string())
        );
        assert_eq!(
            parse(r#"6:::12+[{"success":true}]"#).unwrap(),
            Frame::Ack {
                id: 12,
                data: r#"[{"success":true}]"#.to_string()
            }
        );
        assert_eq!(
            parse("6:::3").unwrap(),
            Frame::Ack {
                id: 3,
                data: String::new()
            }
        );
        assert!(parse("6:::+[]").is_err());
        assert_eq!(parse("7:::bad").unwrap(), Frame::Error("bad".to_string()));
        assert!(matches!(parse("8::").unwrap(), Frame::Other(_)));
        assert!(matches!(parse("").unwrap(), Frame::Other(_)));
        let long = format!("9::{}", "x".repeat(100));
        let Frame::Other(shown) = parse(&long).unwrap() else {
            panic!()
        };
        assert!(shown.len() < 50, "{shown}");
    }

    #[test]
    fn writes_events_asking_for_an_ack() {
        assert_eq!(event(7, "{}"), "5:7+::{}");
    }
}
