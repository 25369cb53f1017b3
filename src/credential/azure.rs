//! Azure workload identity: a federated token file traded at Microsoft Entra ID.

use super::FileSource;
use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::flow::ClientCredentials;
use crate::source::TokenSource;

/// Where Microsoft Entra ID lives when `AZURE_AUTHORITY_HOST` does not say otherwise.
const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

/// Azure workload identity (AKS and anything else that sets its environment): the federated
/// token in `AZURE_FEDERATED_TOKEN_FILE`, re-read for every request, is the client assertion of
/// the app `AZURE_CLIENT_ID` in tenant `AZURE_TENANT_ID`, at
/// `{AZURE_AUTHORITY_HOST}{tenant}/oauth2/v2.0/token` (the authority host defaults to
/// `https://login.microsoftonline.com/`).
///
/// A preset of its own rather than a [`provider::Microsoft`](crate::provider::Microsoft)
/// setting: the providers are sign-in presets for people, this is a machine credential whose
/// configuration comes from the environment, next to the sources it is made of.
///
/// ```
/// use oauth_layer::credential::AzureWorkloadIdentity;
///
/// let azure = AzureWorkloadIdentity::from_env_lookup(|name| match name {
///     "AZURE_FEDERATED_TOKEN_FILE" => Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
///     "AZURE_CLIENT_ID" => Some("11111111-2222-3333-4444-555555555555".into()),
///     "AZURE_TENANT_ID" => Some("contoso.onmicrosoft.com".into()),
///     _ => None,
/// })?;
/// let source = azure.token_source("https://graph.microsoft.com/.default")?;
/// # let _ = source;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AzureWorkloadIdentity {
    token_file: FileSource,
    client_id: String,
    tenant_id: String,
    authority_host: String,
}

impl AzureWorkloadIdentity {
    /// Reads the settings from the process environment. A missing variable is an
    /// [`Error::Config`] naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_env_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (for tests, or a configuration that is not the
    /// process environment).
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    Error::config(format!("{name} is not set (Azure workload identity)"))
                })
        };
        let token_file = var("AZURE_FEDERATED_TOKEN_FILE")?;
        let client_id = var("AZURE_CLIENT_ID")?;
        let tenant_id = var("AZURE_TENANT_ID")?;
        let mut authority_host = lookup("AZURE_AUTHORITY_HOST")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
        if !authority_host.ends_with('/') {
            authority_host.push('/');
        }
        Ok(Self {
            token_file: FileSource::new(token_file),
            client_id,
            tenant_id,
            authority_host,
        })
    }

    /// The app's client id (`AZURE_CLIENT_ID`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The v2.0 token endpoint of the tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        )
    }

    /// A client builder with the token file as client assertion and the tenant's token
    /// endpoint, to change further (a transport, a clock) before building.
    pub fn client_builder(&self) -> crate::OAuthClientBuilder {
        OAuthClient::builder(self.client_id.clone())
            .token_url(self.token_url())
            .client_assertion(self.token_file.clone())
    }

    /// The client, built.
    pub fn client(&self) -> Result<OAuthClient> {
        self.client_builder().build()
    }

    /// A token source for the client credentials grant with `scope`: Entra ID wants one
    /// resource's `.default` scope, such as `https://graph.microsoft.com/.default`.
    pub fn token_source(&self, scope: impl Into<String>) -> Result<TokenSource> {
        Ok(TokenSource::new(
            self.client()?,
            ClientCredentials::new().scope(scope),
        ))
    }
}
