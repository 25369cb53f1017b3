//! TEMPORARY interface stub; replaced by the registration branch.
#![allow(missing_docs, dead_code, unused_variables)]

use secrecy::SecretString;
use std::time::SystemTime;

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder};
use crate::error::{Error, Result};
use crate::token::Token;

#[derive(Debug, Clone, Default, serde::Serialize)]
#[must_use]
pub struct ClientMetadata {
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    #[serde(skip)]
    method: Option<AuthMethod>,
}

impl ClientMetadata {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }
    pub fn grant_type(mut self, g: impl Into<String>) -> Self {
        self.grant_types.push(g.into());
        self
    }
    pub fn response_type(self, t: impl Into<String>) -> Self {
        self
    }
    pub fn token_endpoint_auth_method(mut self, m: AuthMethod) -> Self {
        self.method = Some(m);
        self
    }
    pub fn client_name(self, n: impl Into<String>) -> Self {
        self
    }
    pub fn application_type(self, t: impl Into<String>) -> Self {
        self
    }
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.method
    }
    pub fn grant_types(&self) -> &[String] {
        &self.grant_types
    }
    pub fn metadata_document(&self, client_id: &str) -> Result<serde_json::Value> {
        Err(Error::config("stub"))
    }
}

#[derive(Debug, Clone)]
pub struct Registration {
    client_id: String,
}

impl Registration {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn client_secret(&self) -> Option<&SecretString> {
        None
    }
    pub fn token_endpoint_auth_method(&self) -> Option<AuthMethod> {
        None
    }
    pub fn is_expired(&self, now: SystemTime) -> bool {
        false
    }
    pub fn client_builder(&self) -> OAuthClientBuilder {
        OAuthClient::builder(self.client_id.clone())
    }
    pub(crate) fn to_token(&self) -> Token {
        unimplemented!()
    }
    pub(crate) fn from_token(token: &Token) -> Option<Registration> {
        None
    }
}

pub async fn register(
    client: &OAuthClient,
    endpoint: &str,
    metadata: &ClientMetadata,
) -> Result<Registration> {
    Err(Error::config("stub"))
}
