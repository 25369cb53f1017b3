//! What a preset is made of, as data: endpoints, default scopes, client authentication,
//! authorization parameters, the OpenID Connect configuration and how the account behind a token
//! is read. A simple provider is one `const` [`Spec`]; [`Spec::base`] turns it into the
//! configured client (the one place presets assemble an [`OAuthClientBuilder`] and build it).

use std::time::Duration;

use serde_json::Map;

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder, endpoint};
use crate::error::Result;
use crate::metadata::Metadata;

use super::profile::Profile;
use super::{Base, origin};

/// A provider described by data. URLs are templates: `{name}` is replaced by what the preset's
/// constructor was given (a domain, a realm URL, a tenant, a Graph API version...).
#[derive(Debug)]
pub(super) struct Spec {
    /// [`Preset::name`](super::Preset::name).
    pub(super) name: &'static str,
    pub(super) authorize: &'static str,
    pub(super) token: &'static str,
    pub(super) device: Option<&'static str>,
    pub(super) revocation: Option<&'static str>,
    pub(super) introspection: Option<&'static str>,
    /// The documented OpenID Connect configuration, attached without a discovery request.
    pub(super) oidc: Option<Oidc>,
    /// The default scopes (space separated) of the sign-in.
    pub(super) scopes: &'static str,
    /// A scope added even to scopes set by hand (Microsoft's `offline_access`).
    pub(super) always_scope: Option<&'static str>,
    /// The client authentication once a secret is set.
    pub(super) secret_method: AuthMethod,
    /// HTTP Basic with an empty secret while no secret is set (Reddit's installed apps).
    pub(super) basic_without_secret: bool,
    /// How long a token sent without `expires_in` is kept (the client's default otherwise).
    pub(super) lifetime_without_expiry: Option<Duration>,
    /// Token answers without `token_type` are taken as bearer tokens (Shopify).
    pub(super) lenient_token_type: bool,
    /// PKCE on the sign-in (off only for a token endpoint that refuses a verifier).
    pub(super) pkce: bool,
    /// Authorization parameters of the sign-in; the preset's options may change them.
    pub(super) auth_params: &'static [(&'static str, &'static str)],
    /// A URL whose origin is the provider's API (the only origin that gets tokens).
    pub(super) api: Option<&'static str>,
    /// How [`Preset::id_email`](super::Preset::id_email) reads the account.
    pub(super) profile: Profile,
}

/// The documented OpenID Connect configuration of a provider.
#[derive(Debug)]
pub(super) struct Oidc {
    pub(super) issuer: &'static str,
    pub(super) userinfo: &'static str,
    pub(super) jwks: &'static str,
    /// ID tokens are validated (off only for a provider whose ID tokens cannot be checked).
    pub(super) validate: bool,
    /// Another spelling of the issuer that the provider documents for its ID tokens.
    pub(super) other_issuer: Option<&'static str>,
}

impl Spec {
    /// The defaults a spec starts from: a plain OAuth provider, `client_secret_post` with a
    /// secret, PKCE on, the account read from the OpenID Connect userinfo endpoint.
    pub(super) const OAUTH: Self = Self {
        name: "",
        authorize: "",
        token: "",
        device: None,
        revocation: None,
        introspection: None,
        oidc: None,
        scopes: "",
        always_scope: None,
        secret_method: AuthMethod::ClientSecretPost,
        basic_without_secret: false,
        lifetime_without_expiry: None,
        lenient_token_type: false,
        pkce: true,
        auth_params: &[],
        api: None,
        profile: Profile::USERINFO,
    };

    /// The preset's core for `client_id`, with `vars` filled into the URL templates.
    pub(super) fn base(
        &'static self,
        client_id: impl Into<String>,
        vars: &[(&str, &str)],
    ) -> Result<Base> {
        self.base_with(client_id, vars, |client| client)
    }

    /// Like [`base`](Self::base), with `change` applied to the client's settings before they
    /// are built (a setting the constructor was given, such as Reddit's user agent).
    pub(super) fn base_with(
        &'static self,
        client_id: impl Into<String>,
        vars: &[(&str, &str)],
        change: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
    ) -> Result<Base> {
        let client = change(self.builder(client_id, vars)).build()?;
        let mut validate = false;
        let client = match &self.oidc {
            Some(oidc) => {
                validate = oidc.validate;
                static_oidc(
                    client,
                    &fill(oidc.issuer, vars),
                    &fill(oidc.userinfo, vars),
                    &fill(oidc.jwks, vars),
                )?
            }
            None => client,
        };
        let mut base = Base::new(self.name, client, self.scopes, self.secret_method)
            .validating(validate)
            .profile(&self.profile, vars);
        base.always_scope = self.always_scope;
        base.pkce = self.pkce;
        base.other_issuer = self.oidc.as_ref().and_then(|o| o.other_issuer);
        for (name, value) in self.auth_params {
            base = base.param(name, Some(value));
        }
        base.api_origins = self
            .api
            .map(|api| origin(&fill(api, vars)))
            .unwrap_or_default();
        Ok(base)
    }

    /// The client settings of the spec: its endpoints and token quirks.
    fn builder(&self, client_id: impl Into<String>, vars: &[(&str, &str)]) -> OAuthClientBuilder {
        let fill = |template: &str| fill(template, vars);
        let mut client = new_client(client_id)
            .authorization_url(fill(self.authorize))
            .token_url(fill(self.token));
        if let Some(url) = self.device {
            client = client.device_authorization_url(fill(url));
        }
        if let Some(url) = self.revocation {
            client = client.revocation_url(fill(url));
        }
        if let Some(url) = self.introspection {
            client = client.introspection_url(fill(url));
        }
        if let Some(lifetime) = self.lifetime_without_expiry {
            client = client.default_lifetime(lifetime);
        }
        if self.lenient_token_type {
            client = client.lenient_token_type(true);
        }
        if self.basic_without_secret {
            client = client.secret("").auth_method(AuthMethod::ClientSecretBasic);
        }
        client
    }
}

/// The documented OpenID Connect configuration of a provider, attached to `client` as if it had
/// been discovered (without a request): the issuer, the userinfo endpoint and the keys ID tokens
/// are checked with, next to the client's endpoints.
fn static_oidc(
    client: OAuthClient,
    issuer: &str,
    userinfo: &str,
    jwks: &str,
) -> Result<OAuthClient> {
    let metadata = Metadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: client.authorization_url().cloned(),
        token_endpoint: client.token_url().cloned(),
        device_authorization_endpoint: client.device_authorization_url().cloned(),
        revocation_endpoint: client.revocation_url().cloned(),
        introspection_endpoint: client.introspection_url().cloned(),
        userinfo_endpoint: Some(endpoint("userinfo_endpoint", userinfo)?),
        jwks_uri: Some(endpoint("jwks_uri", jwks)?),
        registration_endpoint: None,
        mtls_endpoint_aliases: None,
        tls_client_certificate_bound_access_tokens: false,
        end_session_endpoint: None,
        pushed_authorization_request_endpoint: client.par_url().cloned(),
        require_pushed_authorization_requests: false,
        request_object_signing_alg_values_supported: None,
        require_signed_request_object: false,
        request_parameter_supported: None,
        scopes_supported: None,
        authorization_details_types_supported: None,
        response_types_supported: Some(vec!["code".to_owned()]),
        grant_types_supported: None,
        token_endpoint_auth_methods_supported: None,
        token_endpoint_auth_signing_alg_values_supported: None,
        code_challenge_methods_supported: None,
        id_token_signing_alg_values_supported: None,
        dpop_signing_alg_values_supported: None,
        authorization_response_iss_parameter_supported: false,
        extra: Map::new(),
    };
    client.to_builder().metadata(metadata).build()
}

/// A new client for `client_id`: every preset's client starts here.
pub(super) fn new_client(client_id: impl Into<String>) -> OAuthClientBuilder {
    OAuthClient::builder(client_id)
}

/// `template` with each `{name}` of `vars` replaced by its value, in one pass (a value is never
/// read as a template). A `{` that starts no known name stays as it is.
pub(super) fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let var = after.find('}').and_then(|close| {
            let name = &after[..close];
            let (_, value) = vars.iter().find(|(n, _)| *n == name)?;
            Some((*value, close))
        });
        match var {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn templates_are_filled_once() {
        let vars = [("a", "{b}"), ("b", "x")];
        assert_eq!(fill("https://{a}/{b}/{c}{", &vars), "https://{b}/x/{c}{");
    }
}
