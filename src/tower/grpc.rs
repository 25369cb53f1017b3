//! gRPC over tonic channels: [`OAuthLayer::grpc`](crate::OAuthLayer::grpc), and what the layer
//! does when a gRPC server says "unauthenticated".
//!
//! A gRPC server rejects a token with HTTP `200` and `grpc-status: 16` (`UNAUTHENTICATED`),
//! never with a `401`. The status comes in the response headers when the server answers at once
//! (a *trailers-only* response, what tonic's interceptors send), or in the trailers after the
//! headers (a handler that failed after it started to answer).
//!
//! - Every [`OAuthLayer`](crate::OAuthLayer) treats a trailers-only `UNAUTHENTICATED` like a
//!   `401` with `invalid_token`: the token sent is dropped (generation-checked: not if a newer
//!   one is already cached), and the call is retried once with a renewed token if its body can
//!   be sent again. tonic's request body cannot be copied, so over a plain `OAuthLayer` the call
//!   gets its `UNAUTHENTICATED` back and the *next* call renews.
//! - [`OAuthLayer::grpc`](crate::OAuthLayer::grpc) makes tonic's request bodies replayable
//!   ([`RecordingBody`](super::RecordingBody)), so the call itself is retried once and succeeds,
//!   and also watches the response trailers: an `UNAUTHENTICATED` there drops the token sent, so
//!   the next call renews (that call is not retried: its answer has already begun).

mod layer;
mod trailers;

pub use layer::{OAuthGrpcLayer, OAuthGrpcService};
pub use trailers::{TrailersBody, WatchTrailers, WatchTrailersFuture};

impl super::ReplayableBody for tonic::body::Body {
    /// A tonic body is a stream: it cannot be copied.
    /// [`OAuthLayer::grpc`](crate::OAuthLayer::grpc) wraps it in a
    /// [`RecordingBody`](super::RecordingBody), which can.
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}
