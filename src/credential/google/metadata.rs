//! Google's metadata server: the access token of the service account attached to the VM, the
//! GKE pod or the Cloud Run service the program runs on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, USER_AGENT};
use url::{Host, Url};

use crate::client::OAuthClient;
use crate::error::{Endpoint, Error, Result, TransportError, TransportErrorKind};
use crate::flow::{Flow, Requirements, Scopes};
use crate::redact::Secrets;
use crate::source::TokenSource;
use crate::store::CacheKey;
use crate::token::{ParseContext, Token, parse_token_response};
use crate::transport::{HttpTransport, RawResponse, read_capped};

/// The metadata server's link-local address, used when `GCE_METADATA_HOST` is not set.
pub const DEFAULT_METADATA_HOST: &str = "169.254.169.254";

/// The metadata server's DNS name on Google Cloud.
const METADATA_DNS_NAME: &str = "metadata.google.internal";

/// The default service account's token.
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// The header a request must carry and an answer must carry back.
const FLAVOR: &str = "metadata-flavor";

/// The largest answer read (a token answer is about 300 bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The deadline for a token request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The deadline for the detection probe: the server is on the same host or link, so it answers
/// in milliseconds; off Google Cloud nothing answers and the probe should not hold start-up.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Google's metadata server, at `GCE_METADATA_HOST` or `169.254.169.254`.
///
/// Requests carry `Metadata-Flavor: Google`, and an answer is believed only when it carries
/// `Metadata-Flavor: Google` back: a random HTTP server, a proxy or a captive portal answering
/// on that address is not a metadata server, and its "token" is never used.
///
/// The metadata server speaks plain `http` on a link-local address that never leaves the host,
/// so this type, and only this type, sends plain `http` to a host that is not loopback. The host
/// must be a loopback or link-local address or `metadata.google.internal` (with an optional
/// port): a `GCE_METADATA_HOST` naming anything else is refused, so a token never crosses a
/// network in the clear. Requests never go through a proxy (the proxy environment variables are
/// ignored) and never follow redirects; answers are capped at 64 KiB.
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::credential::google::MetadataServer;
///
/// let server = MetadataServer::at("127.0.0.1:8089")?.probe_timeout(Duration::from_millis(300));
/// let tokens = server.token_source("https://www.googleapis.com/auth/cloud-platform")?;
/// # let _ = tokens;
/// assert!(MetadataServer::at("evil.example").is_err());
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetadataServer {
    host: String,
    transport: Option<Arc<dyn HttpTransport>>,
    timeout: Duration,
    probe_timeout: Duration,
}

impl MetadataServer {
    /// The metadata server at `GCE_METADATA_HOST` (from the process environment) or
    /// [`DEFAULT_METADATA_HOST`].
    pub fn new() -> Result<Self> {
        Self::from_env_lookup(|name| std::env::var(name).ok())
    }

    /// [`new`](Self::new) with the environment read through `lookup`.
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        match lookup("GCE_METADATA_HOST").filter(|h| !h.trim().is_empty()) {
            Some(host) => Self::at(host).map_err(|e| match e {
                Error::Config(reason) => Error::Config(format!("GCE_METADATA_HOST: {reason}")),
                other => other,
            }),
            None => Self::at(DEFAULT_METADATA_HOST),
        }
    }

    /// The metadata server at `host` (`host` or `host:port`, no scheme), which must be a
    /// loopback or link-local address or `metadata.google.internal`.
    pub fn at(host: impl AsRef<str>) -> Result<Self> {
        Ok(Self {
            host: checked_host(host.as_ref())?,
            transport: None,
            timeout: DEFAULT_TIMEOUT,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
        })
    }

    /// The host (and port) requests go to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The transport requests go through. By default a reqwest client of its own that ignores
    /// proxy settings (feature `reqwest`). A transport that follows redirects is refused.
    #[must_use]
    pub fn transport(mut self, transport: impl HttpTransport) -> Self {
        self.transport = Some(match transport.follows_redirects() {
            None => Arc::new(transport),
            Some(why) => Arc::new(crate::transport::Refused { why }),
        });
        self
    }

    /// The deadline for a token request (10 s by default).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline for [`probe`](Self::probe) (1.5 s by default).
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Whether a metadata server answers: one `GET /` within the probe deadline whose answer
    /// carries `Metadata-Flavor: Google`. The error says what answered instead, if anything.
    pub async fn probe(&self) -> Result<()> {
        self.get("/", self.probe_timeout).await.map(|_| ())
    }

    /// The flow fetching the default service account's token with `scopes` (space separated;
    /// none asks for the account's default scopes).
    pub fn flow(&self, scopes: impl Into<String>) -> MetadataFlow {
        let mut wanted = Scopes::default();
        wanted.add(scopes);
        MetadataFlow {
            server: self.clone(),
            scopes: wanted,
        }
    }

    /// A client to run [`flow`](Self::flow) with: it holds no secret and names the metadata
    /// server as its client.
    pub fn client(&self) -> Result<OAuthClient> {
        OAuthClient::builder("gce-metadata").build()
    }

    /// A token source for the default service account with `scopes` (space separated).
    pub fn token_source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        Ok(TokenSource::new(self.client()?, self.flow(scopes)))
    }

    fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Credential {
            origin: format!("metadata server {}", self.origin()),
            reason: reason.into(),
        }
    }

    /// One `GET` of `path` (with its query), believed only with `Metadata-Flavor: Google`.
    async fn get(&self, path: &str, deadline: Duration) -> Result<RawResponse> {
        let origin = self.origin();
        let request = http::Request::get(format!("{origin}{path}"))
            .header(FLAVOR, "Google")
            .header(
                USER_AGENT,
                concat!("oauth-layer/", env!("CARGO_PKG_VERSION")),
            )
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        let work = async {
            let response = self.chosen_transport()?.send(request).await?;
            let (parts, body) = response.into_parts();
            let body = read_capped(body, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| match e {
                    None => TransportError::new(
                        TransportErrorKind::BodyTooLarge,
                        format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
                    ),
                    Some(e) => TransportError::new(TransportErrorKind::Other, e.to_string()),
                })?;
            Ok::<_, TransportError>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(deadline, work).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                return Err(Error::Transport(e.at(Endpoint::CredentialSource, &origin)));
            }
            Err(_) => return Err(self.fail(format!("no answer within {deadline:?}"))),
        };
        let flavored = parts
            .headers
            .get_all(FLAVOR)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"));
        if !flavored {
            return Err(self.fail(format!(
                "it answered HTTP {} without Metadata-Flavor: Google, so it is not a metadata \
                 server; its answer is not used",
                parts.status.as_u16()
            )));
        }
        if parts.status.is_redirection() {
            return Err(self.fail(format!(
                "it answered {} with a redirect, which is never followed",
                parts.status.as_u16()
            )));
        }
        Ok(RawResponse {
            status: parts.status,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned),
            retry_after: None,
            dpop_nonce: None,
            body,
        })
    }

    fn chosen_transport(&self) -> std::result::Result<Arc<dyn HttpTransport>, TransportError> {
        if let Some(transport) = &self.transport {
            return Ok(transport.clone());
        }
        #[cfg(feature = "reqwest")]
        {
            direct_client()
        }
        #[cfg(not(feature = "reqwest"))]
        {
            Err(TransportError::new(
                TransportErrorKind::Other,
                "no transport configured (enable the `reqwest` feature or call \
                 MetadataServer::transport)",
            ))
        }
    }
}

/// The transport used when none is configured: the crate's client that never follows
/// redirects and never uses a proxy (a proxy would not reach a link-local address, and must not
/// see the token).
#[cfg(feature = "reqwest")]
fn direct_client() -> std::result::Result<Arc<dyn HttpTransport>, TransportError> {
    crate::transport::direct_client().map(|client| Arc::new(client) as Arc<dyn HttpTransport>)
}

/// `host[:port]` when the host is loopback, link-local or `metadata.google.internal`.
fn checked_host(host: &str) -> Result<String> {
    let host = host.trim();
    let refused = || {
        Error::config(format!(
            "the metadata host {:?} is not a loopback or link-local address or \
             {METADATA_DNS_NAME} (plain http is allowed only there)",
            host.chars().take(100).collect::<String>()
        ))
    };
    let url = Url::parse(&format!("http://{host}/")).map_err(|_| refused())?;
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refused());
    }
    let allowed = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(Host::Ipv6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80,
        Some(Host::Domain(name)) => {
            name.eq_ignore_ascii_case(METADATA_DNS_NAME) || name.eq_ignore_ascii_case("localhost")
        }
        None => false,
    };
    if !allowed {
        return Err(refused());
    }
    let name = url.host_str().ok_or_else(refused)?;
    Ok(match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    })
}

/// The metadata server's token for its default service account, as a [`Flow`].
#[derive(Debug, Clone)]
pub struct MetadataFlow {
    server: MetadataServer,
    scopes: Scopes,
}

#[async_trait]
impl Flow for MetadataFlow {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        let mut path = TOKEN_PATH.to_owned();
        let scopes = self.scopes.iter().collect::<Vec<_>>().join(",");
        if !scopes.is_empty() {
            path.push('?');
            path.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("scopes", &scopes)
                    .finish(),
            );
        }
        let answer = self.server.get(&path, self.server.timeout).await?;
        let requested = self.scopes.joined();
        let secrets = Secrets::default();
        let context = ParseContext {
            clock: client.clock(),
            default_lifetime: client.default_lifetime(),
            requested_scope: (!requested.is_empty()).then_some(requested.as_str()),
            lenient_token_type: false,
            secrets: &secrets,
            #[cfg(feature = "dpop")]
            dpop: None,
            certificate_thumbprint: None,
        };
        let token = parse_token_response(&answer, &context)?;
        tracing::debug!(
            metadata_host = %self.server.host,
            lifetime_secs = token.lifetime().as_secs(),
            "token from the metadata server"
        );
        Ok(token)
    }

    /// Wider scopes (the metadata server mints a token for any scopes the account may have);
    /// `None` for a sign-in requirement or `claims`, which it cannot take.
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        if need.needs_sign_in() || need.claims.is_some() {
            return None;
        }
        let mut wider = self.clone();
        for scope in &need.scopes {
            wider.scopes.add(scope.clone());
        }
        Some(Arc::new(wider))
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        CacheKey::builder(client, "gce_metadata")
            .part("metadata_host", self.server.host.clone())
            .part("service_account", "default")
            .scopes(self.scopes.iter())
            .build()
    }
}
