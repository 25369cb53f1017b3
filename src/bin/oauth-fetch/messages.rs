//! What the tool says when it cannot get a token, written for the person at the terminal:
//! what happened in their words, then what to do. The protocol's own word (`access_denied`)
//! follows in brackets for whoever needs to look it up. Never a token or a secret: the
//! crate's errors hold none, and only their codes and texts are used here. Where the crate's
//! advice names one of its builder methods, the option that does the same is named instead.

use oauth_layer::{Error, ErrorCode};

/// `error`, explained for a person, for a run of `--flow flow`.
pub(crate) fn explain(error: &Error, flow: &str) -> String {
    let browser = flow == "auth-code";
    match error {
        Error::AuthorizationDenied(e) if e.code == ErrorCode::AccessDenied && browser => {
            "the sign-in was cancelled in the browser, or access was not allowed there. Run the \
             command again and choose to allow access; if you did, ask the app's administrator \
             whether your account may use it (access_denied)"
                .to_owned()
        }
        Error::AuthorizationDenied(e) if e.code == ErrorCode::AccessDenied => {
            "the sign-in was declined on the page where the code was entered. Run the command \
             again and approve the request there (access_denied)"
                .to_owned()
        }
        Error::AuthorizationDenied(e) => format!(
            "the sign-in did not complete: the server refused it{}. Run the command again; if it \
             happens again, the app's settings at the provider may need a change ({})",
            e.description
                .as_deref()
                .map(|d| format!(" with the message \u{201c}{d}\u{201d}"))
                .unwrap_or_default(),
            e.code.as_str()
        ),
        Error::Timeout(what) if flow == "device" => format!(
            "the sign-in was not finished in time. Run the command again and enter the new code \
             soon after it is shown ({what})"
        ),
        Error::Timeout(what) if browser => format!(
            "the sign-in was not finished in time. Run the command again and complete the sign-in \
             in the browser window it opens ({what})"
        ),
        Error::StateMismatch => "the browser came back from a different sign-in than this one \
             (an old tab, or someone else's link). Run the command again and use the address it \
             shows (state mismatch)"
            .to_owned(),
        Error::InteractionRequired => "a new sign-in is needed, and this run cannot ask for \
             one. Run with --flow auth-code or --flow device to sign in"
            .to_owned(),
        // Resource-first without --client-id, at a server that takes no registration.
        Error::Config(text) if text.starts_with("no client identity") => format!(
            "{error}. Give --client-id (and --client-secret, if it has one) of a client \
             registered with that server"
        ),
        other => config_text(other),
    }
}

/// A library error about the configuration, in the tool's words: the builder methods its
/// advice names become the options that do the same.
pub(crate) fn config_text(error: &Error) -> String {
    let mut text = error.to_string();
    for (api, option) in API_OPTIONS {
        text = text.replace(api, option);
    }
    text
}

/// What a library message advises, and the same advice for the command line.
const API_OPTIONS: &[(&str, &str)] = &[
    ("(OAuthClientBuilder::signing_key)", "(--key)"),
    ("(OAuthClientBuilder::dpop)", "(--dpop)"),
    ("(OAuthClientBuilder::issuer, or discovery)", "(--issuer)"),
    ("(OAuthClientBuilder::issuer)", "(--issuer)"),
    (
        "set OAuthClientBuilder::issuer, or configure the client by discovery",
        "give --issuer",
    ),
    (
        "(OAuthClientBuilder::client_certificate)",
        "(--client-cert and --client-key)",
    ),
    (
        "(OAuthClientBuilder::par_url, or metadata that names it)",
        "(--par-url, or --issuer without --token-url)",
    ),
    (
        "Load the key with SigningKey::ps256_pem, es256_pem or eddsa_pem",
        "Give --key-alg PS256 for an RSA key, or use a P-256 or Ed25519 key",
    ),
    (
        "configure it with OAuthClientBuilder::par_url, or from the server's metadata",
        "give --par-url, or --issuer without --token-url to discover it",
    ),
];
