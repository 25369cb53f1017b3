//! gRPC: how a gRPC server says "unauthenticated", and `OAuthLayer::grpc` for tonic channels.
//!
//! A gRPC server rejects a token with HTTP `200` and `grpc-status: 16` (`UNAUTHENTICATED`),
//! never with a `401`. The status comes in the response headers when the server answers at once
//! (a *trailers-only* response, what tonic's interceptors send), or in the trailers after the
//! headers (a handler that failed after it started to answer).
//!
//! - Every [`OAuthLayer`](crate::OAuthLayer) treats a trailers-only `UNAUTHENTICATED` like a
//!   `401` with `invalid_token`: the token sent is dropped (generation-checked: not if a newer
//!   one is already cached), and the call is retried once with a renewed token if its body can
//!   be sent again.
//!   tonic's request body cannot be copied, so over a plain `OAuthLayer` the call gets its
//!   `UNAUTHENTICATED` back and the *next* call renews.
//! - `OAuthLayer::grpc` (feature `tonic`) makes tonic's request bodies replayable
//!   ([`RecordingBody`](super::RecordingBody)), so the call itself is retried once and succeeds,
//!   and also watches the response trailers: an `UNAUTHENTICATED` there drops the token sent, so
//!   the next call renews (that call is not retried: its answer has already begun).

use http::HeaderMap;

#[cfg(feature = "tonic")]
mod layer;
#[cfg(feature = "tonic")]
mod trailers;

#[cfg(feature = "tonic")]
pub use layer::{OAuthGrpcLayer, OAuthGrpcService};
#[cfg(feature = "tonic")]
pub use trailers::{TrailersBody, WatchTrailers, WatchTrailersFuture};

/// The `grpc-status` header (or trailer).
const GRPC_STATUS: &str = "grpc-status";

/// `grpc-status` `UNAUTHENTICATED` (gRPC status codes, `doc/statuscodes.md`).
const UNAUTHENTICATED: &[u8] = b"16";

/// `true` when `headers` (a response's headers or its trailers) carry `grpc-status: 16`: the
/// gRPC server did not accept the token, and a renewed one may work.
pub(crate) fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes().trim_ascii() == UNAUTHENTICATED)
}

#[cfg(feature = "tonic")]
impl super::ReplayableBody for tonic::body::Body {
    /// A tonic body is a stream: it cannot be copied.
    /// [`OAuthLayer::grpc`](crate::OAuthLayer::grpc) wraps it in a
    /// [`RecordingBody`](super::RecordingBody), which can.
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            GRPC_STATUS,
            status.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    #[test]
    fn only_status_16_is_unauthenticated() {
        assert!(grpc_unauthenticated(&headers("16")));
        assert!(grpc_unauthenticated(&headers(" 16 ")));
        for other in ["0", "7", "160", "1", "", "sixteen"] {
            assert!(!grpc_unauthenticated(&headers(other)), "{other}");
        }
        assert!(!grpc_unauthenticated(&HeaderMap::new()));
    }
}
