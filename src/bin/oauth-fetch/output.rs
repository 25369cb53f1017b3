//! What goes on stdout for each URL: `STATUS URL` and the body (`--output text`), or one JSON
//! object a line for scripts (`--output json`): the URL, status, headers, body and what is
//! known about the token, never the token itself.

use std::time::SystemTime;

use oauth_layer::Token;
use serde_json::{Map, Value, json};

use crate::cli::Format;
use crate::events::one_line;

/// How one URL's exchange went, as far as the token goes.
pub(crate) struct TokenUse {
    /// Whether a request carried the token (it goes only to https and loopback http origins).
    pub(crate) sent: bool,
    /// Whether the request was sent again after a 401, with a renewed token.
    pub(crate) retried: bool,
    /// The token held after the exchange, for its metadata.
    pub(crate) token: Option<Token>,
}

/// Prints responses in the `--output` format.
pub(crate) struct Printer {
    pub(crate) format: Format,
}

impl Printer {
    /// Prints `response` to `url`; whether it was a 2xx and its body could be read.
    pub(crate) async fn response(
        &self,
        url: &str,
        response: reqwest::Response,
        token: TokenUse,
    ) -> bool {
        let status = response.status();
        match self.format {
            Format::Text => {
                println!("{} {url}", status.as_u16());
                match response.text().await {
                    Ok(body) if body.is_empty() || body.ends_with('\n') => print!("{body}"),
                    Ok(body) => println!("{body}"),
                    Err(e) => {
                        eprintln!(
                            "oauth-fetch: reading the body of {url} failed: {}",
                            one_line(e)
                        );
                        return false;
                    }
                }
                status.is_success()
            }
            Format::Json => {
                let mut headers = Map::new();
                for (name, value) in response.headers() {
                    let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into());
                    match headers.get_mut(name.as_str()) {
                        Some(Value::Array(values)) => values.push(value),
                        _ => {
                            headers.insert(name.as_str().to_owned(), Value::Array(vec![value]));
                        }
                    }
                }
                let mut line = json!({
                    "url": url,
                    "status": status.as_u16(),
                    "headers": headers,
                    "token": token_json(&token),
                });
                let ok = match response.bytes().await {
                    Ok(body) => {
                        line["body"] = String::from_utf8_lossy(&body).into();
                        status.is_success()
                    }
                    Err(e) => {
                        line["body"] = Value::Null;
                        line["error"] = format!("reading the body failed: {}", one_line(e)).into();
                        false
                    }
                };
                println!("{line}");
                ok
            }
        }
    }

    /// Reports that `url` got no response: `message` on stderr, and with `--output json` a
    /// line for the URL on stdout too, so a script sees every URL it gave.
    pub(crate) fn failure(&self, url: &str, message: &str) {
        eprintln!("oauth-fetch: {url}: {}", one_line(message));
        if self.format == Format::Json {
            println!(
                "{}",
                json!({ "url": url, "status": null, "error": one_line(message) })
            );
        }
    }
}

/// The token's metadata: whether it was sent, its type, scope, expiry and whether a refresh
/// token backs it. Nothing that would let anyone use it.
fn token_json(used: &TokenUse) -> Value {
    let mut out = json!({ "sent": used.sent, "retried_after_401": used.retried });
    if let (true, Some(token)) = (used.sent, &used.token) {
        let expires_in = token
            .expires_at_utc()
            .duration_since(SystemTime::now())
            .map_or(0, |left| left.as_secs());
        let expires_at = token
            .expires_at_utc()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |at| at.as_secs());
        out["token_type"] = token.token_type().into();
        out["expires_in"] = expires_in.into();
        out["expires_at"] = expires_at.into();
        out["scope"] = token.scope().map_or(Value::Null, Into::into);
        out["refresh_token"] = token.refresh_token().is_some().into();
        if let Some(kind) = token.issued_token_type() {
            out["issued_token_type"] = kind.into();
        }
    }
    out
}
