//! Building the client and the token source from the options: endpoints and discovery,
//! provider presets, key files for the JWT bearer flow, and `oauth-fetch revoke`.

use oauth_layer::client::TokenTypeHint;
#[cfg(feature = "auth-code")]
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::token_exchange::ACCESS_TOKEN_TYPE;
use oauth_layer::flow::{
    ActorToken, AssertionGrant, ClientCredentials, DeviceCode, Password, RefreshToken,
    SubjectToken, TokenExchange,
};
#[cfg(feature = "auth-code")]
use oauth_layer::provider::Preset;
use oauth_layer::{Action, AuthMethod, OAuthClient, OAuthClientBuilder, TokenSource};
#[cfg(feature = "jwt")]
use oauth_layer::{
    flow::{JwtBearer, ServiceAccount},
    jwt::{Algorithm, SigningKey},
};
use secrecy::SecretString;

use crate::events::Events;
use crate::messages::config_text;
#[cfg(feature = "auth-code")]
use crate::options::check_redirect_uri;
use crate::options::{Options, Stop, usage};
use crate::secret::read_key_file;
use crate::store::open_store;
use crate::workload::{GOOGLE_DEFAULT_SCOPE, Google, JWT_TOKEN_TYPE, Kind, Role};

/// The endpoint a run cannot do without: discovery runs when it was not given.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    /// Fetching URLs: the token endpoint.
    TokenEndpoint,
    /// `oauth-fetch revoke`: the revocation endpoint.
    RevocationEndpoint,
}

/// The client for `client_id`, its endpoints from the first of these that has them:
///
/// 1. the options (`--token-url`, `--auth-url`, `--device-url`, `--revocation-url`), or
///    `token_url` from a service account key file;
/// 2. the discovery document of `--issuer`, fetched when the endpoint the run `needs` is still
///    missing. Explicit endpoints win over the document's.
///
/// With `--provider` the client is the preset's instead ([`build_preset`]), and the options
/// that would say otherwise are usage errors ([`check_provider`]).
///
/// Usage and discovery problems are [`Stop::Usage`] (exit code 2).
///
/// [`check_provider`]: crate::options::check_provider
async fn build_client(
    o: &Options,
    client_id: &str,
    token_url: Option<&str>,
    needs: Needs,
) -> Result<OAuthClient, Stop> {
    let client = new_client(o, client_id, token_url)?;
    let built = client.clone().build().map_err(|e| usage(e.to_string()))?;
    // The profile last: it judges the whole client, issuer and discovered metadata included.
    let client = match o.profile {
        Some(profile) => client.profile(profile),
        None => client,
    };
    // Its errors name the profile and the requirement; their advice is put in options.
    let profiled = |e: oauth_layer::Error| usage(config_text(&e));
    let missing = match needs {
        Needs::TokenEndpoint => built.token_url().is_none(),
        Needs::RevocationEndpoint => built.revocation_url().is_none(),
    };
    let Some(issuer) = &o.issuer else {
        return match (needs, missing) {
            (Needs::TokenEndpoint, true) => Err(usage(
                "--token-url is required (or --issuer to discover it)",
            )),
            (Needs::RevocationEndpoint, true) => Err(usage(
                "revoke needs --revocation-url (or --issuer to discover it)",
            )),
            (_, false) if o.profile.is_some() => client.build().map_err(profiled),
            (_, false) => Ok(built),
        };
    };
    if !missing {
        return client.issuer(issuer.clone()).build().map_err(profiled);
    }
    // The issuer first: a profile checks the client before discovery, and wants to know it.
    let configured = if o.profile.is_some() {
        client.issuer(issuer.clone())
    } else {
        client
    };
    let client = oauth_layer::discovery::configure(configured, issuer)
        .await
        .map_err(|e| match e {
            oauth_layer::Error::Config(_) if o.profile.is_some() => profiled(e),
            e => usage(format!("discovery of {issuer} failed: {e}")),
        })?;
    match needs {
        Needs::TokenEndpoint if client.token_url().is_none() => Err(usage(format!(
            "the discovery document of {issuer} names no token endpoint (give --token-url)"
        ))),
        Needs::RevocationEndpoint if client.revocation_url().is_none() => Err(usage(format!(
            "the discovery document of {issuer} names no revocation endpoint (give \
                 --revocation-url)"
        ))),
        _ => Ok(client),
    }
}

/// Every [`OAuthClient`] the tool makes starts here: `client_id` with `--client-secret`,
/// `--auth-method` and the endpoints given as options (`token_url` may come from a key file).
/// Each endpoint is checked (https, or http to loopback) whenever given, and named by its option.
fn new_client(
    o: &Options,
    client_id: &str,
    token_url: Option<&str>,
) -> Result<OAuthClientBuilder, Stop> {
    let mut client = OAuthClient::builder(client_id);
    // A workload credential that authenticates the client is its assertion; Azure's client
    // comes with it (checked when parsing: no --client-id, --client-secret or --key with one).
    let mut assertion = false;
    if let Some(workload) = o.workload.as_ref()
        && workload.role(&o.flow) == Role::ClientAssertion
    {
        assertion = true;
        client = match &workload.kind {
            Kind::Azure(azure) => azure.client_builder(),
            Kind::Source(source) => client.client_assertion(source.clone()),
            // Its own requests (Role::OwnRequests): never the client's authentication.
            Kind::Google(_) => client,
        };
    }
    // --key is the client's own (private_key_jwt) outside jwt-bearer, and there with the
    // method named: checked when parsing.
    let clients_key = o.key.is_some()
        && (o.flow != "jwt-bearer" || o.auth_method == Some(AuthMethod::PrivateKeyJwt));
    // A certificate with neither a secret nor a key authenticates the client by itself.
    let implied =
        (o.client_certificate.is_some() && o.client_secret.is_none() && !clients_key && !assertion)
            .then_some(AuthMethod::TlsClientAuth);
    if let Some(method) = o.auth_method.or(implied) {
        let secret_method = matches!(
            method,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        );
        if secret_method && o.client_secret.is_none() {
            return Err(usage(format!(
                "--auth-method {} needs --client-secret (or OAUTH_CLIENT_SECRET)",
                if method == AuthMethod::ClientSecretPost {
                    "post"
                } else {
                    "basic"
                }
            )));
        }
        client = client.auth_method(method);
    }
    if let Some(secret) = &o.client_secret {
        client = client.secret(secret.clone());
    }
    if clients_key {
        client = client.signing_key(client_key(o)?);
    }
    if let Some(certificate) = &o.client_certificate {
        client = client.client_certificate(certificate.clone());
    }
    if let Some(pem) = &o.ca_certificate {
        client = client.root_certificate(pem);
    }
    if let Some(algorithms) = &o.dpop {
        client = client.dpop(oauth_layer::dpop::Dpop::new().algorithms(algorithms.iter().copied()));
    }
    // The settings before each URL are already known to be good, so a failed build names it.
    let checked = |client: OAuthClientBuilder, option: &str| {
        client
            .clone()
            .build()
            .map(|_| client)
            .map_err(|e| usage(format!("{option}: {e}")))
    };
    if let Some(url) = token_url {
        client = checked(client.token_url(url), "--token-url")?;
    }
    if let Some(url) = &o.auth_url {
        client = checked(client.authorization_url(url), "--auth-url")?;
    }
    if let Some(url) = &o.device_url {
        client = checked(client.device_authorization_url(url), "--device-url")?;
    }
    if let Some(url) = &o.revocation_url {
        client = checked(client.revocation_url(url), "--revocation-url")?;
    }
    if let Some(url) = &o.par_url {
        client = checked(client.par_url(url), "--par-url")?;
    }
    Ok(client)
}

pub(crate) async fn build_source(o: &Options, events: &Events) -> Result<TokenSource, Stop> {
    // Google's credentials are a token source of their own.
    if let Some(google) = o.workload.as_ref().and_then(|w| w.google()) {
        return google_source(o, google, events).await;
    }
    // A workload credential that is the grant's assertion or the subject token.
    let grant_source = o.workload.as_ref().and_then(|w| w.grant_source(&o.flow));
    // The key file comes first: a service account's names the token endpoint and client.
    #[cfg(feature = "jwt")]
    let key = match o.flow.as_str() {
        "jwt-bearer" if grant_source.is_none() => Some(load_key(o)?),
        _ => None,
    };
    #[cfg(feature = "jwt")]
    let (client_id, token_url) = match &key {
        // Explicit options win over the key file.
        Some(KeyFile::ServiceAccount(account)) => (
            Some(
                o.client_id
                    .clone()
                    .unwrap_or_else(|| account.email().into()),
            ),
            Some(
                o.token_url
                    .clone()
                    .unwrap_or_else(|| account.token_uri().into()),
            ),
        ),
        _ => (o.client_id.clone(), o.token_url.clone()),
    };
    #[cfg(not(feature = "jwt"))]
    let (client_id, token_url) = (o.client_id.clone(), o.token_url.clone());
    // Azure's environment names the client and its token endpoint (and nothing else may).
    let (client_id, token_url) = match o.workload.as_ref().and_then(|w| w.azure()) {
        Some(azure) => (Some(azure.client_id().to_owned()), Some(azure.token_url())),
        None => (client_id, token_url),
    };

    if o.provider.is_none() && token_url.is_none() && o.issuer.is_none() {
        return Err(usage(
            "--token-url is required (or --issuer to discover it, or --provider)",
        ));
    }
    let client_id = client_id.ok_or_else(|| usage("--client-id is required"))?;
    let preset = match &o.provider {
        Some(name) => Some(build_preset(o, name, &client_id).await?),
        None => None,
    };
    let client = match &preset {
        Some(preset) => preset_client(preset),
        None => build_client(o, &client_id, token_url.as_deref(), Needs::TokenEndpoint).await?,
    };
    let store = open_store(o).await?;
    let tokens = match o.flow.as_str() {
        "client-credentials" => {
            let mut flow = ClientCredentials::new();
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            if let Some(a) = &o.audience {
                flow = flow.audience(a.clone());
            }
            if let Some(r) = &o.resource {
                flow = flow.resource(r.clone());
            }
            for detail in &o.details {
                flow = flow.authorization_detail(detail.clone());
            }
            events.source(client, flow, &store)?
        }
        "password" => {
            let (Some(user), Some(password)) = (&o.username, &o.password) else {
                return Err(usage("--flow password needs --username and --password"));
            };
            let mut flow = Password::new(user.clone(), password.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow, &store)?
        }
        "refresh" => {
            let Some(rt) = &o.refresh_token else {
                return Err(usage("--flow refresh needs --refresh-token"));
            };
            let mut flow = RefreshToken::new(rt.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow, &store)?
        }
        #[cfg(feature = "auth-code")]
        "auth-code" => {
            if client.authorization_url().is_none() {
                return Err(usage(
                    "--flow auth-code needs --auth-url (or --issuer, without --token-url, whose \
                     discovery document names one)",
                ));
            }
            // A preset's sign-in carries its scopes (or --scope) and authorization parameters.
            let flow = match &preset {
                Some(preset) => preset.auth_code(),
                None => o
                    .scopes
                    .iter()
                    .fold(AuthCode::new(), |flow, s| flow.scope(s.clone())),
            };
            if o.par && client.par_url().is_none() {
                return Err(usage(match &o.provider {
                    Some(name) => {
                        format!("--provider {name} names no pushed authorization request endpoint")
                    }
                    None => "--par needs the server's pushed authorization request endpoint: \
                             give --par-url, or --issuer without --token-url to discover it"
                        .to_owned(),
                }));
            }
            events.source(client, sign_in(o, flow)?, &store)?
        }
        #[cfg(not(feature = "auth-code"))]
        "auth-code" => {
            return Err(usage(
                "--flow auth-code needs the crate's auth-code feature",
            ));
        }
        "device" => {
            if client.device_authorization_url().is_none() {
                return Err(usage(match &o.provider {
                    Some(name) => format!(
                        "--provider {name} has no device authorization endpoint (use --flow \
                         auth-code)"
                    ),
                    None => "--flow device needs --device-url (or --issuer, without \
                             --token-url, whose discovery document names one)"
                        .to_owned(),
                }));
            }
            let scopes = match &preset {
                // The preset's scopes (or --scope, which replaced them).
                Some(preset) => preset_scopes(preset),
                None => o.scopes.clone(),
            };
            let mut flow = DeviceCode::new();
            for s in scopes {
                flow = flow.scope(s);
            }
            events.source(client, flow, &store)?
        }
        #[cfg(feature = "jwt")]
        "jwt-bearer" => match key {
            Some(KeyFile::Pem(key)) => {
                // RFC 7523 §3: the issuer is typically the client id; `sub` defaults to it.
                let mut flow = JwtBearer::new(key, client_id.as_str());
                if let Some(subject) = &o.subject {
                    flow = flow.subject(subject.clone());
                }
                for s in &o.scopes {
                    flow = flow.scope(s.clone());
                }
                events.source(client, flow, &store)?
            }
            Some(KeyFile::ServiceAccount(account)) => {
                // Issuer the account's email, scopes in the assertion's `scope` claim.
                let mut flow = account.flow(o.scopes.join(" "));
                if let Some(subject) = &o.subject {
                    flow = flow.subject(subject.clone());
                }
                events.source(client, flow, &store)?
            }
            None => {
                let Some(source) = grant_source else {
                    unreachable!("the key is loaded for --flow jwt-bearer without a source")
                };
                let flow = o
                    .scopes
                    .iter()
                    .fold(AssertionGrant::new(source), |flow, s| flow.scope(s.clone()));
                events.source(client, flow, &store)?
            }
        },
        #[cfg(not(feature = "jwt"))]
        "jwt-bearer" => {
            return Err(usage("--flow jwt-bearer needs the crate's jwt feature"));
        }
        "token-exchange" => {
            let token_type =
                |t: &Option<String>| t.as_deref().unwrap_or(ACCESS_TOKEN_TYPE).to_owned();
            let subject = match (&o.subject_token, grant_source) {
                (_, Some(source)) => SubjectToken::credential(
                    source,
                    o.subject_token_type.as_deref().unwrap_or(JWT_TOKEN_TYPE),
                ),
                (Some(subject), None) => {
                    SubjectToken::fixed(subject.clone(), token_type(&o.subject_token_type))
                }
                (None, None) => {
                    return Err(usage(
                        "--flow token-exchange needs --subject-token (or a workload credential: \
                         --assertion-file, --assertion-url, --assertion-command or \
                         --github-actions-audience)",
                    ));
                }
            };
            let mut flow = TokenExchange::new(subject);
            if let Some(actor) = &o.actor_token {
                flow = flow.actor(ActorToken::fixed(
                    actor.clone(),
                    token_type(&o.actor_token_type),
                ));
            }
            if let Some(t) = &o.requested_token_type {
                flow = flow.requested_token_type(t.clone());
            }
            if let Some(a) = &o.audience {
                flow = flow.audience(a.clone());
            }
            if let Some(r) = &o.resource {
                flow = flow.resource(r.clone());
            }
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            for detail in &o.details {
                flow = flow.authorization_detail(detail.clone());
            }
            events.source(client, flow, &store)?
        }
        other => unreachable!("--flow {other:?} was checked when parsing"),
    };
    store.check(&tokens).await?;
    Ok(tokens)
}

/// The token source of Google's credentials, for `--scope` (or [`GOOGLE_DEFAULT_SCOPE`]):
/// the application default credentials are looked for now, and `-v` says which were found
/// (where, and who: an email or a client id, never a secret). Its token events come from the
/// crate's tracing ([`crate::events::ResourceEvents`]), as the source is the crate's.
async fn google_source(o: &Options, google: &Google, events: &Events) -> Result<TokenSource, Stop> {
    let scopes = if o.scopes.is_empty() {
        GOOGLE_DEFAULT_SCOPE.to_owned()
    } else {
        o.scopes.join(" ")
    };
    let (option, who, built) = match google {
        Google::Adc(adc) => {
            let found = adc
                .find()
                .await
                .map_err(|e| usage(format!("--google-adc: {e}")))?;
            ("--google-adc", found.describe(), found.token_source(scopes))
        }
        Google::File(file) => {
            let file = file.load()?;
            (
                "--google-credentials",
                file.describe(),
                file.token_source(scopes),
            )
        }
    };
    let tokens = built.map_err(|e| {
        if e.to_string().contains("executables are not allowed") {
            usage(format!(
                "{option}: the external_account file's credential source runs a program, which \
                 runs only with --allow-executables (give it if you trust the file as much as \
                 the program it names)"
            ))
        } else {
            usage(format!("{option}: {}", config_text(&e)))
        }
    })?;
    events.say(&format!("Google credentials: {who}"));
    Ok(tokens)
}

/// The sign-in `flow` as the options ask for it: the receiver (`--redirect-uri`, checked, and
/// `--paste`), pushed (`--par`), signed (`--jar`), with `--authorization-details`.
#[cfg(feature = "auth-code")]
pub(crate) fn sign_in(o: &Options, mut flow: AuthCode) -> Result<AuthCode, Stop> {
    if let Some(uri) = &o.redirect_uri {
        check_redirect_uri(uri, o.paste)?;
        flow = flow.redirect_uri(uri.clone());
    }
    if o.paste {
        flow = flow.paste();
    }
    if o.par {
        flow = flow.par(true);
    }
    if o.jar {
        flow = flow.request_object(true);
    }
    for detail in &o.details {
        flow = flow.authorization_detail(detail.clone());
    }
    Ok(flow)
}

/// A provider preset ([`build_preset`]); without the auth-code feature there is none.
#[cfg(feature = "auth-code")]
type PresetBox = Box<dyn Preset>;
#[cfg(not(feature = "auth-code"))]
type PresetBox = std::convert::Infallible;

/// The preset `--provider` names (checked by [`check_provider`]), for `client_id`, with
/// `--client-secret` (and with it the client authentication the provider documents),
/// `--scope` replacing its default scopes, and `--provider-arg` where it lives. `openid` and
/// `franceconnect` are discovered. Problems are [`Stop::Usage`] (exit code 2).
///
/// [`check_provider`]: crate::options::check_provider
#[cfg(feature = "auth-code")]
async fn build_preset(o: &Options, name: &str, client_id: &str) -> Result<PresetBox, Stop> {
    use oauth_layer::provider::{
        Auth0, Discord, Facebook, GitHub, GitLab, Google, Kakao, Keycloak, LinkedIn, Microsoft,
        Naver, Okta, OpenId, Reddit, Shopify,
    };

    let arg = o.provider_arg.as_deref();
    let required = || arg.ok_or_else(|| usage(format!("--provider {name} needs --provider-arg")));
    let bad = |e: oauth_layer::Error| usage(format!("--provider {name}: {e}"));
    let scopes = (!o.scopes.is_empty()).then(|| o.scopes.join(" "));
    // Every preset with a fixed location: the secret, then the scopes.
    macro_rules! preset {
        ($made:expr) => {{
            let mut preset = $made.map_err(bad)?;
            if let Some(secret) = &o.client_secret {
                preset = preset.secret(secret.clone());
            }
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset) as PresetBox
        }};
    }
    // The discovered ones: the secret goes on the client first, so that discovery picks the
    // client authentication from the methods the document lists.
    let client = || new_client(o, client_id, None);
    Ok(match name {
        "github" => preset!(GitHub::new(client_id)),
        "google" => preset!(Google::new(client_id)),
        "microsoft" => preset!(Microsoft::new(arg.unwrap_or("common"), client_id)),
        "okta" => preset!(Okta::new(required()?, client_id)),
        "auth0" => preset!(Auth0::new(required()?, client_id)),
        "keycloak" => preset!(Keycloak::new(required()?, client_id)),
        "gitlab" => preset!(match arg {
            Some(base) => GitLab::self_hosted(base, client_id),
            None => GitLab::new(client_id),
        }),
        "discord" => preset!(Discord::new(client_id)),
        "facebook" => preset!(Facebook::new(client_id)),
        "reddit" => preset!(Reddit::new(client_id, required()?)),
        "shopify" => preset!(Shopify::new(required()?, client_id)),
        "linkedin" => preset!(LinkedIn::new(client_id)),
        "kakao" => preset!(Kakao::new(client_id)),
        "naver" => preset!(Naver::new(client_id)),
        "openid" => {
            let issuer = o
                .issuer
                .as_deref()
                .ok_or_else(|| usage("--provider openid needs --issuer"))?;
            let mut preset = OpenId::discover(client()?, issuer)
                .await
                .map_err(|e| usage(format!("discovery of {issuer} failed: {e}")))?;
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset)
        }
        #[cfg(feature = "jwt")]
        "franceconnect" => {
            use oauth_layer::provider::{Environment, FranceConnect};
            let environment = match required()? {
                "integration" => Environment::Integration,
                "production" => Environment::Production,
                _ => {
                    return Err(usage(
                        "--provider franceconnect takes --provider-arg integration or production",
                    ));
                }
            };
            let mut preset = FranceConnect::discover(client()?, environment)
                .await
                .map_err(|e| usage(format!("discovery of {} failed: {e}", environment.issuer())))?;
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset)
        }
        #[cfg(not(feature = "jwt"))]
        "franceconnect" => {
            return Err(usage(
                "--provider franceconnect needs the crate's jwt feature",
            ));
        }
        other => unreachable!("--provider {other:?} was checked when parsing"),
    })
}

#[cfg(not(feature = "auth-code"))]
async fn build_preset(_: &Options, _: &str, _: &str) -> Result<PresetBox, Stop> {
    Err(usage("--provider needs the crate's auth-code feature"))
}

/// The preset's client: endpoints, client authentication, user agent and quirks.
fn preset_client(preset: &PresetBox) -> OAuthClient {
    #[cfg(feature = "auth-code")]
    return preset.client().clone();
    #[cfg(not(feature = "auth-code"))]
    match *preset {}
}

/// The scopes of the preset's sign-in (its defaults, or `--scope`), for the device flow: those
/// its authorization request would carry (a preset keeps them to itself otherwise).
fn preset_scopes(preset: &PresetBox) -> Vec<String> {
    #[cfg(feature = "auth-code")]
    return preset
        .auth_code()
        .authorization_request(preset.client(), "http://127.0.0.1/callback")
        .ok()
        .and_then(|request| {
            let (_, scope) = request
                .url()
                .query_pairs()
                .find(|(name, _)| name == "scope")?;
            Some(
                scope
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        })
        .unwrap_or_default();
    #[cfg(not(feature = "auth-code"))]
    match *preset {}
}

/// What `--key` held.
#[cfg(feature = "jwt")]
enum KeyFile {
    /// A PEM private key, with its algorithm and `--key-id`.
    Pem(SigningKey),
    /// A Google-style service account key file.
    ServiceAccount(ServiceAccount),
}

/// Reads `--key`: JSON (its first non-blank character is `{`) is a service account key file,
/// anything else a PEM private key. The contents never reach a message; the buffer is wiped.
#[cfg(feature = "jwt")]
fn load_key(o: &Options) -> Result<KeyFile, Stop> {
    let Some(path) = &o.key else {
        return Err(usage("--flow jwt-bearer needs --key FILE"));
    };
    let bytes = read_key_file(path, "--key")?;
    if is_json(&bytes) {
        for (option, given) in [
            ("--key-alg", o.key_alg.is_some()),
            ("--key-id", o.key_id.is_some()),
        ] {
            if given {
                return Err(usage(format!(
                    "{option} does not apply to a service account key file (RS256, with its \
                     private_key_id)"
                )));
            }
        }
        let json = std::str::from_utf8(&bytes)
            .map_err(|_| usage(format!("--key: {} is not UTF-8", path.display())))?;
        let account = ServiceAccount::from_json(json)
            .map_err(|e| usage(format!("--key: {}: {e}", path.display())))?;
        return Ok(KeyFile::ServiceAccount(account));
    }
    if o.client_id.is_none() {
        return Err(usage(
            "--flow jwt-bearer with a PEM key needs --client-id (the assertion's issuer)",
        ));
    }
    pem_key(o, path, &bytes).map(KeyFile::Pem)
}

/// The client's own key (`--key`, for private_key_jwt): a PEM private key, never a service
/// account key file. The contents never reach a message; the buffer is wiped.
fn client_key(o: &Options) -> Result<SigningKey, Stop> {
    let Some(path) = &o.key else {
        return Err(usage(
            "--auth-method private-key-jwt needs --key FILE (the client's PEM private key)",
        ));
    };
    let bytes = read_key_file(path, "--key")?;
    if is_json(&bytes) {
        return Err(usage(format!(
            "--key: {} is a JSON file; the client's key for private-key-jwt is a PEM private key",
            path.display()
        )));
    }
    pem_key(o, path, &bytes)
}

/// Whether a key file is JSON (a service account's): its first non-blank character is `{`.
fn is_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// The PEM private key in `bytes` (read from `path`), with `--key-alg` or else the algorithm
/// its type says (under `--profile`, PS256 rather than RS256 for RSA), and `--key-id`.
fn pem_key(o: &Options, path: &std::path::Path, bytes: &[u8]) -> Result<SigningKey, Stop> {
    let rsa = if o.profile.is_some() {
        Algorithm::PS256
    } else {
        Algorithm::RS256
    };
    let key = match o.key_alg.as_deref() {
        Some(name) => SigningKey::from_pem(key_algorithm(name)?, bytes)
            .map_err(|e| usage(format!("--key: {}: {e}", path.display())))?,
        // Only the right key type and curve parses and signs, so the first that works is it.
        None => [rsa, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA]
            .into_iter()
            .find_map(|alg| SigningKey::from_pem(alg, bytes).ok())
            .ok_or_else(|| {
                usage(format!(
                    "--key: {} is not a usable PEM private key (RSA, P-256, P-384 or Ed25519; \
                 PKCS#8, or PKCS#1 for RSA; not encrypted)",
                    path.display()
                ))
            })?,
    };
    Ok(match &o.key_id {
        Some(kid) => key.kid(kid.clone()),
        None => key,
    })
}

/// `--key-alg`, by its JWS name (any case).
#[cfg(feature = "jwt")]
fn key_algorithm(name: &str) -> Result<Algorithm, Stop> {
    [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
    .ok_or_else(|| {
        usage(format!(
            "unknown --key-alg {name:?} (RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA)"
        ))
    })
}

/// `oauth-fetch revoke`: one revocation request (the caller prints `revoked`).
pub(crate) async fn revoke(o: &Options, events: &Events) -> Result<(), Stop> {
    let token = o
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| usage("revoke needs --token"))?;
    let client_id = o
        .client_id
        .as_deref()
        .ok_or_else(|| usage("--client-id is required"))?;
    let client = match &o.provider {
        Some(name) => {
            let client = preset_client(&build_preset(o, name, client_id).await?);
            if client.revocation_url().is_none() {
                return Err(usage(format!(
                    "--provider {name} names no revocation endpoint"
                )));
            }
            client
        }
        None => {
            build_client(
                o,
                client_id,
                o.token_url.as_deref(),
                Needs::RevocationEndpoint,
            )
            .await?
        }
    };
    let hint = o.token_type_hint.unwrap_or(TokenTypeHint::AccessToken);
    events.say(&format!("revoking (hint {})", hint.as_str()));
    client
        .revoke(&SecretString::from(token), hint)
        .await
        .map_err(|e| {
            // Wrong client credentials or an endpoint that cannot be used: 2, as when fetching.
            // A refusal (`unsupported_token_type`...) or an unreachable server: 1.
            let msg = format!("cannot revoke the token: {e}");
            if e.action() == Action::FixConfiguration {
                Stop::Usage(msg)
            } else {
                Stop::Failed(msg)
            }
        })?;
    Ok(())
}
