//! The reqwest-middleware integration: [`OAuthMiddleware`] gives every request of a
//! `reqwest_middleware::ClientWithMiddleware` a valid bearer token.
//!
//! A single request can use other credentials, or none, by carrying a [`RequestAuth`](crate::RequestAuth) extension
//! (`RequestBuilder::with_extension`), like httr2's per-request `req_oauth_*()`.
//!
//! Redirects (SECURITY.md rule 25): reqwest follows them *below* every middleware, out of our
//! sight, and it re-sends the first request's headers on every hop: it drops `Authorization`
//! only on a hop that itself changes origin, so in a chain `A → B → B` the second hop on `B`
//! carries the token meant for `A`. Build the client with [`redirect_policy`] (or
//! `redirect::Policy::none()`): it follows redirects within the request's origin and hands a
//! redirect to another origin back to you. A token-carrying request whose answer comes from
//! another origin proves the client followed such a redirect: the middleware then returns
//! [`Error::UnsafeRedirect`] instead of the answer, and never
//! renews or resends a token because of it.
//!
//! ```
//! use oauth_layer::{OAuthClient, OAuthMiddleware};
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! # let client = OAuthClient::builder("id").secret("s").token_url("https://idp.example/token").build()?;
//! // `client_builder()` is `reqwest::Client::builder()` with `redirect_policy()` set.
//! let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
//!     .with(OAuthMiddleware::client_credentials(client).allow_origins(["https://api.example"])?)
//!     .build();
//! # let _ = http; Ok(()) }
//! ```

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::error::Error;
use crate::request::challenge::{Acted, Step, Verdict, assess};
use crate::request::constructors::shorthand_constructors;
use crate::request::credentials::{
    needs_preparing, prepare_proof, proof_for, remember_nonce, set_credentials,
};
use crate::request::origin::Origin;
use crate::request::plan::{Attach, Plan};
use crate::request::upgrade::upgrade;
use crate::source::TokenSource;
use crate::token::Token;

/// The most redirects [`redirect_policy`] follows in one chain (reqwest's own default).
pub const MAX_REDIRECTS: usize = 10;

/// A reqwest redirect policy under which no credential leaves the origin of the request: it
/// follows up to [`MAX_REDIRECTS`] redirects as long as they stay on the origin (scheme, host and
/// port) of the first request, and stops at a redirect to any other origin, whose `3xx` answer is
/// then returned to the caller to follow (without the token) if it wants.
///
/// reqwest's own policies re-send the first request's headers on every hop and drop
/// `Authorization` only on a hop that itself changes origin, so a chain `A → B → B` gives `B`
/// the token meant for `A`; this policy never lets a chain leave `A`. Use it (or
/// `Policy::none()`) for every client that [`OAuthMiddleware`] sends tokens through.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// A `reqwest::ClientBuilder` with [`redirect_policy`] already set: the client to put under
/// [`OAuthMiddleware`].
///
/// ```
/// # fn build(client: oauth_layer::OAuthClient) -> Result<(), Box<dyn std::error::Error>> {
/// let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
///     .with(oauth_layer::OAuthMiddleware::client_credentials(client))
///     .build();
/// # let _ = http; Ok(()) }
/// ```
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(redirect_policy())
}

/// The origin a token-carrying request went to, to tell whether its answer came from there
/// (SECURITY.md rule 25).
enum SentTo<'a> {
    /// The allowed origin the request wrote as allowed: the common case, which copies and
    /// hashes nothing.
    Allowed(&'a Origin),
    /// Any other request (one whose URL carries user information, say): a keyed hash of its
    /// scheme, host and port.
    Key(OriginKey),
}

impl<'a> SentTo<'a> {
    #[inline]
    fn of(attach: &'a Attach, url: &url::Url) -> Self {
        match attach.allowed_origin(url) {
            Some(origin) => SentTo::Allowed(origin),
            None => SentTo::Key(OriginKey::of(url)),
        }
    }

    /// Whether the answer, which reqwest says came from `url`, came from this origin.
    #[inline]
    fn answered_from(&self, url: &url::Url) -> bool {
        match self {
            SentTo::Allowed(origin) => origin.is_origin_of(url),
            SentTo::Key(key) => OriginKey::of(url) == *key,
        }
    }
}

/// An origin kept small: a keyed hash of scheme, host and port (keyed per process, so a hostile
/// host name cannot be chosen to collide).
#[derive(Clone, Copy, PartialEq, Eq)]
struct OriginKey(u64);

impl OriginKey {
    fn of(url: &url::Url) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let keys = KEYS.get_or_init(RandomState::new);
        // The url crate lowercases the scheme and the host of http(s) URLs when it parses them.
        OriginKey(keys.hash_one((url.scheme(), url.host_str(), url.port_or_known_default())))
    }
}

/// The copy of a request kept for the one retry after a 401, taken before the token goes in.
///
/// reqwest's `Request::try_clone` makes the copy's timeout map (an `http::Extensions` with one
/// entry: three allocations) and then replaces it with a clone of the original's, every time.
/// A request without a body is copied here instead from what reqwest sends: method, URL,
/// headers, version and timeout (reqwest 0.13 keeps nothing else in a request: its extensions
/// hold only the timeout, and are not public). A request with a body is copied with
/// `try_clone`, the only way to reach the body's copy.
enum Replay {
    /// A request without a body, as its parts.
    Head {
        method: http::Method,
        url: url::Url,
        headers: http::HeaderMap,
        version: http::Version,
        timeout: Option<std::time::Duration>,
    },
    /// A request with a body whose copy is cheap (bytes, not a stream).
    Whole(Request),
}

impl Replay {
    /// The copy of `request`, or `None` when its body is a stream (nothing to send again).
    /// Boxed, to keep the middleware's future under glibc's 1 KiB large-allocation threshold.
    #[inline]
    fn of(request: &Request) -> Option<Box<Self>> {
        if request.body().is_some() {
            return request.try_clone().map(|r| Box::new(Replay::Whole(r)));
        }
        Some(Box::new(Replay::Head {
            method: request.method().clone(),
            url: request.url().clone(),
            headers: request.headers().clone(),
            version: request.version(),
            timeout: request.timeout().copied(),
        }))
    }

    /// A request to send again, as the original was before the token went in.
    fn request(&self) -> Option<Request> {
        match self {
            Replay::Head {
                method,
                url,
                headers,
                version,
                timeout,
            } => {
                let mut request = Request::new(method.clone(), url.clone());
                *request.headers_mut() = headers.clone();
                *request.version_mut() = *version;
                if timeout.is_some() {
                    *request.timeout_mut() = *timeout;
                }
                Some(request)
            }
            Replay::Whole(request) => request.try_clone(),
        }
    }
}

/// A reqwest-middleware middleware that attaches a valid bearer token from one shared
/// [`TokenSource`], renews it before it expires, and after a 401 renews and retries once (when
/// the request body can be cloned).
///
/// Make one with a constructor per grant ([`client_credentials`](Self::client_credentials),
/// [`password`](Self::password), [`refresh`](Self::refresh), `auth_code`,
/// [`device`](Self::device), `jwt_bearer`, [`token_exchange`](Self::token_exchange)), whose
/// grant still takes a [`scope`](Self::scope) (and for client credentials and token exchange an
/// [`audience`](OAuthMiddleware::<crate::flow::ClientCredentials>::audience)); with any
/// configured flow ([`with_flow`](Self::with_flow)); or over a source you share with other code
/// ([`from_source`](Self::from_source)). The type parameter `G` is the grant a shorthand
/// constructor chose (`OAuthMiddleware<ClientCredentials>`), and the source otherwise (plain
/// `OAuthMiddleware`).
///
/// Certificate-bound tokens (mutual TLS, RFC 8705): a token bound to a client certificate
/// ([`Token::certificate_thumbprint`](crate::Token::certificate_thumbprint)) is attached only
/// when the middleware was told the reqwest client under it presents that certificate
/// ([`client_certificate`](Self::client_certificate), or
/// [`client_certificate_thumbprint`](Self::client_certificate_thumbprint) for a TLS stack of
/// your own); otherwise the request fails with
/// [`Error::CertificateBinding`] and nothing is sent. Bearer
/// and DPoP-bound tokens are not affected.
///
/// ```
/// use oauth_layer::{OAuthClient, OAuthMiddleware};
///
/// # fn build() -> Result<(), Box<dyn std::error::Error>> {
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
///     .with(
///         OAuthMiddleware::client_credentials(client)
///             .scope("api:read")
///             .audience("https://api.example")
///             .allow_origins(["https://api.example"])?,
///     )
///     .build();
/// # let _ = http; Ok(()) }
/// ```
///
/// A source's flow is configured when the source is made, so a middleware over it has no
/// `scope` to drop:
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthMiddleware, TokenSource, flow::ClientCredentials};
/// # fn build(client: OAuthClient) {
/// let source = TokenSource::new(client, ClientCredentials::new());
/// let middleware = OAuthMiddleware::from_source(source).scope("api:read"); // set it on the flow
/// # }
/// ```
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthMiddleware, TokenSource, flow::ClientCredentials};
/// # fn build(client: OAuthClient) {
/// let source = TokenSource::new(client, ClientCredentials::new());
/// let middleware = OAuthMiddleware::from_source(source).audience("https://api.example");
/// # }
/// ```
///
/// and an `audience` goes only to a grant that has one:
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthMiddleware};
/// # fn build(client: OAuthClient) {
/// let middleware = OAuthMiddleware::refresh(client, "rt").audience("https://api.example");
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthMiddleware<G = TokenSource> {
    attach: Attach,
    grant: G,
}

shorthand_constructors!(OAuthMiddleware, "middleware");

#[async_trait::async_trait]
impl<G: Send + Sync + 'static> Middleware for OAuthMiddleware<G> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let plan = self
            .attach
            .plan(request.url(), request.headers(), extensions);
        let per_request;
        let source = match plan {
            Plan::AsIs => return next.run(request, extensions).await,
            Plan::Withheld(withheld) => {
                let mut response = next.run(request, extensions).await?;
                let status = response.status();
                withheld.mark(status, response.extensions_mut());
                return Ok(response);
            }
            Plan::Attach => &self.attach.source,
            Plan::AttachFrom(source) => {
                per_request = source;
                &per_request
            }
        };
        let interactive = self.attach.is_interactive();
        // The rare paths (waiting for a token, acting on a challenge) are boxed: inline they
        // would make every request's future several times larger.
        let token = match source.fast() {
            Some(token) => token,
            None => Box::pin(source.token_after_miss(interactive))
                .await
                .map_err(reqwest_middleware::Error::middleware)?,
        };
        // The copy for a retry is taken before the token goes in (a retry sets its own).
        let replay = if self.attach.retry_after_401 {
            Replay::of(&request)
        } else {
            None
        };
        let sent_to = SentTo::of(&self.attach, request.url());
        if needs_preparing(&token, source) {
            Box::pin(prepare_proof(&token, source, request.url())).await;
        }
        let proof = proof_for(
            &token,
            source,
            request.method(),
            request.url(),
            self.attach.presented(),
        )
        .map_err(reqwest_middleware::Error::middleware)?;
        let sent = set_credentials(request.headers_mut(), &token, proof);
        let response = next.clone().run(request, extensions).await?;
        if !sent_to.answered_from(response.url()) {
            return Err(unsafe_redirect(response.url()));
        }
        remember_nonce(&sent, source, response.url(), response.headers());
        let verdict = assess(response.status(), response.headers(), &sent.as_sent());
        if verdict == Verdict::Done {
            return Ok(response);
        }
        let retry = Retry {
            source,
            used: token,
            replay,
            sent_to,
            interactive,
            presented: self.attach.presented(),
        };
        Box::pin(retry.run(verdict, response, extensions, next)).await
    }
}

/// What the middleware needs to act on a challenge.
struct Retry<'a> {
    source: &'a TokenSource,
    used: Token,
    replay: Option<Box<Replay>>,
    /// Where the first request went; a replay goes to the same URL.
    sent_to: SentTo<'a>,
    interactive: bool,
    /// The thumbprint of the client certificate the pipeline declared it presents.
    presented: Option<&'a str>,
}

impl Retry<'_> {
    /// Acts on what the server said (SECURITY.md rules 29, 48 and 49): a rejected token is
    /// dropped (unless a newer one is cached) and renewed, a DPoP nonce challenge is answered
    /// with a proof carrying the new nonce; each at most once per request, and only when the
    /// request could be copied. Anything else, or a second challenge of a kind already acted
    /// on, returns the answer as it is.
    async fn run(
        self,
        mut verdict: Verdict,
        mut response: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Retry {
            source,
            used: mut token,
            replay,
            sent_to,
            interactive,
            presented,
        } = self;
        // The request's source, or the one derived from it for a challenge that asked for more.
        let mut source = source.clone();
        let mut acted = Acted::default();
        loop {
            match acted.next(verdict, replay.is_some()) {
                Step::Return => return Ok(response),
                Step::DropToken => {
                    source.invalidate(&token);
                    tracing::debug!("401 on a request that cannot be replayed; returned as is");
                    return Ok(response);
                }
                Step::Renew => {
                    source.invalidate(&token);
                    token = source
                        .token_for(interactive)
                        .await
                        .map_err(reqwest_middleware::Error::middleware)?;
                    tracing::debug!("401: retrying once with a renewed token");
                    source.observe_retry(crate::metrics::Retry::Unauthorized);
                }
                Step::Resend => {
                    tracing::debug!("DPoP nonce challenge: retrying once with the new nonce");
                    source.observe_retry(crate::metrics::Retry::DpopNonce);
                }
                Step::Upgrade(need) => {
                    source.observe_retry(crate::metrics::Retry::StepUp);
                    (source, token) = upgrade(&source, need, token.issue(), interactive)
                        .await
                        .map_err(reqwest_middleware::Error::middleware)?;
                }
            }
            let Some(mut request) = replay.as_deref().and_then(Replay::request) else {
                return Ok(response);
            };
            if needs_preparing(&token, &source) {
                prepare_proof(&token, &source, request.url()).await;
            }
            let proof = proof_for(&token, &source, request.method(), request.url(), presented)
                .map_err(reqwest_middleware::Error::middleware)?;
            let sent = set_credentials(request.headers_mut(), &token, proof);
            response = next.clone().run(request, extensions).await?;
            if !sent_to.answered_from(response.url()) {
                return Err(unsafe_redirect(response.url()));
            }
            remember_nonce(&sent, &source, response.url(), response.headers());
            verdict = assess(response.status(), response.headers(), &sent.as_sent());
        }
    }
}

/// The answer to a token-carrying request came from another origin: the client follows
/// redirects across origins, and may have re-sent the token on a hop (SECURITY.md rule 25).
#[cold]
fn unsafe_redirect(answered_by: &url::Url) -> reqwest_middleware::Error {
    let error = Error::UnsafeRedirect {
        to: answered_by.origin().ascii_serialization(),
    };
    tracing::error!("{error}");
    reqwest_middleware::Error::middleware(error)
}
