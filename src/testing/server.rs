//! The HTTP plumbing: accept loop, one hyper 1 HTTP/1.1 connection per task, body cap, routing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::protected::{self, Serving};
use super::registration::{self, REGISTRATION_PATH};
use super::reply::{self, Response};
use super::resource_server::ResourceSite;
use super::state::Shared;
use super::{RoundTrip, RoundTripKind};
use super::{authorization, device, discovery, par, resource, revocation, token};

/// Request bodies larger than this get 413.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// What a listener serves: the authorization server (with its own resources), or a
/// resource-only server that trusts one.
#[derive(Debug, Clone)]
pub(super) enum Site {
    Authorization(Arc<Shared>),
    Resources(Arc<ResourceSite>),
}

impl Site {
    /// The authorization server whose tokens are checked and whose log records round trips.
    fn authority(&self) -> &Shared {
        match self {
            Self::Authorization(shared) => shared,
            Self::Resources(site) => &site.authority,
        }
    }

    fn origin(&self) -> &str {
        match self {
            Self::Authorization(shared) => &shared.config.issuer,
            Self::Resources(site) => &site.base,
        }
    }
}

/// Accepts connections until the task running it is aborted. Connection tasks live in a
/// `JoinSet`, so aborting this task (dropping the set) stops them too.
pub(super) async fn serve(listener: TcpListener, site: Site) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, site.clone()));
                }
                Err(error) => {
                    // Usually too many open files; back off instead of spinning.
                    tracing::debug!(%error, "test server: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, site: Site) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let site = site.clone();
        async move { Ok::<_, Infallible>(handle(&site, request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "test server: connection ended with an error");
    }
}

async fn handle(site: &Site, request: http::Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let (kind, response) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            match site {
                Site::Authorization(shared) => route(shared, &parts, body),
                Site::Resources(resources) => resources.route(&parts, body),
            }
        }
        Err(error) if error.is::<LengthLimitError>() => {
            (RoundTripKind::Other, reply::payload_too_large())
        }
        Err(_) => (RoundTripKind::Other, reply::unreadable_body()),
    };
    site.authority().lock().round_trips.push(RoundTrip {
        kind,
        origin: site.origin().to_owned(),
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        status: response.status().as_u16(),
    });
    response
}

/// The authorization server's routes.
fn route(shared: &Shared, parts: &Parts, body: Bytes) -> (RoundTripKind, Response) {
    let path = parts.uri.path();
    let kind = kind_of(shared, path);
    let response = match path {
        "/token" if parts.method == Method::POST => token::endpoint(shared, parts, &body),
        "/revoke" if parts.method == Method::POST => revocation::endpoint(shared, parts, &body),
        "/device_authorization" if parts.method == Method::POST => {
            device::authorization_endpoint(shared, parts, &body)
        }
        par::PAR_PATH if parts.method == Method::POST => par::endpoint(shared, parts, &body),
        REGISTRATION_PATH if parts.method == Method::POST => {
            registration::register(shared, parts, &body)
        }
        "/token" | "/revoke" | "/device_authorization" | par::PAR_PATH | REGISTRATION_PATH => {
            reply::method_not_allowed("POST")
        }
        "/authorize" if parts.method == Method::GET => authorization::endpoint(shared, parts),
        "/device" if parts.method == Method::GET => device::verification_page(shared, parts),
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server"
            if parts.method == Method::GET =>
        {
            discovery::endpoint(shared)
        }
        "/authorize"
        | "/device"
        | "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server" => reply::method_not_allowed("GET"),
        _ => match kind {
            RoundTripKind::ClientConfiguration => {
                let client_id = &path[REGISTRATION_PATH.len() + 1..];
                registration::configure(shared, parts, &body, client_id)
            }
            RoundTripKind::ResourceMetadata => {
                let resources = &shared.config.protected_resources;
                match resources.by_metadata_path(path) {
                    Some(resource) if parts.method == Method::GET => {
                        shared.lock().resource_metadata_requests += 1;
                        let base = &shared.config.issuer;
                        protected::metadata(shared, Serving { resource, base })
                    }
                    Some(_) => reply::method_not_allowed("GET"),
                    None => reply::not_found(),
                }
            }
            RoundTripKind::Resource => {
                let resource = shared.config.protected_resources.serving(path);
                let base = &shared.config.issuer;
                let serving = resource.map(|resource| Serving { resource, base });
                let (response, record) = resource::endpoint(shared, parts, body, serving);
                shared.lock().resource_requests.push(record);
                response
            }
            _ => reply::not_found(),
        },
    };
    (kind, response)
}

/// What a request to `path` of the authorization server is, for the round-trip log.
fn kind_of(shared: &Shared, path: &str) -> RoundTripKind {
    let resources = &shared.config.protected_resources;
    match path {
        "/token" => RoundTripKind::Token,
        "/revoke" => RoundTripKind::Revocation,
        "/device_authorization" => RoundTripKind::DeviceAuthorization,
        "/device" => RoundTripKind::DeviceVerification,
        "/authorize" => RoundTripKind::Authorization,
        par::PAR_PATH => RoundTripKind::PushedAuthorization,
        REGISTRATION_PATH => RoundTripKind::Registration,
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
            RoundTripKind::ServerMetadata
        }
        _ if path.starts_with(protected::WELL_KNOWN_PREFIX) => RoundTripKind::ResourceMetadata,
        _ if path
            .strip_prefix(REGISTRATION_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            RoundTripKind::ClientConfiguration
        }
        _ if resources.serving(path).is_some() || path.starts_with("/api/") => {
            RoundTripKind::Resource
        }
        _ => RoundTripKind::Other,
    }
}
