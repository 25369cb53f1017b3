//! [`ClientMetadata`]: what a client asks to be registered with (RFC 7591 §2), and the
//! initial access token that may be needed to ask (RFC 7591 §3).

use std::fmt;

use secrecy::SecretString;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::client::AuthMethod;

/// What a client asks to be registered with (RFC 7591 §2): redirect URIs, grant and response
/// types, how it authenticates at the token endpoint, names and URLs for people, keys, and any
/// other member ([`field`](Self::field)).
///
/// Serialized, it is the JSON object [`register`](super::register) sends: only the members
/// that were set, and never the [initial access token](Self::initial_access_token), which
/// travels as an `Authorization: Bearer` header and never prints.
///
/// ```
/// use oauth_layer::AuthMethod;
/// use oauth_layer::registration::ClientMetadata;
///
/// let metadata = ClientMetadata::new()
///     .client_name("My CLI")
///     .redirect_uri("http://127.0.0.1/callback")
///     .grant_type("authorization_code")
///     .grant_type("refresh_token")
///     .token_endpoint_auth_method(AuthMethod::None)
///     .application_type("native")
///     .initial_access_token("iat-from-the-admin");
/// let json = serde_json::to_value(&metadata)?;
/// assert_eq!(json["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
/// assert_eq!(json["token_endpoint_auth_method"], "none");
/// assert!(!json.to_string().contains("iat-from-the-admin"));
/// assert!(!format!("{metadata:?}").contains("iat-from-the-admin"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ClientMetadata {
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    contacts: Vec<String>,
    token_endpoint_auth_method: Option<AuthMethod>,
    /// Every other member, as set.
    fields: Map<String, Value>,
    initial_access_token: Option<SecretString>,
}

/// The members kept in typed form, which [`ClientMetadata::field`] routes to them.
const REDIRECT_URIS: &str = "redirect_uris";
const GRANT_TYPES: &str = "grant_types";
const RESPONSE_TYPES: &str = "response_types";
const CONTACTS: &str = "contacts";
const AUTH_METHOD: &str = "token_endpoint_auth_method";

impl ClientMetadata {
    /// Metadata with nothing set; the server fills in its defaults (RFC 7591 §2: for example
    /// `authorization_code` for `grant_types` and `client_secret_basic` for the
    /// authentication method).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a redirect URI (`redirect_uris`); call once per URI.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.fields.remove(REDIRECT_URIS);
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a grant type (`grant_types`: `authorization_code`, `refresh_token`,
    /// `client_credentials`...); call once per type.
    pub fn grant_type(mut self, grant: impl Into<String>) -> Self {
        self.fields.remove(GRANT_TYPES);
        self.grant_types.push(grant.into());
        self
    }

    /// Adds a response type (`response_types`: `code` for the authorization code flow); call
    /// once per type.
    pub fn response_type(mut self, response_type: impl Into<String>) -> Self {
        self.fields.remove(RESPONSE_TYPES);
        self.response_types.push(response_type.into());
        self
    }

    /// How the client will authenticate at the token endpoint (`token_endpoint_auth_method`):
    /// [`AuthMethod::None`] for a public client (a CLI, a desktop or mobile app), which gets no
    /// secret.
    pub fn token_endpoint_auth_method(mut self, method: AuthMethod) -> Self {
        self.fields.remove(AUTH_METHOD);
        self.token_endpoint_auth_method = Some(method);
        self
    }

    /// The client's name for people (`client_name`).
    pub fn client_name(self, name: impl Into<String>) -> Self {
        self.string("client_name", name)
    }

    /// The client's home page (`client_uri`).
    pub fn client_uri(self, uri: impl Into<String>) -> Self {
        self.string("client_uri", uri)
    }

    /// The client's logo (`logo_uri`).
    pub fn logo_uri(self, uri: impl Into<String>) -> Self {
        self.string("logo_uri", uri)
    }

    /// The scopes the client may ask for (`scope`, space separated).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.string("scope", scope)
    }

    /// Adds a way to reach the people responsible for the client (`contacts`, usually an email
    /// address); call once per contact.
    pub fn contact(mut self, contact: impl Into<String>) -> Self {
        self.fields.remove(CONTACTS);
        self.contacts.push(contact.into());
        self
    }

    /// The software's identifier, the same for every instance of it (`software_id`).
    pub fn software_id(self, id: impl Into<String>) -> Self {
        self.string("software_id", id)
    }

    /// The software's version (`software_version`).
    pub fn software_version(self, version: impl Into<String>) -> Self {
        self.string("software_version", version)
    }

    /// `native` or `web` (`application_type`, OpenID Connect Dynamic Client Registration §2):
    /// OpenID providers let `native` clients use loopback and custom-scheme redirect URIs.
    pub fn application_type(self, application_type: impl Into<String>) -> Self {
        self.string("application_type", application_type)
    }

    /// The client's public keys, as a JWK Set (`jwks`), for `private_key_jwt`.
    pub fn jwks(mut self, jwks: Value) -> Self {
        self.fields.insert("jwks".into(), jwks);
        self
    }

    /// Where the client publishes its public keys (`jwks_uri`).
    pub fn jwks_uri(self, uri: impl Into<String>) -> Self {
        self.string("jwks_uri", uri)
    }

    /// Any other member (`policy_uri`, `tos_uri`, `software_statement`, `post_logout_redirect_uris`,
    /// a language-tagged `client_name#fr`, a server's own extension). A member one of the
    /// other setters sets is replaced: `field("redirect_uris", json!([..]))` sets all the
    /// redirect URIs at once, and [`redirect_uris`](Self::redirect_uris) reads them back when
    /// the value is a list of strings (otherwise it is sent as given and reads back empty).
    pub fn field(mut self, name: impl Into<String>, value: Value) -> Self {
        let name = name.into();
        let strings = || -> Option<Vec<String>> {
            value
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let typed = match name.as_str() {
            REDIRECT_URIS => Some(&mut self.redirect_uris),
            GRANT_TYPES => Some(&mut self.grant_types),
            RESPONSE_TYPES => Some(&mut self.response_types),
            CONTACTS => Some(&mut self.contacts),
            _ => None,
        };
        if let Some(list) = typed {
            match strings() {
                Some(values) => *list = values,
                None => {
                    list.clear();
                    self.fields.insert(name, value);
                }
            }
            return self;
        }
        if name == AUTH_METHOD {
            self.token_endpoint_auth_method = value.as_str().and_then(super::auth_method_named);
            if self.token_endpoint_auth_method.is_some() {
                self.fields.remove(AUTH_METHOD);
                return self;
            }
        }
        self.fields.insert(name, value);
        self
    }

    /// The initial access token the server requires for registration (RFC 7591 §3), sent as
    /// `Authorization: Bearer`. Kept as a secret: never serialized, never printed.
    pub fn initial_access_token(mut self, token: impl Into<String>) -> Self {
        self.initial_access_token = Some(SecretString::from(token.into()));
        self
    }

    /// The redirect URIs (`redirect_uris`).
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The grant types (`grant_types`).
    pub fn grant_types(&self) -> &[String] {
        &self.grant_types
    }

    /// The response types (`response_types`).
    pub fn response_types(&self) -> &[String] {
        &self.response_types
    }

    /// The contacts (`contacts`).
    pub fn contacts(&self) -> &[String] {
        &self.contacts
    }

    /// The authentication method asked for (`token_endpoint_auth_method`), when it is one this
    /// crate knows. (The setter of the same member is
    /// [`token_endpoint_auth_method`](Self::token_endpoint_auth_method).)
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.token_endpoint_auth_method
    }

    /// A member set with the other setters or [`field`](Self::field), as it will be sent
    /// (`client_name`, `scope`, `jwks`...); `None` when not set.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.to_map().remove(name)
    }

    /// `true` when an [initial access token](Self::initial_access_token) is set.
    pub fn has_initial_access_token(&self) -> bool {
        self.initial_access_token.is_some()
    }

    /// The initial access token, if one is set.
    pub(crate) fn initial_access_token_secret(&self) -> Option<&SecretString> {
        self.initial_access_token.as_ref()
    }

    /// The members as the JSON object sent to the server (without the initial access token).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.fields.clone();
        let lists = [
            (REDIRECT_URIS, &self.redirect_uris),
            (GRANT_TYPES, &self.grant_types),
            (RESPONSE_TYPES, &self.response_types),
            (CONTACTS, &self.contacts),
        ];
        for (name, list) in lists {
            if !list.is_empty() {
                map.insert(name.into(), Value::from(list.clone()));
            }
        }
        if let Some(method) = self.token_endpoint_auth_method {
            map.insert(AUTH_METHOD.into(), Value::from(method.as_str()));
        }
        map
    }

    fn string(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.insert(name.into(), Value::String(value.into()));
        self
    }
}

impl Serialize for ClientMetadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl fmt::Debug for ClientMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMetadata")
            .field("members", &self.to_map())
            .field(
                "initial_access_token",
                &self.initial_access_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}
