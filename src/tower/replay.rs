//! Which request bodies can be sent twice, for the one retry after a 401.

use bytes::Bytes;

/// A request body the layer can copy before sending, so that a request rejected with a 401 can
/// be retried once with a renewed token (SECURITY.md rule 30).
///
/// Bodies held in memory answer with a copy; streaming bodies answer `None`, and such a request
/// gets its 401 back (the next request gets the fresh token). Implement it for your own body
/// type; a type from another crate can be wrapped in a newtype.
pub trait ReplayableBody: Sized {
    /// A copy of the body for a second send, or `None` if it cannot be replayed.
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! cloneable {
    ($($t:ty),* $(,)?) => {$(
        impl ReplayableBody for $t {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

cloneable!(
    (),
    String,
    Vec<u8>,
    Bytes,
    &'static str,
    &'static [u8],
    http_body_util::Full<Bytes>,
    http_body_util::Empty<Bytes>,
);

impl<E> ReplayableBody for http_body_util::combinators::BoxBody<Bytes, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<E> ReplayableBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

#[cfg(feature = "reqwest")]
impl ReplayableBody for reqwest::Body {
    fn try_clone_body(&self) -> Option<Self> {
        self.as_bytes()
            .map(|b| reqwest::Body::from(Bytes::copy_from_slice(b)))
    }
}

/// A copy of `request` (head and body) if its body can be replayed.
pub(crate) fn try_clone_request<B: ReplayableBody>(
    request: &http::Request<B>,
) -> Option<http::Request<B>> {
    let body = request.body().try_clone_body()?;
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}
