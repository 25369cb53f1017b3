//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default). Not API:
//! nothing here is stable, documented or meant for callers; it exists so that the crate's private
//! parsers can be driven with hostile bytes from outside the crate.
//!
//! Each function feeds its input through the same code the crate runs on data from a server, a
//! browser, a person or a store. The invariants are asserted by the targets themselves.
#![allow(missing_docs, unreachable_pub)]

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;

use crate::error::{Result, TransportError};
use crate::redact::Secrets;
use crate::token::{ParseContext, Token, parse_token_response};
use crate::transport::RawResponse;
use crate::transport::{HttpTransport, ResponseBody};

/// Runs `future` to completion on a current-thread runtime (with time) kept for the thread, so
/// that a fuzz iteration does not pay for a new runtime.
#[allow(clippy::expect_used)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            // Invariant: a current-thread runtime without I/O only fails to build when the
            // process is out of resources, and a fuzz target cannot go on then.
            .expect("a current-thread tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// A transport that answers every request with one canned response and keeps the requests it
/// was sent, to stand in for a hostile server without sockets.
#[derive(Clone)]
pub struct CannedTransport {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    sent: Arc<Mutex<Vec<http::Request<Bytes>>>>,
}

impl CannedTransport {
    /// A response with `status` (any number a server can send, 100 to 999; anything else is
    /// read as 500), the headers among `headers` that are valid, and `body`.
    pub fn new(status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> Self {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: map,
            body: Bytes::copy_from_slice(body),
            sent: Arc::default(),
        }
    }

    /// The requests sent so far (shared between clones).
    pub fn sent(&self) -> Vec<http::Request<Bytes>> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for CannedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CannedTransport")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HttpTransport for CannedTransport {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<ResponseBody>, TransportError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let body = http_body_util::Full::new(self.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        Ok(response)
    }
}

/// The token endpoint response classifier (`token::parse_token_response`) on one response,
/// with `secrets` planted as the values the client sent (each also in the encodings the crate
/// knows a server may echo) and `derived` as values made from them (Basic credentials), as
/// `OAuthClient` plants them.
pub fn parse_token_response_raw(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    lenient_token_type: bool,
    secrets: &[&str],
    derived: &[&str],
) -> Result<Token> {
    let mut planted = Secrets::default();
    for s in secrets {
        planted.add(s);
    }
    for d in derived {
        planted.add_owned((*d).to_owned());
    }
    let response = RawResponse {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        content_type: content_type.map(str::to_owned),
        retry_after: None,
        dpop_nonce: None,
        body: Bytes::copy_from_slice(body),
    };
    let clock = crate::clock::ManualClock::new();
    parse_token_response(
        &response,
        &ParseContext {
            clock: &clock,
            default_lifetime: crate::token::DEFAULT_LIFETIME,
            requested_scope: Some("requested"),
            lenient_token_type,
            secrets: &planted,
            #[cfg(feature = "dpop")]
            dpop: None,
            certificate_thumbprint: None,
        },
    )
}

/// `Retry-After` as the crate reads it from a response (`http::parse_retry_after`).
pub fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    let value = HeaderValue::from_bytes(value).ok()?;
    crate::transport::parse_retry_after(&value, std::time::SystemTime::now())
}

/// Whether a response with `status` and these `WWW-Authenticate` values makes the layer and the
/// middleware renew the token and resend (`request::challenge::calls_for_renewal`). Values that
/// are not valid header values are left out, as no HTTP stack would deliver them.
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub fn calls_for_renewal(status: u16, challenges: &[&[u8]]) -> bool {
    let mut headers = HeaderMap::new();
    for value in challenges {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(http::header::WWW_AUTHENTICATE, value);
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    crate::request::challenge::calls_for_renewal(status, &headers)
}

/// What the challenge policy (`request::challenge::assess`) decided, as the fuzz targets see it.
#[cfg(any(feature = "tower", feature = "reqwest"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Done,
    Renew,
    Nonce(String),
    MoreScope(String),
    StepUp {
        acr_values: Option<String>,
        max_age: Option<u64>,
    },
    Claims(String),
}

/// What the layer and the middleware do about a response with `status` and `headers` (the
/// valid ones among them) to a request sent with a DPoP proof (`dpop`) carrying `nonce`
/// (`request::challenge::assess`).
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub fn assess(status: u16, headers: &[(&str, &[u8])], dpop: bool, nonce: Option<&str>) -> Verdict {
    use crate::request::challenge::{Sent, Verdict as V, assess};

    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    match assess(status, &map, &Sent { dpop, nonce }) {
        V::Done => Verdict::Done,
        V::Renew => Verdict::Renew,
        V::Nonce(n) => Verdict::Nonce(n),
        V::MoreScope(s) => Verdict::MoreScope(s),
        V::StepUp {
            acr_values,
            max_age,
        } => Verdict::StepUp {
            acr_values,
            max_age,
        },
        V::Claims(c) => Verdict::Claims(c),
    }
}

/// What a [`paste`] run produced: the outcome, and every message shown to the person.
#[cfg(feature = "auth-code")]
pub struct PasteOutcome {
    pub result: Result<crate::flow::auth_code::ReceivedCode>,
    pub shown: Vec<String>,
}

/// Runs the paste receiver (`flow::auth_code::PasteReceiver`) for `request`, the person pasting
/// each of `lines` in turn (an empty line once they run out).
#[cfg(feature = "auth-code")]
pub fn paste(
    client: &crate::client::OAuthClient,
    request: &crate::flow::auth_code::AuthorizationRequest,
    lines: &[String],
    accept_bare_code: bool,
) -> PasteOutcome {
    use crate::flow::auth_code::{CodeReceiver, PasteReceiver, ReceiveContext};

    let prompt = Arc::new(ScriptedPrompt {
        lines: Mutex::new(lines.iter().rev().cloned().collect()),
        shown: Mutex::default(),
    });
    let context = ReceiveContext {
        client: client.clone(),
        prompt: prompt.clone(),
        timeout: Duration::from_secs(5),
        pages: Arc::new(crate::flow::auth_code::LoopbackPages::new()),
    };
    let receiver = PasteReceiver::new().accept_bare_code(accept_bare_code);
    let result = block_on(async {
        let prepared = receiver.prepare(None).await?;
        prepared.receive(request, &context).await
    });
    let shown = prompt
        .shown
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    PasteOutcome { result, shown }
}

/// A person at a terminal who pastes the lines of a script, one per question.
#[cfg(feature = "auth-code")]
#[derive(Debug)]
struct ScriptedPrompt {
    lines: Mutex<Vec<String>>,
    shown: Mutex<Vec<String>>,
}

#[cfg(feature = "auth-code")]
#[async_trait]
impl crate::interact::Prompt for ScriptedPrompt {
    fn show(&self, message: &str) {
        self.shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.to_owned());
    }

    async fn read_line(&self, message: &str, max_len: usize) -> std::io::Result<String> {
        self.show(message);
        let line = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        // The terminal prompt refuses a line over the cap the same way.
        if line.len() > max_len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the line is too long",
            ));
        }
        Ok(line)
    }
}

/// A store entry sealed the way `store::Codec::encrypted(key)` seals one for `cache_key`, around
/// any `plain` bytes (which the codec then reads as the persisted token): the fuzzer cannot
/// forge AES-GCM, so this lets it reach the decoder behind the seal.
#[cfg(any(feature = "file-store", feature = "redis-store"))]
pub fn seal_entry(key: [u8; 32], cache_key: &crate::store::CacheKey, plain: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use base64::Engine;

    let cipher = Aes256Gcm::new((&key).into());
    let nonce = [7u8; 12];
    let aad = cache_key.binding();
    let Ok(sealed) = cipher.encrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: plain,
            aad: &aad,
        },
    ) else {
        return Vec::new();
    };
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    serde_json::json!({
        "format": "oauth-layer-token",
        "version": crate::store::FORMAT_VERSION,
        "sealed": base64::engine::general_purpose::STANDARD.encode(blob),
    })
    .to_string()
    .into_bytes()
}
