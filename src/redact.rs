//! Turning untrusted server text into something safe to keep in an error or a log line.

use std::borrow::Cow;

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
pub(crate) struct Secrets<'a>(Vec<Cow<'a, str>>);

impl<'a> Secrets<'a> {
    /// Adds a secret, with the encoded forms it takes in a form body or a URL.
    pub(crate) fn add(&mut self, value: &'a str) {
        // Very short values would redact ordinary words; they are not worth hiding by text match.
        if value.len() < 4 {
            return;
        }
        let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        if form != value {
            let percent = form.replace('+', "%20");
            if percent != form {
                self.0.push(Cow::Owned(percent));
            }
            self.0.push(Cow::Owned(form));
        }
        self.0.push(Cow::Borrowed(value));
    }

    /// Adds a derived secret, such as the base64 credentials of a Basic header.
    pub(crate) fn add_owned(&mut self, value: String) {
        if value.len() >= 4 {
            self.0.push(Cow::Owned(value));
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest first, so a secret that contains another is hidden whole.
        let mut secrets: Vec<&str> = self.0.iter().map(|s| s.as_ref()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
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
        // Broken or cut-off JSON, a form body, `key: value` text: redact by shape instead.
        Err(_) => redact_text(&text),
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

/// Redacts the value after every sensitive-looking name followed by `:` or `=` (optionally
/// quoted), for bodies that are not valid JSON: `{"access_token":"..."` cut off, or
/// `access_token=...&...`. Quoted values end at their closing quote, `{...}`/`[...]` at the
/// matching bracket, bare values at a delimiter. Indices only ever stop at ASCII bytes or the
/// end, so every slice is on a character boundary.
fn redact_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let word = is_word(bytes[i]);
        while i < bytes.len() && is_word(bytes[i]) == word {
            i += 1;
        }
        out.push_str(&text[start..i]);
        if !word || !is_sensitive_member(&text[start..i]) {
            continue;
        }
        let mut j = i;
        if j < bytes.len() && matches!(bytes[j], b'"' | b'\'') {
            j += 1;
        }
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        if j >= bytes.len() || !matches!(bytes[j], b':' | b'=') {
            continue;
        }
        j += 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        let (value_start, value_end) = value_span(bytes, j);
        if value_end > value_start {
            out.push_str(&text[i..value_start]);
            out.push_str(REDACTED);
            i = value_end;
        }
    }
    out
}

/// Where the value starting at `at` begins and ends (quotes excluded, brackets included).
fn value_span(bytes: &[u8], at: usize) -> (usize, usize) {
    match bytes.get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let mut k = at + 1;
            while k < bytes.len() && bytes[k] != quote {
                k += if bytes[k] == b'\\' { 2 } else { 1 };
            }
            (at + 1, k.min(bytes.len()))
        }
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            for (k, b) in bytes.iter().enumerate().skip(at) {
                match b {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return (at, k + 1);
                        }
                    }
                    _ => {}
                }
            }
            (at, bytes.len())
        }
        _ => {
            let end = bytes[at..]
                .iter()
                .position(|b| b"&,;}]<>\"' \t\r\n".contains(b))
                .map_or(bytes.len(), |p| at + p);
            (at, end)
        }
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
    fn token_values_are_redacted_in_bodies_that_are_not_json() {
        for body in [
            r#"{"access_token": "AT-1 2", "refresh_token":"RT-3\"4", "#,
            "access_token=AT-1%202&token_type=bearer&refresh_token=RT-3",
            "<p>refresh_token: RT-3</p> access_token = {\"v\":\"AT-1\"}",
            "x_api_key='AT-1' ok",
        ] {
            let s = snippet(body.as_bytes(), &Secrets::default());
            assert!(!s.contains("AT-1") && !s.contains("RT-3"), "{s}");
            assert!(s.contains(REDACTED), "{s}");
        }
        let s = snippet("a=1&code=".as_bytes(), &Secrets::default());
        assert_eq!(s, "a=1&code=");
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
