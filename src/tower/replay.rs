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

/// What the one retry after a 401 sends again: a readied service and a copy of the request,
/// kept field by field (the token is not among them: the copy is taken before it goes in, and
/// the retry sets the renewed one).
pub(crate) struct Replay<S, B> {
    service: S,
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: B,
}

impl<S, B: ReplayableBody> Replay<S, B> {
    /// A copy of `request` to go with `service`, if its body can be replayed. Boxed: a request
    /// head is a few hundred bytes, and the response future is moved before it is polled.
    #[inline]
    pub(crate) fn of(request: &http::Request<B>, service: impl FnOnce() -> S) -> Option<Box<Self>> {
        let body = request.body().try_clone_body()?;
        Some(Box::new(Self {
            service: service(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            // An empty map costs nothing to make, where a clone still runs the copy of its three
            // (empty) tables, and a drop.
            headers: if request.headers().is_empty() {
                http::HeaderMap::new()
            } else {
                request.headers().clone()
            },
            extensions: request.extensions().clone(),
            body,
        }))
    }

    /// The readied service, for the first send.
    pub(crate) fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// The service, and the request to send to it again.
    pub(crate) fn into_parts(self) -> (S, http::Request<B>) {
        let mut request = http::Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        *request.extensions_mut() = self.extensions;
        (self.service, request)
    }
}
