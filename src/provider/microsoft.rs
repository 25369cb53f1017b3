//! Microsoft Entra ID (the v2.0 endpoints).

use async_trait::async_trait;

use super::{Base, Preset, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::token::Token;

const LOGIN: &str = "https://login.microsoftonline.com";
const USERINFO: &str = "https://graph.microsoft.com/oidc/userinfo";
/// The tenant personal Microsoft accounts sign in to: the issuer of `consumers` tokens.
const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Microsoft Entra ID (Azure AD), v2.0 endpoints under
/// `https://login.microsoftonline.com/{tenant}/`.
///
/// The tenant is `common` (work, school and personal accounts), `organizations` (work and
/// school), `consumers` (personal), a tenant id (a GUID) or a tenant domain
/// (`contoso.onmicrosoft.com`).
///
/// Quirks encoded:
/// - refresh tokens come only with the `offline_access` scope, which
///   [`auth_code`](Preset::auth_code) always adds (even to scopes set with `scopes`);
/// - the ID token's issuer is `https://login.microsoftonline.com/{tenant id}/v2.0`, the tenant
///   of the person who signed in. For a tenant id and for `consumers` that is known and must
///   match exactly. For `common`, `organizations` and a domain it is not known before the
///   sign-in: ID tokens are validated against Microsoft's issuer template, as Microsoft's own
///   libraries do (the token's `tid` must be a tenant id and its `iss` that tenant's issuer; see
///   [`IdTokenValidator::new`](crate::oidc::IdTokenValidator::new)). Which tenants an app admits
///   is the app's decision: check the `tid` claim, or use a tenant id here;
/// - default scopes `openid profile email offline_access`; client authentication with a
///   secret is `client_secret_post`, as Microsoft documents.
///
/// [`id_email`](Preset::id_email) returns `sub` (an id for the person that is stable for this
/// app) and `email`, if the account has one, from Microsoft Graph's userinfo endpoint, which
/// takes tokens issued for Graph (the default scopes are; a token for another resource is
/// refused by Graph).
#[derive(Debug, Clone)]
pub struct Microsoft {
    base: Base,
    tenant: String,
}

preset_common!(Microsoft);

impl Microsoft {
    /// A preset for this tenant and client (application) id.
    pub fn new(tenant: impl Into<String>, client_id: impl Into<String>) -> Result<Self> {
        let tenant = tenant.into();
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        {
            return Err(Error::config(
                "the Microsoft tenant must be common, organizations, consumers, a tenant id or a domain",
            ));
        }
        let v2 = format!("{LOGIN}/{tenant}/oauth2/v2.0");
        let client = endpoints(
            OAuthClient::builder(client_id),
            &format!("{v2}/authorize"),
            &format!("{v2}/token"),
        )
        .device_authorization_url(format!("{v2}/devicecode"));
        let jwks = format!("{LOGIN}/{tenant}/discovery/v2.0/keys");
        let issuer_tenant = Self::issuer_tenant(&tenant);
        let issuer = format!(
            "{LOGIN}/{}/v2.0",
            issuer_tenant.unwrap_or(crate::oidc::TENANT_PLACEHOLDER)
        );
        let client = static_oidc(client, &issuer, Some(USERINFO), Some(&jwks))?;
        Ok(Self {
            base: Base::new(
                client,
                "openid profile email offline_access",
                AuthMethod::ClientSecretPost,
            )
            .validating(true),
            tenant,
        })
    }

    /// The tenant this preset signs in to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// `true` when ID tokens are validated (always, with the `jwt` feature).
    pub fn validates_id_tokens(&self) -> bool {
        cfg!(feature = "jwt") && self.base.validate_id_token
    }

    /// `true` when the issuer of this tenant's ID tokens is known before the sign-in (a tenant
    /// id, or `consumers`); otherwise any tenant's issuer is accepted, matched to the token's
    /// `tid`.
    pub fn issuer_is_fixed(&self) -> bool {
        Self::issuer_tenant(&self.tenant).is_some()
    }

    /// The tenant id that issues this tenant's ID tokens, when known before the sign-in.
    fn issuer_tenant(tenant: &str) -> Option<&str> {
        if crate::oidc::is_guid(tenant) {
            Some(tenant)
        } else if tenant.eq_ignore_ascii_case("consumers") {
            Some(CONSUMERS_TENANT_ID)
        } else {
            None
        }
    }
}

#[async_trait]
impl Preset for Microsoft {
    fn name(&self) -> &'static str {
        "microsoft"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow().scope("offline_access")
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }

    fn api_origins(&self) -> Vec<String> {
        vec!["https://graph.microsoft.com".to_owned()]
    }
}
