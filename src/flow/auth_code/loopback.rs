//! The loopback redirect server: a one-shot HTTP server on `127.0.0.1` (and `[::1]` for a
//! `localhost` redirect URI) that the browser is
//! redirected to at the end of the sign-in (RFC 8252 §7.3, SECURITY.md rules 6–9).
//!
//! It lives only inside [`PreparedReceiver::receive`]: the port is bound by
//! [`CodeReceiver::prepare`], and closed when the first answer to the sign-in arrives, when the
//! wait times out, or when the future is dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use http::{Method, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use url::{Host, Url};

use super::callback::{Callback, Checked, ReceivedCode};
use super::pages::{LoopbackPages, Page};
use super::receiver::{CodeReceiver, PreparedReceiver, ReceiveContext};
use super::request::AuthorizationRequest;
use crate::error::{Error, Result};

/// The callback path when the redirect URI is not configured.
const DEFAULT_CALLBACK_PATH: &str = "/callback";
/// How many connections the server handles at once by default.
const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request and read the answer by default.
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request line and headers by default. A browser sends
/// them at once; a connection that has not within this time is closed.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times a free port is drawn again when `localhost`'s other addresses have it taken.
const PORT_ATTEMPTS: usize = 8;
/// The cap on a request's line and headers together.
const MAX_HEAD: usize = 8 * 1024;

/// The loopback redirect server (SECURITY.md rules 6–9), the default way [`AuthCode`] receives
/// the code.
///
/// By default it listens on `127.0.0.1` on a free port and names
/// `http://127.0.0.1:PORT/callback` as the redirect URI (an IP literal, never `localhost`, as
/// RFC 8252 §8.3 asks). When the flow is given a loopback redirect URI with a port, such as
/// `http://127.0.0.1:1410/callback`, `http://[::1]:8080/cb` or `http://localhost:1410/`, it
/// listens on exactly that address and path, and names the URI as given. A loopback URI
/// without a port (or with `:80`, which URL parsing drops) gets a free port, as RFC 8252 §7.3
/// lets the authorization server accept.
///
/// A `localhost` redirect URI (some providers accept no other) is served on every address
/// `localhost` may mean, on the same port: `127.0.0.1`, `[::1]` when the machine has IPv6, and
/// any other loopback address the system resolves `localhost` to. Otherwise a browser that
/// resolves `localhost` to `::1` first would deliver the code to whatever other program
/// listens there. If one of those addresses is taken on a configured port, the receiver refuses
/// to start ([`Error::Config`] naming the address); prefer an IP-literal redirect URI
/// (`http://127.0.0.1:PORT/...`), as RFC 8252 §8.3 recommends.
///
/// The server answers `GET` on the callback path only, ignores requests whose `Host` is not a
/// loopback name with its port (a DNS-rebinding defence), caps the request head at 8 KiB,
/// and shows a small inert page ([`LoopbackPages`], set with [`AuthCode::pages`]): no script,
/// nothing loaded from anywhere, never a redirect, and no text taken from the request but the
/// server's escaped `error` code.
///
/// Other programs on the machine can connect too, so none can hold the sign-in up: a
/// connection that has not sent its whole request head within
/// [`header_timeout`](Self::header_timeout) (3 s) is closed, and when
/// [`max_connections`](Self::max_connections) are open a new connection evicts the oldest one
/// still sending its head (or else the oldest). Idle or trickling sockets cannot keep the
/// browser's redirect out.
///
/// ```no_run
/// use std::time::Duration;
/// use oauth_layer::flow::{AuthCode, auth_code::LoopbackReceiver};
///
/// let flow = AuthCode::new().receiver(
///     LoopbackReceiver::new()
///         .path("/oauth/callback")
///         .client_timeout(Duration::from_secs(5)),
/// );
/// # let _ = flow;
/// ```
///
/// [`AuthCode`]: super::AuthCode
/// [`AuthCode::pages`]: super::AuthCode::pages
#[derive(Debug, Clone)]
#[must_use]
pub struct LoopbackReceiver {
    path: String,
    ipv6: bool,
    max_connections: usize,
    client_timeout: Duration,
    header_timeout: Duration,
}

impl Default for LoopbackReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopbackReceiver {
    /// A receiver on `127.0.0.1`, on a free port unless the redirect URI names one.
    pub fn new() -> Self {
        Self {
            path: DEFAULT_CALLBACK_PATH.to_owned(),
            ipv6: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }

    /// The callback path when the flow has no configured redirect URI (default `/callback`).
    /// A configured redirect URI's own path always wins. It must start with `/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Listen on `[::1]` instead of `127.0.0.1` when the flow has no configured redirect URI.
    pub fn bind_ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// How many connections are served at once (default 16, at least 1). A connection beyond
    /// that evicts the oldest one still sending its request head (or, when every one has sent
    /// it, the oldest), so connections held open by another program never keep the browser
    /// out.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a client may keep a connection in all, from connecting to having read the
    /// answer (default 10 s). Slower connections are closed.
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }

    /// How long a client may take from connecting to having sent its whole request line and
    /// headers (default 3 s; a browser sends them at once). A connection that is idle or sends
    /// its head a byte at a time is closed at this deadline, so it cannot hold a slot.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Where to listen (the addresses, and the port, 0 for any) and which redirect URI to name.
    fn plan(&self, configured: Option<&str>) -> Result<(Vec<IpAddr>, u16, Plan)> {
        let Some(configured) = configured else {
            if !self.path.starts_with('/') {
                return Err(Error::config(format!(
                    "the loopback callback path must start with '/', got {:?}",
                    self.path
                )));
            }
            let ip = if self.ipv6 {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            };
            return Ok((
                vec![ip],
                0,
                Plan::IpLiteral {
                    path: self.path.clone(),
                },
            ));
        };
        let needs = || {
            Error::config(format!(
                "the loopback receiver needs an http loopback redirect URI such as \
                 http://127.0.0.1:1410/callback, and the configured one is {configured:?}"
            ))
        };
        let url = Url::parse(configured).map_err(|_| needs())?;
        if url.scheme() != "http"
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(needs());
        }
        let ips = match url.host() {
            Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]
            }
            Some(Host::Ipv4(ip)) if ip.is_loopback() => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) if ip.is_loopback() => vec![IpAddr::V6(ip)],
            _ => return Err(needs()),
        };
        let path = url.path().to_owned();
        match url.port() {
            Some(port) => Ok((
                ips,
                port,
                Plan::AsGiven {
                    uri: configured.to_owned(),
                    path,
                },
            )),
            None => Ok((ips, 0, Plan::WithPort { url, path })),
        }
    }
}

/// How the redirect URI is made once the port is known.
enum Plan {
    /// `http://127.0.0.1:PORT/path` (or `[::1]`).
    IpLiteral { path: String },
    /// The configured URI had a port: it is named exactly as given.
    AsGiven { uri: String, path: String },
    /// The configured URI had no port: it gets the one we were given.
    WithPort { url: Url, path: String },
}

#[async_trait]
impl CodeReceiver for LoopbackReceiver {
    async fn prepare(&self, configured: Option<&str>) -> Result<Box<dyn PreparedReceiver>> {
        let (mut ips, port, plan) = self.plan(configured)?;
        if ips.len() > 1 {
            // `localhost`: also whatever other loopback address the system resolves it to.
            let lookup = tokio::net::lookup_host(("localhost", 0));
            for resolved in tokio::time::timeout(Duration::from_secs(1), lookup)
                .await
                .into_iter()
                .flatten()
                .flatten()
            {
                let ip = resolved.ip();
                if ip.is_loopback() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        let listeners = bind_all(&ips, port).await?;
        let local = listeners
            .first()
            .ok_or_else(|| Error::Internal("the loopback receiver bound no address".into()))?
            .local_addr()
            .map_err(|e| Error::Internal(format!("the loopback listener has no address: {e}")))?;
        let (redirect_uri, path) = match plan {
            Plan::IpLiteral { path } => (format!("http://{local}{path}"), path),
            Plan::AsGiven { uri, path } => (uri, path),
            Plan::WithPort { mut url, path } => {
                url.set_port(Some(local.port()))
                    .map_err(|()| Error::config("the redirect URI cannot take a port"))?;
                (url.to_string(), path)
            }
        };
        tracing::debug!(%redirect_uri, addresses = listeners.len(), "loopback receiver listening");
        Ok(Box::new(Listening {
            listeners,
            redirect_uri,
            settings: Arc::new(Settings {
                path,
                port: local.port(),
                client_timeout: self.client_timeout,
                header_timeout: self.header_timeout,
            }),
            max_connections: self.max_connections,
        }))
    }
}

/// Listens on `port` (0: a free one) of every address in `ips`, the same port on all. The
/// first address must be available; the others may be missing from the machine (no IPv6),
/// but not taken by another program, who would otherwise receive the code.
async fn bind_all(ips: &[IpAddr], port: u16) -> Result<Vec<TcpListener>> {
    let Some((&first, others)) = ips.split_first() else {
        return Err(Error::Internal("no loopback address to listen on".into()));
    };
    let mut attempt = 0;
    'draw: loop {
        attempt += 1;
        let addr = SocketAddr::new(first, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_error(addr, &e))?;
        let chosen = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("the loopback listener has no address: {e}")))?
            .port();
        let mut listeners = vec![listener];
        for &ip in others {
            let addr = SocketAddr::new(ip, chosen);
            match TcpListener::bind(addr).await {
                Ok(listener) => listeners.push(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && port == 0 => {
                    if attempt < PORT_ATTEMPTS {
                        continue 'draw;
                    }
                    return Err(taken_error(addr));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(taken_error(addr)),
                Err(error) => {
                    // The machine lacks this address (no IPv6): nobody can listen there.
                    tracing::debug!(%addr, %error, "loopback receiver: address unavailable");
                }
            }
        }
        return Ok(listeners);
    }
}

/// The error for one of `localhost`'s addresses taken by another program.
fn taken_error(addr: SocketAddr) -> Error {
    Error::config(format!(
        "cannot listen for the sign-in redirect on {addr}, one of the addresses `localhost` \
         may resolve to: another program listens there and could receive the code. Close it, \
         or register and configure an IP-literal redirect URI such as \
         http://127.0.0.1:{port}/callback",
        port = addr.port()
    ))
}

/// A clear error for a port we could not listen on.
fn bind_error(addr: SocketAddr, e: &io::Error) -> Error {
    let port = addr.port();
    if e.kind() == io::ErrorKind::AddrInUse {
        Error::config(format!(
            "cannot listen for the sign-in redirect on {addr}: port {port} is in use by another \
             program. Close the program using port {port}, or register a redirect URI with \
             another port with the provider and configure that one"
        ))
    } else {
        Error::config(format!(
            "cannot listen for the sign-in redirect on {addr} (port {port}): {e}"
        ))
    }
}

/// What every connection needs to know.
#[derive(Debug)]
struct Settings {
    path: String,
    port: u16,
    client_timeout: Duration,
    header_timeout: Duration,
}

/// A callback handed from a connection to the waiting flow, with the way to answer it.
struct Delivery {
    callback: Callback,
    reply: oneshot::Sender<Page>,
    connection: u64,
}

/// The bound listener, waiting for [`PreparedReceiver::receive`].
struct Listening {
    listeners: Vec<TcpListener>,
    redirect_uri: String,
    settings: Arc<Settings>,
    max_connections: usize,
}

#[async_trait]
impl PreparedReceiver for Listening {
    fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    async fn receive(
        self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode> {
        let Listening {
            listeners,
            settings,
            max_connections,
            ..
        } = *self;
        let pages = Arc::clone(&context.pages);
        let (deliver, mut delivered) = mpsc::channel::<Delivery>(max_connections);
        // Dropping the set (on return, or when this future is dropped) aborts every connection.
        let mut connections: JoinSet<u64> = JoinSet::new();
        // The open connections, oldest first.
        let mut open: VecDeque<Open> = VecDeque::new();
        let mut next_id: u64 = 0;
        let deadline = tokio::time::sleep(context.timeout());
        tokio::pin!(deadline);
        // Why the last callback that reached us was ignored: a server that answers wrongly (a
        // signed response that does not verify, a foreign iss) otherwise leaves only a timeout.
        let mut last_ignored: Option<Error> = None;

        let (outcome, answered_on) = loop {
            tokio::select! {
                () = &mut deadline => {
                    let ignored = last_ignored
                        .map(|error| format!(
                            "; the last answer that reached the receiver was refused: {error}"
                        ))
                        .unwrap_or_default();
                    return Err(Error::Timeout(format!(
                        "nobody completed the sign-in in the browser within {}{ignored}",
                        describe(context.timeout())
                    )));
                }
                accepted = accept_any(&listeners) => match accepted {
                    Ok(stream) => {
                        if open.len() >= max_connections {
                            evict(&mut open);
                        }
                        let id = next_id;
                        next_id = next_id.wrapping_add(1);
                        let settings = Arc::clone(&settings);
                        let pages = Arc::clone(&pages);
                        let deliver = deliver.clone();
                        let head_sent = Arc::new(AtomicBool::new(false));
                        let sent = Arc::clone(&head_sent);
                        let abort = connections.spawn(async move {
                            serve(stream, id, &settings, &pages, deliver, sent).await;
                            id
                        });
                        open.push_back(Open { head_sent, abort });
                        // Let the new connection read its head before accepting more: a browser
                        // sends it at once, and then it is no longer first in line for eviction,
                        // however fast another program opens connections.
                        tokio::task::yield_now().await;
                    }
                    Err(error) => {
                        // Usually too many open files; back off instead of spinning.
                        tracing::debug!(%error, "loopback receiver: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(Delivery { callback, reply, connection }) = delivered.recv() => {
                    match request.check_callback(&callback) {
                        Checked::NotOurs(error) => {
                            tracing::debug!(%error, "loopback receiver: ignored a callback");
                            let _ = reply.send(Page::NotThisSignIn);
                            last_ignored = Some(error);
                        }
                        Checked::Done(outcome) => {
                            let page = match &outcome {
                                Ok(_) => Page::SignedIn,
                                Err(error) => Page::failure(error),
                            };
                            let _ = reply.send(page);
                            break (outcome, connection);
                        }
                    }
                }
                Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                    let task = match done {
                        Ok((task, _)) => task,
                        Err(error) => error.id(),
                    };
                    open.retain(|o| o.abort.id() != task);
                }
            }
        };

        // Close the port now; then let the connection that brought the answer finish writing
        // its page, for no longer than a client may take.
        drop(listeners);
        let _ = tokio::time::timeout(settings.client_timeout, async {
            while let Some(done) = connections.join_next().await {
                if done.is_ok_and(|id| id == answered_on) {
                    break;
                }
            }
        })
        .await;
        outcome
    }
}

/// An open connection.
struct Open {
    /// Set once its whole request head has arrived.
    head_sent: Arc<AtomicBool>,
    abort: AbortHandle,
}

/// Closes the oldest connection still sending its request head (idle, or trickling it), or
/// else the oldest: a slot for the connection just accepted.
fn evict(open: &mut VecDeque<Open>) {
    let victim = open
        .iter()
        .position(|o| !o.head_sent.load(Ordering::Acquire))
        .unwrap_or(0);
    if let Some(o) = open.remove(victim) {
        tracing::debug!("loopback receiver: closed the oldest waiting connection for a new one");
        o.abort.abort();
    }
}

/// The next connection on any of the listeners.
fn accept_any(listeners: &[TcpListener]) -> impl Future<Output = io::Result<TcpStream>> + '_ {
    std::future::poll_fn(move |cx| {
        for listener in listeners {
            if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                return Poll::Ready(accepted.map(|(stream, _)| stream));
            }
        }
        Poll::Pending
    })
}

/// `5 min`, `30 s`, `300 ms`.
pub(super) fn describe(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else if secs > 0 {
        format!("{secs} s")
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// Serves one connection: one request (no keep-alive), a capped head, two deadlines. Sets
/// `head_sent` once the request head has arrived.
async fn serve(
    stream: TcpStream,
    id: u64,
    settings: &Arc<Settings>,
    pages: &Arc<LoopbackPages>,
    deliver: mpsc::Sender<Delivery>,
    head_sent: Arc<AtomicBool>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(settings);
    let shared_pages = Arc::clone(pages);
    let sent = Arc::clone(&head_sent);
    let service = service_fn(move |request| {
        sent.store(true, Ordering::Release);
        let settings = Arc::clone(&shared);
        let pages = Arc::clone(&shared_pages);
        let deliver = deliver.clone();
        async move { Ok::<_, Infallible>(handle(&settings, &pages, id, request, &deliver).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Our own header deadline below: hyper's adds the duration to an instant unchecked.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    // The header deadline closes a client that never finishes its request head, counted from
    // the connection's start; the client deadline also covers one that never reads the answer.
    // (tokio's timers take any duration, `Duration::MAX` included.)
    let connection = tokio::time::timeout(settings.client_timeout, connection);
    tokio::pin!(connection);
    let header_deadline = tokio::time::sleep(settings.header_timeout);
    tokio::pin!(header_deadline);
    let mut head_checked = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut connection => break outcome,
            () = &mut header_deadline, if !head_checked => {
                if !head_sent.load(Ordering::Acquire) {
                    tracing::debug!("loopback receiver: closed a connection that sent no request");
                    return;
                }
                head_checked = true;
            }
        }
    };
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "loopback receiver: connection failed"),
        Err(_) => tracing::debug!("loopback receiver: closed a slow connection"),
    }
}

async fn handle(
    settings: &Settings,
    pages: &LoopbackPages,
    id: u64,
    request: http::Request<Incoming>,
    deliver: &mpsc::Sender<Delivery>,
) -> Response<Full<Bytes>> {
    if !host_is_ours(&request, settings.port) {
        return pages.response(Page::BadRequest);
    }
    if request.uri().path() != settings.path {
        return pages.response(Page::NotFound);
    }
    if request.method() != Method::GET {
        return pages.response(Page::MethodNotAllowed);
    }
    let callback = Callback::from_query(request.uri().query().unwrap_or(""));
    let (reply, answer) = oneshot::channel();
    let delivery = Delivery {
        callback,
        reply,
        connection: id,
    };
    if deliver.send(delivery).await.is_err() {
        return pages.response(Page::Over);
    }
    match answer.await {
        Ok(page) => pages.response(page),
        Err(_) => pages.response(Page::Over),
    }
}

/// `true` when the request names us by a loopback name and our port, in its one `Host` header
/// and in its target if that is absolute: a page on another site that had its name resolve to
/// 127.0.0.1 (DNS rebinding) is refused.
fn host_is_ours(request: &http::Request<Incoming>, port: u16) -> bool {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    host.to_str().is_ok_and(|h| authority_is_ours(h, port))
        && request
            .uri()
            .authority()
            .is_none_or(|a| authority_is_ours(a.as_str(), port))
}

fn authority_is_ours(authority: &str, port: u16) -> bool {
    let Some((name, given_port)) = authority.rsplit_once(':') else {
        return false;
    };
    if given_port != port.to_string() {
        return false;
    }
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_with_our_port_are_ours() {
        assert!(authority_is_ours("127.0.0.1:4000", 4000));
        assert!(authority_is_ours("localhost:4000", 4000));
        assert!(authority_is_ours("LocalHost:4000", 4000));
        assert!(authority_is_ours("[::1]:4000", 4000));
        assert!(!authority_is_ours("127.0.0.1:4001", 4000));
        assert!(!authority_is_ours("127.0.0.1:+4000", 4000));
        assert!(!authority_is_ours("127.0.0.1", 4000));
        assert!(!authority_is_ours("evil.example:4000", 4000));
        assert!(!authority_is_ours("localhost.evil.example:4000", 4000));
        assert!(!authority_is_ours("[::2]:4000", 4000));
    }

    #[test]
    fn waits_are_described_in_words() {
        assert_eq!(describe(Duration::from_secs(300)), "5 min");
        assert_eq!(describe(Duration::from_secs(90)), "90 s");
        assert_eq!(describe(Duration::from_millis(300)), "300 ms");
    }
}
