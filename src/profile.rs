//! Security profiles: one setting that turns on everything a published profile requires and
//! refuses, when the client is built, a configuration that breaks it.
//!
//! [`Profile::Fapi2`] is the [FAPI 2.0 Security Profile], the one open banking, health and
//! government APIs ask for; [`Profile::Fapi2MessageSigning`] adds its Message Signing variant.
//! Set it on the client with [`OAuthClientBuilder::profile`]; every token source, layer and
//! middleware built on that client follows it.
//!
//! What the profile turns on by itself:
//!
//! - pushed authorization requests (RFC 9126) for every sign-in, PKCE with S256, and the `iss`
//!   parameter required in the authorization response (RFC 9207);
//! - client assertions addressed to the issuer identifier alone (the FAPI 2.0 answer to the
//!   2024 audience-injection attacks on `private_key_jwt`) and valid for at most
//!   [`MAX_JWT_LIFETIME`];
//! - ID tokens accepted only when signed with PS256, ES256 or EdDSA;
//! - tokens cached apart from tokens obtained without the profile.
//!
//! What it refuses, each with an error that names the requirement:
//!
//! - client authentication other than `private_key_jwt` or mutual TLS (`tls_client_auth`,
//!   `self_signed_tls_client_auth`): no shared secrets, no public clients;
//! - a signing key of any algorithm but PS256, ES256 or EdDSA (so RS256 is refused);
//! - a client whose tokens would not be sender-constrained: it needs DPoP
//!   ([`OAuthClientBuilder::dpop`]) or a client certificate for certificate-bound tokens;
//! - the password grant; an authorization code flow with PKCE or pushed requests turned off,
//!   or with response parameters of the implicit flows (`response_mode` other than the
//!   profile's own).
//!
//! The check runs in [`OAuthClientBuilder::build`] for the client and in
//! [`TokenSourceBuilder::try_build`](crate::TokenSourceBuilder::try_build) for the flow (a flow
//! is checked with [`Flow::conforms`](crate::flow::Flow::conforms)).
//!
//! [FAPI 2.0 Security Profile]: https://openid.net/specs/fapi-security-profile-2_0-final.html
//! [`OAuthClientBuilder::profile`]: crate::OAuthClientBuilder::profile
//! [`OAuthClientBuilder::build`]: crate::OAuthClientBuilder::build
//! [`OAuthClientBuilder::dpop`]: crate::OAuthClientBuilder::dpop

use std::fmt;
use std::time::Duration;

use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Error, Result};

/// The longest lifetime of a JWT the client signs under a profile (client assertions, request
/// objects): one minute, so a captured one is worthless almost at once.
pub const MAX_JWT_LIFETIME: Duration = Duration::from_secs(60);

/// A security profile the client follows (see the [module documentation](self)).
///
/// ```
/// use oauth_layer::{OAuthClient, profile::Profile};
///
/// // A shared secret is not strong enough for FAPI 2.0: the client is refused at build time.
/// let err = OAuthClient::builder("bank-app")
///     .secret("s3cret")
///     .issuer("https://bank.example")
///     .token_url("https://bank.example/token")
///     .profile(Profile::Fapi2)
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("client_secret_basic"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// The FAPI 2.0 Security Profile.
    Fapi2,
    /// The FAPI 2.0 Security Profile with its Message Signing variant: authorization requests
    /// go as signed request objects (JAR, RFC 9101) and authorization responses come back
    /// signed (JARM).
    Fapi2MessageSigning,
}

/// The signing algorithms FAPI 2.0 permits (§5.4): PS256, ES256 and EdDSA.
pub const FAPI2_ALGORITHMS: [&str; 3] = ["PS256", "ES256", "EdDSA"];

impl Profile {
    /// The profile's name, as errors and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fapi2 => "FAPI 2.0",
            Self::Fapi2MessageSigning => "FAPI 2.0 Message Signing",
        }
    }

    /// The short name used in cache keys and on the command line (`fapi2`,
    /// `fapi2-message-signing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fapi2 => "fapi2",
            Self::Fapi2MessageSigning => "fapi2-message-signing",
        }
    }

    /// The profile named `name` (as [`as_str`](Self::as_str) spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "fapi2" => Some(Self::Fapi2),
            "fapi2-message-signing" => Some(Self::Fapi2MessageSigning),
            _ => None,
        }
    }

    /// Whether authorization requests must be signed request objects and responses signed JWTs.
    pub fn signs_messages(self) -> bool {
        self == Self::Fapi2MessageSigning
    }

    /// The JWS algorithms allowed for every signature the client makes or checks.
    pub fn algorithms(self) -> &'static [&'static str] {
        &FAPI2_ALGORITHMS
    }

    /// Whether `alg` (a JWS algorithm name) is allowed.
    pub fn allows_algorithm(self, alg: &str) -> bool {
        self.algorithms().contains(&alg)
    }

    /// An error saying that `requirement` of this profile is broken, and `why` it exists.
    pub(crate) fn violation(self, requirement: &str, why: &str) -> Error {
        Error::config(format!("the {} profile {requirement}: {why}", self.name()))
    }

    /// Checks a built client against the profile: its authentication, keys and sender
    /// constraint.
    pub(crate) fn check_client(self, client: &OAuthClient) -> Result<()> {
        let method = client.auth_method();
        if !allowed_auth_method(method) {
            return Err(self.violation(
                &format!(
                    "requires private_key_jwt or mutual TLS client authentication, not {}",
                    method.as_str()
                ),
                "a shared secret can be phished or leaked from the server, and a public client \
                 proves nothing (FAPI 2.0 §5.3.2.1). Set a signing key \
                 (OAuthClientBuilder::signing_key) or a client certificate",
            ));
        }
        #[cfg(feature = "jwt")]
        if let Some(alg) = client.signing_key_algorithm()
            && !self.allows_algorithm(alg.as_str())
        {
            return Err(self.violation(
                &format!("does not allow {alg} signatures"),
                "only PS256, ES256 and EdDSA are permitted (FAPI 2.0 §5.4); RS256's PKCS#1 \
                 v1.5 padding is not. Load the key with SigningKey::ps256_pem, es256_pem or \
                 eddsa_pem",
            ));
        }
        if method_signs(method) && client.issuer().is_none() {
            return Err(self.violation(
                "addresses client assertions to the issuer identifier, and none is configured",
                "an assertion addressed to an endpoint URL can be replayed by a server that \
                 lies about its endpoints (FAPI 2.0 §5.3.2.1). Configure the issuer \
                 (OAuthClientBuilder::issuer, or discovery)",
            ));
        }
        if !sender_constrained(client) {
            return Err(self.violation(
                "requires sender-constrained tokens",
                "a bearer token works for whoever holds it (FAPI 2.0 §5.3.2.1). Turn on DPoP \
                 (OAuthClientBuilder::dpop) or present a client certificate for \
                 certificate-bound tokens",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The client authentication methods FAPI 2.0 permits.
fn allowed_auth_method(method: AuthMethod) -> bool {
    #[cfg(feature = "jwt")]
    if method == AuthMethod::PrivateKeyJwt {
        return true;
    }
    method.is_mutual_tls()
}

/// Whether `method` signs a client assertion (whose audience the profile fixes).
fn method_signs(method: AuthMethod) -> bool {
    #[cfg(feature = "jwt")]
    if method == AuthMethod::PrivateKeyJwt {
        return true;
    }
    let _ = method;
    false
}

/// Whether the client's tokens are bound to something only it holds.
fn sender_constrained(client: &OAuthClient) -> bool {
    #[cfg(feature = "dpop")]
    if client.dpop().is_some() {
        return true;
    }
    // Its tokens are bound to the certificate it presents (RFC 8705 §3).
    client.has_client_certificate()
}
