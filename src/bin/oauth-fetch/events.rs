//! What `-v` reports: token events (fetched, reused, renewed, retried, not sent, loaded from the
//! store) and the crate's warnings, on stderr; and the helpers that put messages on one line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::Extensions;
use oauth_layer::flow::Flow;
use oauth_layer::{OAuthClient, Token, TokenSource};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::options::{Stop, usage};
use crate::store::Store;

/// What `-v` reports. Every line names an event, never a token or secret.
#[derive(Clone)]
pub(crate) struct Events {
    pub(crate) verbose: bool,
    /// Counts tokens obtained from the server; the first one is "fetched", later ones "renewed".
    pub(crate) obtained: Arc<AtomicU64>,
    /// Whether tokens may come from a store (`--cache`, `--redis`).
    pub(crate) stored: bool,
    /// Set when a request first carried a token this run did not obtain: one from the store.
    pub(crate) loaded: Arc<AtomicBool>,
    /// The resource-first mode: a first request to a resource goes without a token, and the
    /// token events come from [`ResourceEvents`].
    pub(crate) resource_first: bool,
    /// Set when a resource was discovered, until its first token: "fetched" or "loaded from
    /// the store" rather than "renewed".
    pub(crate) fresh: Arc<AtomicBool>,
}

impl Events {
    pub(crate) fn say(&self, line: &str) {
        if self.verbose {
            eprintln!("token: {line}");
        }
    }

    /// The token source of `flow` on `client`, kept in `store`, reporting its tokens. A flow
    /// the client's profile forbids is a usage error that says which requirement and why.
    pub(crate) fn source(
        &self,
        client: OAuthClient,
        flow: impl Flow,
        store: &Store,
    ) -> Result<TokenSource, Stop> {
        let events = self.clone();
        let builder = TokenSource::builder(client, flow);
        store
            .attach(builder)
            .on_token_change(move |token: &Token| {
                // After a token from the store, the first one obtained replaces it.
                let first = events.obtained.fetch_add(1, Ordering::SeqCst) == 0
                    && !events.loaded.load(Ordering::SeqCst);
                events.say(&format!(
                    "{} (expires in {} s{})",
                    if first { "fetched" } else { "renewed" },
                    token.lifetime().as_secs(),
                    if token.refresh_token().is_some() {
                        ", with a refresh token"
                    } else {
                        ""
                    }
                ));
            })
            .try_build()
            .map_err(|e| usage(crate::messages::config_text(&e)))
    }
}

/// One send of the command line's request, put in its extensions so [`Observer`] can tell
/// its first attempt from the retry [`OAuthMiddleware`] makes after a 401.
///
/// [`OAuthMiddleware`]: oauth_layer::OAuthMiddleware
#[derive(Clone)]
pub(crate) struct Exchange {
    /// [`Events::obtained`] when the send began: no new token since means the cached one was
    /// reused.
    pub(crate) obtained_before: u64,
    /// The status of each attempt so far.
    /// The status of each attempt, `NONCE_CHALLENGE` for a 401 that asked for a DPoP nonce.
    pub(crate) attempts: Arc<Mutex<Vec<u16>>>,
    /// Whether an attempt carried the token.
    pub(crate) sent: Arc<AtomicBool>,
}

/// What [`Exchange::attempts`] records for a 401 that asked for a DPoP nonce (not a status).
const NONCE_CHALLENGE: u16 = 1401;

/// Sits below [`OAuthMiddleware`], so it sees every attempt as it goes on the wire, with the
/// token attached (or not), and reports `reused`, `retried after 401` and `not sent`.
///
/// [`OAuthMiddleware`]: oauth_layer::OAuthMiddleware
pub(crate) struct Observer {
    pub(crate) events: Events,
}

#[async_trait::async_trait]
impl Middleware for Observer {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if let Some(send) = extensions.get::<Exchange>().cloned() {
            let earlier = send
                .attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let has_token = request
                .headers()
                .contains_key(reqwest::header::AUTHORIZATION);
            if has_token {
                send.sent.store(true, Ordering::SeqCst);
            }
            match earlier.as_slice() {
                [] if !has_token => {
                    let origin = request.url().origin().ascii_serialization();
                    self.events.say(&format!(
                        "not sent to {origin} ({})",
                        if self.events.resource_first
                            && (origin.starts_with("https://")
                                || crate::is_loopback_origin(&origin))
                        {
                            "none for this resource yet: its answer says where to get one"
                        } else {
                            "tokens go only to https and to loopback http"
                        }
                    ));
                }
                [] if self.events.obtained.load(Ordering::SeqCst) == send.obtained_before => {
                    // No token obtained in this run yet: it came from the store (once).
                    if self.events.stored
                        && send.obtained_before == 0
                        && !self.events.loaded.swap(true, Ordering::SeqCst)
                    {
                        self.events.say("loaded from the store");
                    } else {
                        self.events.say("reused");
                    }
                }
                [] => {}
                [.., 401] => self.events.say("retried after 401"),
                [.., NONCE_CHALLENGE] => self.events.say("sent again with the server's DPoP nonce"),
                [..] => self.events.say("request sent again"),
            }
            let response = next.run(request, extensions).await?;
            let asked_for_nonce = response.status() == reqwest::StatusCode::UNAUTHORIZED
                && oauth_layer::challenge::Challenges::from_headers(response.headers())
                    .iter()
                    .any(|c| c.is_dpop() && c.error() == Some("use_dpop_nonce"));
            send.attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(if asked_for_nonce {
                    NONCE_CHALLENGE
                } else {
                    response.status().as_u16()
                });
            return Ok(response);
        }
        next.run(request, extensions).await
    }
}

/// With `-v`, the crate's warnings (a token request that failed, a token kept after a failed
/// renewal) as `token: warning: ...` lines. The crate keeps tokens and secrets out of its events.
pub(crate) struct Warnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        // `Level` orders by verbosity: anything above WARN is INFO, DEBUG or TRACE.
        if *meta.level() > tracing::Level::WARN || !meta.target().starts_with("oauth_layer") {
            return;
        }
        let mut text = EventText::default();
        event.record(&mut text);
        eprintln!(
            "token: warning: {}{}",
            one_line(text.message),
            one_line(text.fields)
        );
    }
}

/// With `-v` in the resource-first mode and with Google's credentials, what the crate's debug
/// events say about the resources and their token sources (built by the crate, without the
/// change hook that reports tokens in the other modes): `resource: discovered ISSUER (for RESOURCE)`,
/// `token: fetched`, `token: renewed` and `token: loaded from the store`. Only the fields
/// named here are read, never a cache key.
pub(crate) struct ResourceEvents {
    pub(crate) events: Events,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ResourceEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("oauth_layer::") {
            return;
        }
        let mut text = EventText::default();
        event.record(&mut text);
        let events = &self.events;
        if target.starts_with("oauth_layer::resource")
            && text.message.starts_with("resource discovered")
            && let (Some(issuer), Some(resource)) = (text.get("issuer"), text.get("resource"))
        {
            events.fresh.store(true, Ordering::SeqCst);
            if events.verbose {
                eprintln!(
                    "resource: discovered {} (for {})",
                    one_line(issuer),
                    one_line(resource)
                );
            }
        } else if target.starts_with("oauth_layer::source") {
            match text.message.as_str() {
                "new token" => {
                    events.obtained.fetch_add(1, Ordering::SeqCst);
                    let fetched = events.fresh.swap(false, Ordering::SeqCst);
                    events.say(&format!(
                        "{}{}",
                        if fetched { "fetched" } else { "renewed" },
                        text.get("lifetime_s")
                            .map(|s| format!(" (expires in {} s)", one_line(s)))
                            .unwrap_or_default()
                    ));
                }
                "using a token from the store" => {
                    events.fresh.store(false, Ordering::SeqCst);
                    events.loaded.store(true, Ordering::SeqCst);
                    events.say("loaded from the store");
                }
                _ => {}
            }
        }
    }
}

/// An event's message, then its other fields as `; name: value`.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
    /// Each field but the message, by name.
    named: Vec<(&'static str, String)>,
}

impl EventText {
    /// The value of the field `name`, as recorded.
    fn get(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.as_str())
    }
}

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let value = format!("{value:?}");
            self.fields
                .push_str(&format!("; {}: {value}", field.name()));
            self.named.push((field.name(), value));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

/// `text` on one line: control characters (newlines included) become spaces.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `error: cause: cause`, as reqwest's own message names only the URL.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
