//! Who the client is at the authorization server a resource named: an id registered
//! beforehand, a Client ID Metadata Document, or a registration made now (RFC 7591) and kept in
//! the token store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder};
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::registration::{self, ClientMetadata, Registration};
use crate::store::{CacheKey, TokenStore};

/// One way to get a client identity, in the order the caller listed them.
#[derive(Clone)]
pub(crate) enum Identity {
    /// A client id (and secret) registered with the server beforehand.
    Registered {
        client_id: String,
        secret: Option<SecretString>,
    },
    /// The client id is the https URL of a metadata document the app serves.
    MetadataDocument(String),
    /// Dynamic registration with these metadata.
    Register(ClientMetadata),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registered { client_id, secret } => f
                .debug_struct("Registered")
                .field("client_id", client_id)
                .field("secret", &secret.as_ref().map(|_| "[redacted]"))
                .finish(),
            Self::MetadataDocument(url) => f.debug_tuple("MetadataDocument").field(url).finish(),
            Self::Register(metadata) => f.debug_tuple("Register").field(metadata).finish(),
        }
    }
}

/// What a registration needs to know about the grant the client will run.
pub(crate) struct GrantNeeds<'a> {
    /// `true` for a person's sign-in (authorization code), `false` for client credentials.
    pub(crate) person: bool,
    /// The redirect URI the authorization code flow was given, if any.
    pub(crate) redirect_uri: Option<&'a str>,
}

/// The redirect URI registered for a loopback sign-in when the flow names none: any port of
/// it is accepted by servers that follow RFC 8252 §7.3, and the loopback receiver listens on
/// `127.0.0.1` with this path.
pub(crate) const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";

/// `true` when the server says it takes Client ID Metadata Documents.
fn takes_metadata_documents(server: &Metadata) -> bool {
    server
        .extra
        .get("client_id_metadata_document_supported")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Registrations this process made or read, by store key, so that each server is asked once.
#[derive(Default)]
pub(crate) struct Registrations {
    known: tokio::sync::Mutex<HashMap<String, Registration>>,
}

impl Registrations {
    /// The settings of `template` with the first identity of `identities` that `server`
    /// takes: its client id, secret and authentication method.
    pub(crate) async fn client_builder(
        &self,
        identities: &[Identity],
        server: &Metadata,
        template: &OAuthClientBuilder,
        store: Option<&Arc<dyn TokenStore>>,
        needs: &GrantNeeds<'_>,
    ) -> Result<OAuthClientBuilder> {
        let mut skipped = Vec::new();
        for identity in identities {
            match identity {
                Identity::Registered { client_id, secret } => {
                    let mut builder = template.clone().client_id(client_id.clone());
                    if let Some(secret) = secret {
                        builder = builder.secret(secret.expose_secret().to_owned());
                    }
                    return Ok(builder);
                }
                Identity::MetadataDocument(url) => {
                    if takes_metadata_documents(server) {
                        return Ok(template
                            .clone()
                            .client_id(url.clone())
                            .auth_method(AuthMethod::None));
                    }
                    skipped.push(
                        "a client ID metadata document (the server does not say \
                         client_id_metadata_document_supported)",
                    );
                }
                Identity::Register(metadata) => {
                    let Some(endpoint) = &server.registration_endpoint else {
                        skipped.push("registration (the server has no registration_endpoint)");
                        continue;
                    };
                    let metadata = completed(metadata.clone(), needs);
                    let registration = self
                        .registration(server, endpoint.as_str(), &metadata, template, store)
                        .await?;
                    let mut builder = template.clone().client_id(registration.client_id());
                    if let Some(secret) = registration.client_secret() {
                        builder = builder.secret(secret.expose_secret().to_owned());
                    }
                    if let Some(method) = registration.token_endpoint_auth_method() {
                        builder = builder.auth_method(method);
                    } else if registration.client_secret().is_none() {
                        builder = builder.auth_method(AuthMethod::None);
                    }
                    return Ok(builder);
                }
            }
        }
        Err(Error::config(format!(
            "no client identity for the authorization server {:?}: {}",
            server.issuer,
            if skipped.is_empty() {
                "none was configured".to_owned()
            } else {
                format!("tried {}", skipped.join("; "))
            }
        )))
    }

    /// A registration of `metadata` at `endpoint`: the one this process already has, else the
    /// one in the store, else a new one (saved to the store before it is used).
    async fn registration(
        &self,
        server: &Metadata,
        endpoint: &str,
        metadata: &ClientMetadata,
        template: &OAuthClientBuilder,
        store: Option<&Arc<dyn TokenStore>>,
    ) -> Result<Registration> {
        let fetcher = template.clone().client_id("").build()?;
        let key = store_key(server, endpoint, metadata)?;
        let name = key.get("registration").unwrap_or_default().to_owned();
        // One registration at a time per key in this process: concurrent first requests share it.
        let mut known = self.known.lock().await;
        let now = SystemTime::now();
        if let Some(registration) = known.get(&name).filter(|r| !r.is_expired(now)) {
            return Ok(registration.clone());
        }
        if let Some(store) = store {
            match store.load(&key).await {
                Ok(Some(token)) => {
                    if let Some(registration) =
                        Registration::from_token(&token).filter(|r| !r.is_expired(now))
                    {
                        tracing::debug!(
                            issuer = %server.issuer,
                            "using the client registration kept in the store"
                        );
                        known.insert(name, registration.clone());
                        return Ok(registration);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a client registration from the store")
                }
            }
        }
        tracing::debug!(issuer = %server.issuer, "registering the client (RFC 7591)");
        let registration = registration::register(&fetcher, endpoint, metadata).await?;
        if let Some(store) = store
            && let Err(e) = store.save(&key, &registration.to_token()).await
        {
            // The registration works for this process; the next one registers again.
            tracing::warn!(error = %e, "cannot keep the client registration in the store");
        }
        known.insert(name, registration.clone());
        Ok(registration)
    }
}

/// `metadata` with what the grant needs filled in where the caller left it empty: the redirect
/// URI, the grant types, and a public client for a person's sign-in.
fn completed(mut metadata: ClientMetadata, needs: &GrantNeeds<'_>) -> ClientMetadata {
    if needs.person {
        if metadata.redirect_uris().is_empty() {
            metadata = metadata.redirect_uri(needs.redirect_uri.unwrap_or(LOOPBACK_REDIRECT));
        }
        if metadata.grant_types().is_empty() {
            metadata = metadata
                .grant_type("authorization_code")
                .grant_type("refresh_token")
                .response_type("code");
        }
        if metadata.auth_method().is_none() {
            metadata = metadata.token_endpoint_auth_method(AuthMethod::None);
        }
        if needs.redirect_uri.is_none_or(is_loopback_uri) {
            metadata = metadata.application_type("native");
        }
    } else {
        if metadata.grant_types().is_empty() {
            metadata = metadata.grant_type("client_credentials");
        }
        // No response types: a client that never uses the authorization endpoint needs no
        // redirect URI (left out, RFC 7591 §2 would mean `code`, and servers then ask for one).
        if metadata.get("response_types").is_none() {
            metadata = metadata.field("response_types", serde_json::json!([]));
        }
        if metadata.auth_method().is_none() {
            metadata = metadata.token_endpoint_auth_method(AuthMethod::ClientSecretBasic);
        }
    }
    metadata
}

fn is_loopback_uri(uri: &str) -> bool {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(crate::transport::is_loopback_host))
        .unwrap_or(false)
}

/// Where a registration is kept: bound to the server, its registration endpoint and the
/// metadata asked for (other metadata is another registration).
fn store_key(server: &Metadata, endpoint: &str, metadata: &ClientMetadata) -> Result<CacheKey> {
    let asked = serde_json::to_string(metadata)
        .map_err(|e| Error::Internal(format!("client metadata not serializable: {e}")))?;
    let server_only = OAuthClient::builder("")
        .issuer(server.issuer.clone())
        .build()?;
    let key = CacheKey::builder(&server_only, "client-registration")
        .part("registration_endpoint", endpoint.to_owned())
        .part("registration", format!("{}|{asked}", server.issuer))
        .build();
    Ok(key)
}
