//! The HTTP plumbing: accept loop, one hyper 1 HTTP/1.1 connection per task, body cap, routing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::reply::{self, Response};
use super::state::Shared;
use super::{authorization, device, discovery, resource, revocation, token};

/// Request bodies larger than this get 413.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// Accepts connections until the task running it is aborted. Connection tasks live in a
/// `JoinSet`, so aborting this task (dropping the set) stops them too.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared)));
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

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "test server: connection ended with an error");
    }
}

async fn handle(shared: &Shared, request: http::Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return reply::payload_too_large(),
        Err(_) => return reply::unreadable_body(),
    };
    match parts.uri.path() {
        "/token" if parts.method == Method::POST => token::endpoint(shared, &parts, &body),
        "/revoke" if parts.method == Method::POST => revocation::endpoint(shared, &parts, &body),
        "/device_authorization" if parts.method == Method::POST => {
            device::authorization_endpoint(shared, &parts, &body)
        }
        "/token" | "/revoke" | "/device_authorization" => reply::method_not_allowed("POST"),
        "/authorize" if parts.method == Method::GET => authorization::endpoint(shared, &parts),
        "/device" if parts.method == Method::GET => device::verification_page(shared, &parts),
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server"
            if parts.method == Method::GET =>
        {
            discovery::endpoint(shared)
        }
        "/authorize"
        | "/device"
        | "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server" => reply::method_not_allowed("GET"),
        path if path.starts_with("/api/") => resource::endpoint(shared, &parts, body),
        _ => reply::not_found(),
    }
}
