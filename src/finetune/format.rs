//! The row formats of training files: `chat` (`{"messages": [...]}`, what
//! OpenAI, Azure OpenAI, TRL and most providers take), `alpaca` and
//! `sharegpt` (LLaMA-Factory's two dataset formats). Every format is
//! written from, and read back into, one conversation of messages.

use crate::llm::Message;
use serde_json::{Value, json};

/// How a training row is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `{"messages": [{"role": ..., "content": ...}, ...]}`.
    Chat,
    /// `{"system", "instruction", "input", "output", "history"}`: the last
    /// user turn and its answer, earlier turns as `history` pairs.
    Alpaca,
    /// `{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}]}`.
    Sharegpt,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Chat => "chat",
            Format::Alpaca => "alpaca",
            Format::Sharegpt => "sharegpt",
        }
    }

    /// The format of a row, by its keys.
    pub fn detect(row: &Value) -> Option<Format> {
        let o = row.as_object()?;
        if o.contains_key("messages") {
            Some(Format::Chat)
        } else if o.contains_key("conversations") {
            Some(Format::Sharegpt)
        } else if o.contains_key("instruction") || o.contains_key("output") {
            Some(Format::Alpaca)
        } else {
            None
        }
    }
}

/// One conversation (system, user, ..., assistant) as a row of `format`.
pub fn to_row(format: Format, messages: &[Message]) -> Value {
    match format {
        Format::Chat => json!({ "messages": messages }),
        Format::Sharegpt => {
            let turns: Vec<Value> = messages
                .iter()
                .map(|m| {
                    let from = match m.role.as_str() {
                        "user" => "human",
                        "assistant" => "gpt",
                        other => other,
                    };
                    json!({ "from": from, "value": m.content })
                })
                .collect();
            json!({ "conversations": turns })
        }
        Format::Alpaca => {
            let system: Vec<&str> = messages
                .iter()
                .filter(|m| m.role == "system")
                .map(|m| m.content.as_str())
                .collect();
            let turns: Vec<&Message> = messages.iter().filter(|m| m.role != "system").collect();
            // Pairs of (user, assistant); the last pair is the example.
            let pairs: Vec<(&str, &str)> = turns
                .chunks(2)
                .map(|c| {
                    (
                        c[0].content.as_str(),
                        c.get(1).map(|m| m.content.as_str()).unwrap_or(""),
                    )
                })
                .collect();
            let (last, history) = pairs
                .split_last()
                .map(|(l, h)| (*l, h.to_vec()))
                .unwrap_or((("", ""), vec![]));
            let mut row = json!({
                "instruction": last.0,
                "input": "",
                "output": last.1,
                "system": system.join("\n\n"),
            });
            if !history.is_empty() {
                row["history"] = json!(history.iter().map(|(u, a)| json!([u, a])).collect::<Vec<_>>());
            }
            row
        }
    }
}

/// A row of any format back as chat messages (`{"role", "content"}` JSON
/// values, unchecked: [`super::check`] checks them).
pub fn to_chat(row: &Value) -> Option<Value> {
    match Format::detect(row)? {
        Format::Chat => Some(row.clone()),
        Format::Sharegpt => {
            let turns = row.get("conversations")?.as_array()?;
            let messages: Vec<Value> = turns
                .iter()
                .map(|t| {
                    let role = match t.get("from").and_then(Value::as_str) {
                        Some("human") => Value::from("user"),
                        Some("gpt") => Value::from("assistant"),
                        Some(other) => Value::from(other),
                        None => Value::Null,
                    };
                    json!({ "role": role, "content": t.get("value").cloned().unwrap_or(Value::Null) })
                })
                .collect();
            Some(json!({ "messages": messages }))
        }
        Format::Alpaca => {
            let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut messages = Vec::new();
            if !text("system").is_empty() {
                messages.push(json!({"role": "system", "content": text("system")}));
            }
            for pair in row.get("history").and_then(Value::as_array).into_iter().flatten() {
                messages.push(json!({"role": "user", "content": pair.get(0).cloned().unwrap_or(Value::Null)}));
                messages.push(json!({"role": "assistant", "content": pair.get(1).cloned().unwrap_or(Value::Null)}));
            }
            let user = [text("instruction"), text("input")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
            messages.push(json!({"role": "user", "content": user}));
            messages.push(json!({"role": "assistant", "content": text("output")}));
            Some(json!({ "messages": messages }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_reads_back_as_the_conversation_it_was_written_from() {
        let conversation = vec![
            Message::system("You write SQLite."),
            Message::user("Schema ... How many singers?"),
            Message::assistant("```sql\nSELECT count(*) FROM singer\n```"),
        ];
        for format in [Format::Chat, Format::Alpaca, Format::Sharegpt] {
            let row = to_row(format, &conversation);
            assert_eq!(Format::detect(&row), Some(format));
            let back: Vec<Message> = serde_json::from_value(to_chat(&row).unwrap()["messages"].clone()).unwrap();
            assert_eq!(back, conversation, "{}", format.name());
        }
        // LLaMA-Factory's alpaca keys.
        let row = to_row(Format::Alpaca, &conversation);
        assert_eq!(row["instruction"], "Schema ... How many singers?");
        assert_eq!(row["system"], "You write SQLite.");
        assert_eq!(
            to_row(Format::Sharegpt, &conversation)["conversations"][2]["from"],
            "gpt"
        );
    }
}
