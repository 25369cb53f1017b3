//! [`Scoped`]: the grants whose scopes a layer's or middleware's shorthand constructor can still
//! add to.

#[cfg(feature = "auth-code")]
use super::AuthCode;
#[cfg(feature = "jwt")]
use super::JwtBearer;
use super::{ClientCredentials, DeviceCode, Flow, Password, RefreshToken, TokenExchange};

/// A grant of this crate that takes scopes: what
/// [`OAuthLayer::scope`](crate::OAuthLayer::scope) and
/// [`OAuthMiddleware::scope`](crate::OAuthMiddleware::scope) need from the grant a shorthand
/// constructor (`client_credentials`, `auth_code`, ...) chose.
///
/// A layer or middleware made with `from_source` or `with_flow` has no such grant, so `scope`
/// does not compile there: set the scopes on the flow the source is made from. The trait is
/// sealed; for a flow of your own, configure it before handing it over.
pub trait Scoped: Flow + sealed::Sealed {}

pub(crate) mod sealed {
    /// What a layer needs to reconfigure a shorthand's grant; not for implementing elsewhere.
    pub trait Sealed: Sized {
        /// The grant with one more scope.
        fn add_scope(self, scope: String) -> Self;
        /// A copy to build a new source from, as the grant was configured (never used yet).
        fn unused_copy(&self) -> Self;
    }
}

macro_rules! scoped {
    ($($(#[$cfg:meta])* $flow:ty),* $(,)?) => {$(
        $(#[$cfg])*
        impl Scoped for $flow {}
        $(#[$cfg])*
        impl sealed::Sealed for $flow {
            fn add_scope(self, scope: String) -> Self {
                self.scope(scope)
            }
            fn unused_copy(&self) -> Self {
                self.clone()
            }
        }
    )*};
}

scoped!(
    ClientCredentials,
    Password,
    DeviceCode,
    TokenExchange,
    #[cfg(feature = "auth-code")]
    AuthCode,
    #[cfg(feature = "jwt")]
    JwtBearer,
);

impl Scoped for RefreshToken {}

impl sealed::Sealed for RefreshToken {
    fn add_scope(self, scope: String) -> Self {
        self.scope(scope)
    }
    fn unused_copy(&self) -> Self {
        RefreshToken::unused_copy(self)
    }
}
