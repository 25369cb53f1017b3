//! TCP relays. [`TestServer`](oauth_layer::testing::TestServer) listens on the host's loopback
//! only, so the host relays each replica's link to it; and a replica reaches it through a
//! relay on its own loopback, because the crate sends tokens over plain `http` to loopback
//! addresses only. The host's relay also sees which replica sends each token request, and can
//! hold one back (the harness then kills the replica that sent it, mid-renewal).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Forwards every connection `listener` accepts to `upstream`, untouched.
pub(crate) async fn plain(listener: TcpListener, upstream: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// What the host's relays saw, shared by the relays of every replica.
#[derive(Default)]
pub(crate) struct Observed {
    /// When each token request arrived, from which replica, and whether it asked for a new
    /// grant (`grant_type=password`) rather than a refresh.
    pub(crate) token_requests: Mutex<Vec<(Instant, usize, bool)>>,
    /// When set, the next token request is held (never forwarded) and its replica is sent here.
    pub(crate) hold_next: Mutex<Option<oneshot::Sender<usize>>>,
}

/// Forwards replica `replica`'s connections to `upstream`, noting its token requests in
/// `observed`.
pub(crate) async fn observed(
    listener: TcpListener,
    upstream: SocketAddr,
    replica: usize,
    observed: Arc<Observed>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        let observed = observed.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut in_read, mut in_write) = inbound.into_split();
            let (mut out_read, mut out_write) = outbound.into_split();
            let back = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                let _ = in_write.shutdown().await;
            });
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match in_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if buf[..n].starts_with(b"POST /token ") {
                    let held = observed
                        .hold_next
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    if let Some(tell) = held {
                        // Never forwarded: the replica is killed before the server sees it.
                        let _ = tell.send(replica);
                        let _ = in_read.read(&mut buf).await;
                        break;
                    }
                    observed
                        .token_requests
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), replica, new_grant(&buf[..n])));
                }
                if out_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = out_write.shutdown().await;
            back.abort();
        });
    }
}

/// Whether a token request (headers and, as clients send small forms, the body in the same
/// write) asks for a new grant rather than a refresh.
fn new_grant(request: &[u8]) -> bool {
    request
        .windows(b"grant_type=password".len())
        .any(|w| w == b"grant_type=password")
}
