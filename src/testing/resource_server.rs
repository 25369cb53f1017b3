//! A resource-only server on a port of its own, trusting the tokens of a [`TestServer`]: the
//! second resource of a deployment, on another origin than the authorization server.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::Method;
use http::request::Parts;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::protected::{self, ProtectedResource, Resources, Serving};
use super::reply::{self, Response};
use super::server::{self, Site};
use super::state::Shared;
use super::{RecordedRequest, RoundTripKind, TestServer};

/// A running server that plays only [protected resources](ProtectedResource), on
/// `127.0.0.1` and a port of its own, and accepts the access tokens of the [`TestServer`] it
/// was built from, as a resource server that introspects them would. Made with
/// [`ResourceServer::builder`].
///
/// It answers the resources it declares and their RFC 9728 metadata at
/// `/.well-known/oauth-protected-resource{path}` (naming the [`TestServer`]'s issuer as
/// authorization server unless told otherwise), exactly as the [`TestServer`] answers its own;
/// everything else gets 404. Resource identifiers are `{its url}{path}`, so with the default
/// [`require_audience`](ProtectedResource::require_audience) a token issued for a resource of
/// another server (another port) is refused with 401 `invalid_token`. Token checks follow the
/// [`TestServer`]'s settings (DPoP, resource nonces, per-path rules), and every answer is
/// appended to the [`TestServer`]'s [`round_trips`](TestServer::round_trips), so one log
/// shows a client's whole conversation across both ports.
///
/// ```no_run
/// use oauth_layer::testing::{ProtectedResource, ResourceServer, TestServer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let idp = TestServer::builder()
///     .protected_resource(ProtectedResource::new("/mcp"))
///     .start()
///     .await?;
/// let other = ResourceServer::builder(&idp)
///     .resource(ProtectedResource::new("/other"))
///     .start()
///     .await?;
/// assert_ne!(other.url(), idp.url());
/// assert_eq!(other.resource_identifier("/other"), format!("{}/other", other.url()));
/// # Ok(()) }
/// ```
pub struct ResourceServer {
    addr: SocketAddr,
    site: Arc<ResourceSite>,
    task: JoinHandle<()>,
}

/// Configures a [`ResourceServer`]; made by [`ResourceServer::builder`].
pub struct ResourceServerBuilder {
    authority: Arc<Shared>,
    resources: Resources,
}

impl fmt::Debug for ResourceServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceServerBuilder")
            .field("authorization_server", &self.authority.config.issuer)
            .field("resources", &self.resources)
            .finish()
    }
}

/// What a resource-only server knows.
#[derive(Debug)]
pub(super) struct ResourceSite {
    /// The authorization server whose tokens it accepts.
    pub(super) authority: Arc<Shared>,
    /// `http://127.0.0.1:PORT`.
    pub(super) base: String,
    resources: Resources,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    metadata_requests: usize,
}

impl ResourceSite {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The resource-only routes: metadata documents and the resources.
    pub(super) fn route(&self, parts: &Parts, body: Bytes) -> (RoundTripKind, Response) {
        let path = parts.uri.path();
        if path.starts_with(protected::WELL_KNOWN_PREFIX) {
            let response = match self.resources.by_metadata_path(path) {
                Some(resource) if parts.method == Method::GET => {
                    self.log().metadata_requests += 1;
                    let base = &self.base;
                    protected::metadata(&self.authority, Serving { resource, base })
                }
                Some(_) => reply::method_not_allowed("GET"),
                None => reply::not_found(),
            };
            return (RoundTripKind::ResourceMetadata, response);
        }
        let Some(resource) = self.resources.serving(path) else {
            return (RoundTripKind::Other, reply::not_found());
        };
        let base = &self.base;
        let serving = Some(Serving { resource, base });
        let (response, record) = super::resource::endpoint(&self.authority, parts, body, serving);
        self.log().requests.push(record);
        (RoundTripKind::Resource, response)
    }
}

impl ResourceServer {
    /// Starts configuring a resource server that accepts the tokens `authorization_server`
    /// issues. It declares no resource until [`resource`](ResourceServerBuilder::resource) is
    /// called.
    pub fn builder(authorization_server: &TestServer) -> ResourceServerBuilder {
        ResourceServerBuilder {
            authority: Arc::clone(&authorization_server.shared),
            resources: Resources::default(),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.site.base.clone()
    }

    /// The URL of `path` on this server; a missing leading `/` is added.
    pub fn resource_url(&self, path: &str) -> String {
        super::join(&self.site.base, path)
    }

    /// The RFC 8707 / RFC 9728 identifier of the declared resource at `path`
    /// (`{url}{path}`), what a token must be issued for to be accepted there. The identifier
    /// is given for undeclared paths too.
    pub fn resource_identifier(&self, path: &str) -> String {
        ProtectedResource::new(path).identifier(&self.site.base)
    }

    /// Where the metadata of the resource at `path` is published:
    /// `{url}/.well-known/oauth-protected-resource{path}`.
    pub fn resource_metadata_url(&self, path: &str) -> String {
        ProtectedResource::new(path).metadata_url(&self.site.base)
    }

    /// Every request to a declared resource of this server so far, oldest first, refused ones
    /// included.
    pub fn resource_requests(&self) -> Vec<RecordedRequest> {
        self.site.log().requests.clone()
    }

    /// How many requests fetched a metadata document of this server.
    pub fn resource_metadata_requests(&self) -> usize {
        self.site.log().metadata_requests
    }

    /// Forgets the recorded requests and sets the counter back to zero (the
    /// [`TestServer`]'s round trips are reset by its own
    /// [`reset_counts`](TestServer::reset_counts)).
    pub fn reset_counts(&self) {
        let mut log = self.site.log();
        log.requests.clear();
        log.metadata_requests = 0;
    }

    /// Stops the server and waits until its listener is closed. Dropping it does the same
    /// without waiting.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The task was aborted, so the only outcome is a cancellation error.
        let _ = (&mut self.task).await;
    }
}

impl ResourceServerBuilder {
    /// Declares a protected resource, as
    /// [`TestServerBuilder::protected_resource`](super::TestServerBuilder::protected_resource)
    /// does on the authorization server; one with the same path replaces it.
    pub fn resource(mut self, resource: ProtectedResource) -> Self {
        self.resources.add(resource);
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving on spawned tokio tasks.
    pub async fn start(self) -> io::Result<ResourceServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let site = Arc::new(ResourceSite {
            authority: self.authority,
            base: format!("http://{addr}"),
            resources: self.resources,
            log: Mutex::default(),
        });
        let task = tokio::spawn(server::serve(listener, Site::Resources(Arc::clone(&site))));
        Ok(ResourceServer { addr, site, task })
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
