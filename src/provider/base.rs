//! What every preset is made of: the configured client with the sign-in's settings, and the
//! macros that give a preset type its builder methods and its [`Preset`] implementation.

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder};
use crate::discovery;
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

use super::profile::Profile;
use super::spec::fill;
#[cfg(doc)]
use super::{Preset, Spec};

/// What every preset holds: the client, the sign-in's scopes and parameters, the client
/// authentication used once a secret is set, whether ID tokens are validated, the API origins
/// and how the account behind a token is read. Made from a [`Spec`] (or by discovery).
#[derive(Debug, Clone)]
pub(super) struct Base {
    pub(super) name: &'static str,
    pub(super) client: OAuthClient,
    pub(super) scopes: String,
    pub(super) always_scope: Option<&'static str>,
    pub(super) secret_method: AuthMethod,
    pub(super) validate_id_token: bool,
    pub(super) other_issuer: Option<&'static str>,
    pub(super) pkce: bool,
    pub(super) auth_params: Vec<(&'static str, String)>,
    pub(super) api_origins: Vec<String>,
    pub(super) profile: &'static Profile,
    pub(super) profile_url: Option<String>,
    pub(super) other_emails_url: Option<String>,
}

impl Base {
    pub(super) fn new(
        name: &'static str,
        client: OAuthClient,
        scopes: &str,
        secret_method: AuthMethod,
    ) -> Self {
        Self {
            name,
            client,
            scopes: scopes.to_owned(),
            always_scope: None,
            secret_method,
            validate_id_token: false,
            other_issuer: None,
            pkce: true,
            auth_params: Vec::new(),
            api_origins: Vec::new(),
            profile: &Profile::USERINFO,
            profile_url: None,
            other_emails_url: None,
        }
    }

    /// The core of a preset configured by discovery: `client` built from `issuer`'s document
    /// ([`discovery::configure`]), its client authentication as chosen there (also once a
    /// secret is set), ID tokens validated when the document names its keys.
    pub(super) async fn discover(
        name: &'static str,
        client: OAuthClientBuilder,
        issuer: &str,
        scopes: &str,
    ) -> Result<Self> {
        let client = discovery::configure(client, issuer).await?;
        let has_keys = client.metadata().is_some_and(|m| m.jwks_uri.is_some());
        let method = client.auth_method();
        Ok(Self::new(name, client, scopes, method).validating(has_keys))
    }

    /// Turns ID token validation on (the client must carry metadata with a `jwks_uri`).
    pub(super) fn validating(mut self, validate: bool) -> Self {
        self.validate_id_token = validate;
        self
    }

    /// Reads the account as `profile` says, its URL templates filled with `vars`.
    pub(super) fn profile(mut self, profile: &'static Profile, vars: &[(&str, &str)]) -> Self {
        self.profile = profile;
        self.profile_url = profile.url.map(|url| fill(url, vars));
        self.other_emails_url = profile.other_emails.map(|url| fill(url, vars));
        self
    }

    /// Sets (or, with `None`, removes) an authorization parameter of the sign-in.
    pub(super) fn param(mut self, name: &'static str, value: Option<&str>) -> Self {
        self.auth_params.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            self.auth_params.push((name, value.to_owned()));
        }
        self
    }

    pub(super) fn secret(mut self, secret: impl Into<String>) -> Self {
        let method = self.secret_method;
        self.client = self
            .client
            .reconfigure(|c| c.secret(secret).auth_method(method));
        self
    }

    /// The sign-in with the preset's scopes, parameters and ID token validation.
    pub(super) fn flow(&self) -> AuthCode {
        let mut flow = AuthCode::new().scope(self.scopes.clone());
        if let Some(scope) = self.always_scope {
            flow = flow.scope(scope);
        }
        if !self.pkce {
            flow = flow.pkce(false);
        }
        #[cfg(feature = "jwt")]
        {
            if self.validate_id_token {
                flow = flow.validate_id_token(true);
            }
            if let Some(issuer) = self.other_issuer {
                flow = flow.accept_id_token_issuer(issuer);
            }
        }
        for (name, value) in &self.auth_params {
            flow = flow.auth_param(*name, value.clone());
        }
        flow
    }

    /// The account behind `token`, read as the preset's profile says.
    pub(super) async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        self.profile
            .read(
                &self.client,
                self.profile_url.as_deref(),
                self.other_emails_url.as_deref(),
                token,
            )
            .await
    }
}

/// A preset made of a [`Base`]: its builder methods ([`preset_common`]) and its [`Preset`]
/// implementation. `discovered` presets have no `secret` (their client comes configured).
macro_rules! preset {
    ($ty:ident) => {
        $crate::provider::preset_common!($ty);
        $crate::provider::preset!(@trait $ty);
    };
    ($ty:ident, discovered) => {
        $crate::provider::preset_settings!($ty);
        $crate::provider::preset!(@trait $ty);
    };
    (@trait $ty:ident) => {
        #[async_trait::async_trait]
        impl $crate::provider::Preset for $ty {
            fn name(&self) -> &'static str {
                self.base.name
            }

            fn client(&self) -> &$crate::client::OAuthClient {
                &self.base.client
            }

            fn auth_code(&self) -> $crate::flow::AuthCode {
                self.base.flow()
            }

            async fn id_email(
                &self,
                token: &$crate::token::Token,
            ) -> $crate::error::Result<(String, Option<String>)> {
                self.base.id_email(token).await
            }

            fn api_origins(&self) -> Vec<String> {
                self.base.api_origins.clone()
            }
        }
    };
}
pub(super) use preset;

/// The builder methods every preset shares: [`preset_settings`] and `secret`.
macro_rules! preset_common {
    ($ty:ident) => {
        impl $ty {
            /// Sets the client secret, and with it the client authentication this provider
            /// documents (see the type's docs). Without a secret the client is public.
            pub fn secret(mut self, secret: impl Into<String>) -> Self {
                self.base = self.base.secret(secret);
                self
            }
        }
        $crate::provider::preset_settings!($ty);
    };
}
pub(super) use preset_common;

/// The settings of every preset, discovered ones included.
macro_rules! preset_settings {
    ($ty:ident) => {
        impl $ty {
            /// Replaces the default scopes (space separated) of [`Preset::auth_code`](crate::provider::Preset::auth_code).
            pub fn scopes(mut self, scopes: impl Into<String>) -> Self {
                self.base.scopes = scopes.into();
                self
            }

            /// Changes the client: a transport, a clock, a timeout, an endpoint... The preset's
            /// endpoints and quirks stay unless `change` overrides them.
            ///
            /// # Errors
            ///
            /// What [`OAuthClientBuilder::build`]($crate::client::OAuthClientBuilder::build)
            /// reports for the changed settings.
            pub fn with_client(
                mut self,
                change: impl FnOnce(
                    $crate::client::OAuthClientBuilder,
                ) -> $crate::client::OAuthClientBuilder,
            ) -> $crate::error::Result<Self> {
                self.base.client = change(self.base.client.to_builder()).build()?;
                Ok(self)
            }
        }
    };
}
pub(super) use preset_settings;
