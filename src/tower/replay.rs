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
    uri: KeptUri,
    version: http::Version,
    /// `None` for a request without headers: an empty map costs nothing to make, but its drop
    /// still runs (a few dozen instructions per request, for nothing).
    headers: Option<http::HeaderMap>,
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
            uri: KeptUri::of(request.uri()),
            version: request.version(),
            // A clone of an empty map would still copy its three (empty) tables.
            headers: (!request.headers().is_empty()).then(|| request.headers().clone()),
            extensions: request.extensions().clone(),
            body,
        }))
    }

    /// The readied service, for the first send.
    pub(crate) fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// The service, and the request to send to it again (`None` only if the URI kept as text
    /// does not parse again, which a URI that parsed once does).
    pub(crate) fn into_parts(self) -> Option<(S, http::Request<B>)> {
        let mut request = http::Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri.into_uri()?;
        *request.version_mut() = self.version;
        if let Some(headers) = self.headers {
            *request.headers_mut() = headers;
        }
        *request.extensions_mut() = self.extensions;
        Some((self.service, request))
    }
}

/// The longest URI (authority, path and query together) a copy keeps as text. The copy is then
/// 240 bytes; with 128 (a 272-byte copy) every request's allocation missed glibc's per-thread
/// cache on the benchmark machine (+165 instructions in `_int_malloc`, callgrind).
const KEPT_URI_BYTES: usize = 96;

/// The request's URI as the copy keeps it. A `Uri` is three reference-counted buffers, and a
/// clone and its drop are four atomic operations, the dearest part of the copy (a third of a
/// request's time on the benchmark machine, `perf record`); the copy is used only after a 401,
/// so an `https` or `http` URI whose authority, path and query fit in [`KEPT_URI_BYTES`] is
/// kept as text inside the copy (the scheme as a flag: no third `memcpy`), and parsed again
/// only for the retry. Other URIs are cloned.
enum KeptUri {
    Text {
        /// `https`, else `http`.
        https: bool,
        /// The authority, then the path and query.
        text: [u8; KEPT_URI_BYTES],
        authority_end: u8,
        end: u8,
    },
    Uri(http::Uri),
}

impl KeptUri {
    #[inline]
    fn of(uri: &http::Uri) -> Self {
        let https = match uri.scheme() {
            Some(scheme) if *scheme == http::uri::Scheme::HTTPS => true,
            Some(scheme) if *scheme == http::uri::Scheme::HTTP => false,
            _ => return KeptUri::Uri(uri.clone()),
        };
        if let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) {
            let (authority, path) = (authority.as_str().as_bytes(), path.as_str().as_bytes());
            let authority_end = authority.len();
            let end = authority_end + path.len();
            if end <= KEPT_URI_BYTES {
                let mut text = [0; KEPT_URI_BYTES];
                text[..authority_end].copy_from_slice(authority);
                text[authority_end..end].copy_from_slice(path);
                // In range: each is at most `KEPT_URI_BYTES`, which is below 256.
                #[allow(clippy::cast_possible_truncation)]
                return KeptUri::Text {
                    https,
                    text,
                    authority_end: authority_end as u8,
                    end: end as u8,
                };
            }
        }
        KeptUri::Uri(uri.clone())
    }

    fn into_uri(self) -> Option<http::Uri> {
        match self {
            KeptUri::Uri(uri) => Some(uri),
            KeptUri::Text {
                https,
                text,
                authority_end,
                end,
            } => {
                let part = |from: u8, to: u8| text.get(usize::from(from)..usize::from(to));
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(if https {
                    http::uri::Scheme::HTTPS
                } else {
                    http::uri::Scheme::HTTP
                });
                parts.authority = Some(part(0, authority_end)?.try_into().ok()?);
                parts.path_and_query = Some(part(authority_end, end)?.try_into().ok()?);
                http::Uri::from_parts(parts).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every URI comes back as it went in, kept as text or cloned.
    #[test]
    fn a_kept_uri_comes_back_unchanged() {
        let long = format!("https://api.example/{}", "x".repeat(KEPT_URI_BYTES));
        // Authority and path exactly fill the text.
        let fits = format!("http://api.example/{}", "x".repeat(KEPT_URI_BYTES - 12));
        for text in [
            &fits,
            "https://api.example/things",
            "HTTPS://API.Example:8443/a/b?c=d&e=%20f",
            "http://127.0.0.1:8080/",
            "https://user@[::1]:443/?",
            "https://api.example?only=query",
            "grpc+custom://svc.internal/pkg.Service/Method",
            "/relative?only=path",
            "*",
            "api.example:443",
            &long,
        ] {
            let uri: http::Uri = text.parse().unwrap();
            let kept = KeptUri::of(&uri);
            let is_text = matches!(kept, KeptUri::Text { .. });
            let back = kept.into_uri().unwrap();
            assert_eq!(back, uri, "{text}");
            assert_eq!(back.to_string(), uri.to_string(), "{text}");
            assert_eq!(back.path_and_query(), uri.path_and_query(), "{text}");
            let scheme = uri.scheme_str().unwrap_or_default();
            let web = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http");
            assert_eq!(
                is_text,
                web && text.len() - scheme.len() - "://".len() <= KEPT_URI_BYTES,
                "{text}"
            );
        }
    }
}
