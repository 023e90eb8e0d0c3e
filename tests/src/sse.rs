//! Server-sent events as MCP's Streamable HTTP sends them (`event:`, `id:`, `data:` lines,
//! blank-line separated; multi-line data joined with `\n`).

use anyhow::{Context as _, Result};
use serde_json::Value;

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    /// The event's data as a JSON-RPC message.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.data)
            .with_context(|| format!("SSE data is not JSON: {:?}", self.data))
    }
}

/// Every event in `text`, in order. Events without data (comments, priming events) are kept,
/// so a test sees exactly what arrived.
pub fn parse(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut current = Event::default();
    let mut has_data = false;
    let mut touched = false;
    for line in text.split('\n').chain(std::iter::once("")) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if touched {
                events.push(std::mem::take(&mut current));
            }
            has_data = false;
            touched = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        touched = true;
        match field {
            "event" => current.event = Some(value.to_owned()),
            "id" => current.id = Some(value.to_owned()),
            "data" => {
                if has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_joined() {
        let text = "event: message\r\nid: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\nid: 2\ndata:\n\ndata: x\n";
        let events = parse(text);
        assert_eq!(
            events,
            vec![
                Event {
                    event: Some("message".into()),
                    id: Some("1".into()),
                    data: "{\"a\":\n1}".into()
                },
                Event {
                    event: None,
                    id: Some("2".into()),
                    data: String::new()
                },
                Event {
                    event: None,
                    id: None,
                    data: "x".into()
                },
            ]
        );
        assert_eq!(events[0].json().unwrap()["a"], 1);
    }
}
