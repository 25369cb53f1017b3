//! The request path the tower layer and the reqwest middleware share, so both behave the same
//! (SECURITY.md §D and §E). Each request goes through four steps:
//!
//! 1. **plan** ([`plan`]): a request that already carries `Authorization`, or asks to be
//!    skipped ([`RequestAuth::Skip`](plan::RequestAuth::Skip)), goes as it is; one to an origin
//!    that may not have a token ([`origin`]) goes without one, and a `401` in answer says why
//!    ([`withheld`]); any other gets a token from the layer's source, or from the request's own
//!    ([`RequestAuth::Source`](plan::RequestAuth::Source)).
//! 2. **attach** ([`plan::set_token`]): the token is read from the source (lock-free almost
//!    always) and set as exactly one `Authorization` header, marked sensitive.
//! 3. **send**: the integration sends it through the service or the middleware chain below,
//!    keeping a copy for one retry when the request can be replayed.
//! 4. **act on the answer** ([`challenge`]): a `401` whose challenge says the token was not
//!    accepted drops that token and, with the copy, sends the request once more with a renewed
//!    one; anything else goes back to the caller.
//!
//! How a layer or middleware is made, one constructor per grant, is written once in
//! [`constructors`].

pub(crate) mod challenge;
pub(crate) mod constructors;
pub(crate) mod credentials;
pub(crate) mod origin;
pub(crate) mod plan;
pub(crate) mod upgrade;
pub(crate) mod withheld;
