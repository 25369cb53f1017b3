//! Turning untrusted server text into something safe to keep in an error or a log line.

use serde_json::Value;

/// The longest snippet of a response body kept in an error.
pub(crate) const SNIPPET_CHARS: usize = 200;
/// The longest `error_description` kept.
pub(crate) const DESCRIPTION_CHARS: usize = 300;

const REDACTED: &str = "[redacted]";

/// JSON members whose values are never kept, whatever the server put in them.
fn is_sensitive_member(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "code",
        "assertion",
        "verifier",
        "key",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Values the client itself sent (secret, password, refresh token, code...) that a hostile or
/// careless server might echo back.
#[derive(Default, Clone)]
pub(crate) struct Secrets<'a>(Vec<&'a str>);

impl<'a> Secrets<'a> {
    pub(crate) fn add(&mut self, value: &'a str) {
        // Very short values would redact ordinary words; they are not worth hiding by text match.
        if value.len() >= 4 {
            self.0.push(value);
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.0 {
            if out.contains(s) {
                out = out.replace(s, REDACTED);
            }
        }
        out
    }
}

/// A short, printable, redacted excerpt of a response body.
pub(crate) fn snippet(body: &[u8], secrets: &Secrets<'_>) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(mut v) => {
            redact_json(&mut v);
            v.to_string()
        }
        Err(_) => text.into_owned(),
    };
    clean(&secrets.scrub(&text), SNIPPET_CHARS)
}

/// Server-provided free text (an `error_description`), shortened and redacted.
pub(crate) fn server_text(text: &str, secrets: &Secrets<'_>) -> String {
    clean(&secrets.scrub(text), DESCRIPTION_CHARS)
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive_member(k) && !v.is_null() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Replaces control characters and cuts to `max` characters on a character boundary.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_that_look_secret_are_redacted() {
        let s = snippet(
            br#"{"access_token":"AT-123","nested":{"refresh_token":"RT"},"ok":1}"#,
            &Secrets::default(),
        );
        assert!(!s.contains("AT-123") && !s.contains("\"RT\""), "{s}");
        assert!(s.contains("\"ok\":1"));
    }

    #[test]
    fn echoed_secrets_are_redacted_in_plain_text() {
        let mut secrets = Secrets::default();
        secrets.add("hunter22");
        let s = snippet(b"<html>bad password hunter22</html>", &secrets);
        assert!(!s.contains("hunter22"));
    }

    #[test]
    fn snippets_are_short_and_printable() {
        let body = "é\r\n".repeat(10_000);
        let s = snippet(body.as_bytes(), &Secrets::default());
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
        assert!(!s.contains('\n') && !s.contains('\r'));
    }
}
