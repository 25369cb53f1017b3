//! Microsoft Entra ID (the v2.0 endpoints).

use super::spec::Oidc;
use super::{Base, Spec, preset};
use crate::error::{Error, Result};

/// The tenant personal Microsoft accounts sign in to: the issuer of `consumers` tokens.
const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

const MICROSOFT: Spec = Spec {
    name: "microsoft",
    authorize: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    device: Some("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode"),
    oidc: Some(Oidc {
        issuer: "https://login.microsoftonline.com/{issuer_tenant}/v2.0",
        userinfo: "https://graph.microsoft.com/oidc/userinfo",
        jwks: "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        validate: true,
        other_issuer: None,
    }),
    scopes: "openid profile email offline_access",
    always_scope: Some("offline_access"),
    api: Some("https://graph.microsoft.com"),
    ..Spec::OAUTH
};

/// Microsoft Entra ID (Azure AD), v2.0 endpoints under
/// `https://login.microsoftonline.com/{tenant}/`.
///
/// The tenant is `common` (work, school and personal accounts), `organizations` (work and
/// school), `consumers` (personal), a tenant id (a GUID) or a tenant domain
/// (`contoso.onmicrosoft.com`).
///
/// Quirks encoded:
/// - refresh tokens come only with the `offline_access` scope, which
///   [`auth_code`](super::Preset::auth_code) always adds (even to scopes set with `scopes`);
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
/// [`id_email`](super::Preset::id_email) returns `sub` (an id for the person that is stable for this
/// app) and `email`, if the account has one, from Microsoft Graph's userinfo endpoint, which
/// takes tokens issued for Graph (the default scopes are; a token for another resource is
/// refused by Graph).
#[derive(Debug, Clone)]
pub struct Microsoft {
    base: Base,
    tenant: String,
}

preset!(Microsoft);

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
        let issuer_tenant = Self::issuer_tenant(&tenant).unwrap_or(crate::oidc::TENANT_PLACEHOLDER);
        let vars = [
            ("tenant", tenant.as_str()),
            ("issuer_tenant", issuer_tenant),
        ];
        Ok(Self {
            base: MICROSOFT.base(client_id, &vars)?,
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
