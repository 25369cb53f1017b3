//! What the test server knows: its configuration, the tokens it issued, and what it counted.
//!
//! Everything mutable sits behind one `std::sync::Mutex`, taken only inside synchronous code so
//! it is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::client::AuthMethod;
use crate::clock::Clock;

use super::dpop::Nonce;
use super::{RecordedRequest, RecordedTokenRequest};

/// A client registration.
#[derive(Debug, Clone)]
pub(super) struct Registration {
    pub(super) secret: Option<String>,
    pub(super) method: AuthMethod,
    /// The public key its `private_key_jwt` assertions are checked with.
    #[cfg(feature = "jwt")]
    pub(super) key: Option<super::assertion::TrustedKey>,
    /// For a client registered at `/register`: the only redirect URIs it may use (a loopback
    /// one matches on any port). `None` for a client of the builder, which may also use any
    /// loopback URI.
    pub(super) redirect_uris: Option<Vec<String>>,
    /// For a client registered at `/register`: the grant types it may use (a refresh token is
    /// always redeemable by the client it was issued to). `None` allows every grant.
    pub(super) grant_types: Option<Vec<String>>,
}

/// The fixed configuration, set by the builder.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) clients: HashMap<String, Registration>,
    pub(super) users: HashMap<String, String>,
    pub(super) access_token_lifetime: Duration,
    pub(super) rotate_refresh_tokens: bool,
    pub(super) issue_refresh_tokens: bool,
    /// `(path, scope)`: a resource at exactly `path` needs `scope`.
    pub(super) required_scopes: Vec<(String, String)>,
    pub(super) clock: Arc<dyn Clock>,
    /// The server's base URL, sent as `iss` (RFC 9207).
    pub(super) issuer: String,
    /// `{issuer}/token`: with the issuer, what the `aud` of an assertion may name.
    pub(super) token_url: String,
    /// Who may sign JWT bearer grant assertions and JWT subject tokens, by `iss`.
    #[cfg(feature = "jwt")]
    pub(super) assertion_issuers: HashMap<String, super::assertion::TrustedKey>,
    /// The audiences and resources a token exchange may ask for; empty accepts any.
    pub(super) exchange_audiences: Vec<String>,
    /// The `authorization_details` types accepted (RFC 9396); `None` accepts any.
    pub(super) authorization_details_types: Option<Vec<String>>,
    /// When set, access tokens are this prefix and a count (`tok-1`, `tok-2`, ...).
    pub(super) numbered_access_tokens: Option<String>,
    /// Redirect URIs registered per client, besides any loopback URI.
    pub(super) redirect_uris: HashMap<String, Vec<String>>,
    pub(super) require_pkce: bool,
    pub(super) send_iss: bool,
    /// Who the automatic login signs in as when there is no `login_hint`.
    pub(super) default_user: String,
    pub(super) device_code_lifetime: Duration,
    /// The `interval` sent; `None` omits it and clients wait 5 s (RFC 8628 §3.5).
    pub(super) device_interval: Option<Duration>,
    pub(super) enforce_slow_down: bool,
    /// Whether DPoP is known at all; when not, proofs are ignored and tokens are bearer tokens.
    pub(super) support_dpop: bool,
    /// Token requests without a DPoP proof are refused.
    pub(super) require_dpop: bool,
    /// DPoP proofs at the token endpoint must carry its current nonce.
    pub(super) require_dpop_nonce: bool,
    /// DPoP proofs at the resource must carry the resource's current nonce.
    pub(super) require_resource_dpop_nonce: bool,
    /// A nonce is replaced after this many accepted proofs; `None` keeps it until rotated.
    pub(super) dpop_nonce_uses: Option<u32>,
    /// How far a proof's `iat` may be from the server's clock, either way.
    pub(super) dpop_iat_window: Duration,
    /// `(path, requirement)`: a resource at exactly `path` needs a stronger sign-in.
    pub(super) required_authentication: Vec<(String, AuthRequirement)>,
    /// `(path, claims JSON)` set by the builder: the first [`State::required_claims`].
    pub(super) required_claims: Vec<(String, String)>,
    /// Who may register clients at `/register`.
    pub(super) registration: super::RegistrationPolicy,
    /// Token requests without a `resource` parameter are refused (RFC 8707).
    pub(super) require_resource_indicator: bool,
    /// The protected resources with RFC 9728 metadata this server plays.
    pub(super) protected_resources: super::protected::Resources,
    /// Pushed authorization requests (RFC 9126).
    pub(super) par: super::par::ParConfig,
    /// Signed request objects (RFC 9101).
    pub(super) request_objects: super::request_object::RequestObjectConfig,
}

/// What a path asks of the sign-in behind a token (RFC 9470).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AuthRequirement {
    /// Space-separated `acr` values; the token's `acr` must be one of them.
    pub(super) acr_values: Option<String>,
    /// The sign-in must be at most this old.
    pub(super) max_age: Option<Duration>,
}

impl Config {
    pub(super) fn required_scope(&self, path: &str) -> Option<&str> {
        self.required_scopes
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, scope)| scope.as_str())
    }

    pub(super) fn required_authentication(&self, path: &str) -> Option<&AuthRequirement> {
        self.required_authentication
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, requirement)| requirement)
    }
}

/// Who a token was issued to and for what. Access and refresh tokens from one authorization
/// share a `grant` id, so revoking a refresh token can take its access tokens along (RFC 7009
/// §2.1).
#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub(super) id: u64,
    pub(super) client_id: String,
    pub(super) username: Option<String>,
    pub(super) scope: Option<String>,
    /// Who acts on the user's behalf, for a token from a token exchange with an actor.
    pub(super) actor: Option<String>,
    /// The audiences and resources a token exchange issued the token for.
    pub(super) audience: Vec<String>,
    /// The thumbprint of the DPoP key the tokens are bound to (`cnf.jkt`, RFC 9449 §6).
    pub(super) jkt: Option<String>,
    /// The authentication context class of the sign-in (RFC 9470), from `acr_values`.
    pub(super) acr: Option<String>,
    /// When the user signed in, for `max_age`.
    pub(super) auth_time: Option<SystemTime>,
    /// The `claims` parameter of the token or authorization request, parsed.
    pub(super) claims: Option<serde_json::Value>,
    /// The `authorization_details` of the token or authorization request (RFC 9396).
    pub(super) authorization_details: Option<serde_json::Value>,
    /// The resources (RFC 8707) the tokens are for; empty when the request named none.
    pub(super) resources: Vec<String>,
}

#[derive(Debug)]
pub(super) struct AccessToken {
    pub(super) grant: Grant,
    pub(super) expires_at: Instant,
}

/// An authorization code handed out by `/authorize`, kept after use so a replay can revoke what
/// it produced (RFC 6749 §4.1.2).
#[derive(Debug)]
pub(super) struct AuthorizationCode {
    pub(super) client_id: String,
    /// The `redirect_uri` parameter as sent, when it was sent.
    pub(super) redirect_uri_param: Option<String>,
    /// The redirect URI the code was delivered to.
    pub(super) redirect_uri: String,
    /// The S256 `code_challenge`, when one was sent.
    pub(super) code_challenge: Option<String>,
    pub(super) scope: Option<String>,
    /// Kept with the code for an ID token; the server issues none yet.
    #[allow(dead_code)]
    pub(super) nonce: Option<String>,
    pub(super) username: String,
    /// The first of the request's `acr_values`: the automatic login satisfies it.
    pub(super) acr: Option<String>,
    /// When the automatic login happened.
    pub(super) auth_time: SystemTime,
    /// The request's `claims` parameter, parsed.
    pub(super) claims: Option<serde_json::Value>,
    /// The request's `authorization_details` (RFC 9396), checked.
    pub(super) authorization_details: Option<serde_json::Value>,
    /// The request's `dpop_jkt` (RFC 9449 §10): the code may only be redeemed with this key.
    pub(super) dpop_jkt: Option<String>,
    /// The request's `resource` parameters (RFC 8707 §2.1): what the tokens may be for.
    pub(super) resources: Vec<String>,
    pub(super) expires_at: Instant,
    /// Set the first time the code is presented, whatever the outcome.
    pub(super) spent: bool,
    /// The grant issued from this code, to revoke on replay.
    pub(super) grant_id: Option<u64>,
}

/// Where a device authorization stands (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeviceStatus {
    Pending,
    Approved {
        username: String,
    },
    Denied,
    /// Tokens were issued; the device code is spent.
    Redeemed,
}

/// A device authorization handed out by `/device_authorization`, keyed by its device code.
#[derive(Debug)]
pub(super) struct DeviceAuthorization {
    pub(super) client_id: String,
    /// Normalised: eight characters, no dash.
    pub(super) user_code: String,
    pub(super) scope: Option<String>,
    pub(super) expires_at: Instant,
    /// The least time between two polls; grows by 5 s with every `slow_down`.
    pub(super) interval: Duration,
    pub(super) last_poll: Option<Instant>,
    pub(super) status: DeviceStatus,
}

/// The mutable part.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) access_tokens: HashMap<String, AccessToken>,
    pub(super) refresh_tokens: HashMap<String, Grant>,
    pub(super) authorization_codes: HashMap<String, AuthorizationCode>,
    pub(super) devices: HashMap<String, DeviceAuthorization>,
    next_grant: u64,
    /// Access tokens issued so far, for numbered ones.
    access_tokens_issued: u64,
    pub(super) token_requests: usize,
    pub(super) token_requests_by_grant: HashMap<String, usize>,
    pub(super) revocation_requests: usize,
    pub(super) authorization_requests: usize,
    pub(super) device_requests: usize,
    pub(super) discovery_requests: usize,
    pub(super) deny_authorization: bool,
    /// `iss` and `jti` of every JWT assertion accepted, with its `exp`: a second use is a
    /// replay (RFC 7523 §3). Entries go once they expire.
    #[cfg(feature = "jwt")]
    pub(super) used_assertions: HashMap<(String, String), std::time::SystemTime>,
    pub(super) resource_requests: Vec<RecordedRequest>,
    pub(super) token_request_log: Vec<RecordedTokenRequest>,
    /// The `jti` of every DPoP proof accepted, with its `iat`: a second use is a replay.
    /// Entries go once their `iat` is two windows old.
    pub(super) seen_proofs: HashMap<String, SystemTime>,
    pub(super) token_nonce: Nonce,
    pub(super) resource_nonce: Nonce,
    /// `(path, claims JSON)`: a resource at exactly `path` needs a token requested with these
    /// claims. Starts as the builder set it; tests change it while the server runs.
    pub(super) required_claims: Vec<(String, String)>,
    /// Clients registered at `/register` (RFC 7591), by client id.
    pub(super) registered: HashMap<String, super::registration::Registered>,
    pub(super) registration_requests: usize,
    pub(super) resource_metadata_requests: usize,
    /// Every request answered, in order, including those of resource-only servers that trust
    /// this one.
    pub(super) round_trips: Vec<super::RoundTrip>,
    /// Pushed authorization requests waiting for the browser, and the log.
    pub(super) par: super::par::ParState,
    /// Every request object received, oldest first.
    pub(super) request_objects: Vec<super::RecordedRequestObject>,
}

/// The tokens handed out by one successful token request.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
}

/// The random source failed; the server answers `server_error`.
#[derive(Debug)]
pub(super) struct NoRandomness;

impl State {
    pub(super) fn new_grant(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        scope: Option<String>,
    ) -> Grant {
        self.next_grant += 1;
        Grant {
            id: self.next_grant,
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            scope,
            actor: None,
            audience: Vec::new(),
            jkt: None,
            acr: None,
            auth_time: None,
            claims: None,
            authorization_details: None,
            resources: Vec::new(),
        }
    }

    /// Stores a new access token for `grant` with `access_scope` (a refresh may narrow it), and
    /// a refresh token carrying the grant's own scope when asked.
    pub(super) fn issue(
        &mut self,
        config: &Config,
        grant: Grant,
        access_scope: Option<String>,
        with_refresh_token: bool,
    ) -> Result<Issued, NoRandomness> {
        let now = config.clock.now();
        self.access_tokens_issued += 1;
        let access_token = match &config.numbered_access_tokens {
            Some(prefix) => format!("{prefix}{}", self.access_tokens_issued),
            None => random_token("at")?,
        };
        let refresh_token = if with_refresh_token {
            Some(random_token("rt")?)
        } else {
            None
        };
        // Forget tokens that can never be accepted again, so a long demo does not grow forever.
        self.access_tokens.retain(|_, t| t.expires_at > now);
        if let Some(refresh_token) = &refresh_token {
            self.refresh_tokens
                .insert(refresh_token.clone(), grant.clone());
        }
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                grant: Grant {
                    scope: access_scope,
                    ..grant
                },
                expires_at: crate::clock::instant_after(now, config.access_token_lifetime),
            },
        );
        Ok(Issued {
            access_token,
            refresh_token,
        })
    }

    /// Revokes every access and refresh token of grant `id`.
    pub(super) fn revoke_grant(&mut self, id: u64) {
        self.access_tokens.retain(|_, t| t.grant.id != id);
        self.refresh_tokens.retain(|_, g| g.id != id);
    }

    /// The device authorization whose user code is `user_code`, compared without case, dashes
    /// or spaces (RFC 8628 §6.1).
    pub(super) fn device_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Option<&mut DeviceAuthorization> {
        let wanted = normalize_user_code(user_code);
        self.devices.values_mut().find(|d| d.user_code == wanted)
    }
}

/// Upper case, without dashes or whitespace.
pub(super) fn normalize_user_code(user_code: &str) -> String {
    user_code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Configuration and state, shared by the handle and every connection task.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: Config,
    state: Mutex<State>,
}

impl Shared {
    pub(super) fn new(config: Config) -> Self {
        Self {
            state: Mutex::new(State {
                token_nonce: Nonce::fresh().unwrap_or_default(),
                resource_nonce: Nonce::fresh().unwrap_or_default(),
                required_claims: config.required_claims.clone(),
                ..State::default()
            }),
            config,
        }
    }

    /// The client `client_id`, whether the builder added it or it registered at `/register`.
    pub(super) fn client(&self, client_id: &str) -> Option<Registration> {
        match self.config.clients.get(client_id) {
            Some(registration) => Some(registration.clone()),
            None => self
                .lock()
                .registered
                .get(client_id)
                .map(|r| r.registration.clone()),
        }
    }

    /// Locks the state. A panic elsewhere while holding the lock leaves the state consistent
    /// enough for a test server, so poisoning is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The user code alphabet of RFC 8628 §6.1: consonants only, no look-alikes, no vowels to
/// spell words with.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Eight characters from [`USER_CODE_ALPHABET`] (about 34.5 bits), without the dash.
pub(super) fn random_user_code() -> Result<String, NoRandomness> {
    let mut code = String::with_capacity(8);
    while code.len() < 8 {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| NoRandomness)?;
        // 240 is the largest multiple of 20 that fits a byte: rejecting the rest keeps the
        // characters uniform.
        for byte in bytes.into_iter().filter(|b| *b < 240) {
            if code.len() == 8 {
                break;
            }
            code.push(char::from(USER_CODE_ALPHABET[usize::from(byte % 20)]));
        }
    }
    Ok(code)
}

/// `prefix` + `_` + 256 random bits, base64url.
pub(super) fn random_token(prefix: &str) -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| NoRandomness)?;
    Ok(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes)))
}
