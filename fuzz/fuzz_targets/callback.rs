//! The authorization callback: a redirect's query string, a pasted address, and the paste
//! receiver's conversation with the person. `{state}` in the input stands for the request's
//! real (random) state, so the fuzzer can get past the state check.
//!
//! Invariants: no panic; a code is accepted only from a callback with exactly one `state`, equal
//! to the request's, with one non-empty `code` and no `error`, an `iss` equal to the configured
//! issuer when one is set; a request accepts at most one answer; a bare code is accepted only
//! when the receiver was told to; the person is never shown back what they pasted, and an error
//! never quotes a pasted line.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{fields, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::auth_code::{AuthorizationRequest, Callback};
use oauth_layer::fuzzing::paste;
use oauth_layer::{Error, OAuthClient};
use secrecy::ExposeSecret;

const ISSUER: &str = "https://idp.example";
/// Seeds carry this in codes and stray text: no message of the crate contains it.
const MARK: &str = "SENTINEL";

/// The parameters of a pasted line, read the way a person's paste is (an address, or a query).
fn pasted_pairs(line: &str) -> Vec<(String, String)> {
    let line = line.trim();
    // Like `Callback::from_query`, one leading `?` goes, also from an address's query.
    let query = match url::Url::parse(line) {
        Ok(url) => url.query().unwrap_or("").to_owned(),
        Err(_) => line.to_owned(),
    };
    let query = query.strip_prefix('?').unwrap_or(&query);
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Whether the server's own error text (which an error may show) carries the mark.
fn quotes_mark(pairs: &[(String, String)]) -> bool {
    ["error", "error_description", "error_uri"]
        .iter()
        .any(|name| values(pairs, name).iter().any(|v| v.contains(MARK)))
}

fuzz_target!(|data: &[u8]| {
    // flags ~ query ~ pasted line 1 ~ pasted line 2 ~ pasted line 3
    let f = fields(data, 5);
    let flags = text(f[0]);
    let with_issuer = flags.contains('I');
    let require_iss = flags.contains('R');
    let accept_bare_code = flags.contains('B');

    let mut client =
        OAuthClient::builder("fuzz-client").authorization_url("https://idp.example/authorize");
    if with_issuer {
        client = client.issuer(ISSUER);
    }
    let client = client.build().expect("a valid authorization URL");
    let flow = AuthCode::new().scope("openid").require_iss(require_iss);
    let new_request = || {
        flow.authorization_request(&client, "http://127.0.0.1:1410/callback")
            .expect("an authorization request")
    };

    // A query string delivered to the redirect URI.
    let request = new_request();
    let query = text(f[1]).replace("{state}", request.state());
    let callback = Callback::from_query(&query);
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.strip_prefix('?').unwrap_or(&query).as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let _ = &pairs;
    check_answer(&request, &callback, &pairs, with_issuer, require_iss);

    // A pasted address, parsed alone.
    let request = new_request();
    let line = text(f[2]).replace("{state}", request.state());
    if let Ok(callback) = Callback::from_pasted(&line) {
        let _ = format!("{callback:?}");
        let _ = request.check(&callback);
    }

    // The paste receiver, with up to three attempts.
    let request = new_request();
    let lines: Vec<String> = f[2..]
        .iter()
        .map(|l| text(l).replace("{state}", request.state()))
        .collect();
    let outcome = paste(&client, &request, &lines, accept_bare_code);
    // The first message shows the authorization URL; the others are questions and hints, which
    // never repeat what was pasted.
    for shown in outcome.shown.iter().skip(1) {
        assert!(!shown.contains(MARK), "the prompt echoes a paste: {shown}");
    }
    let pasted: Vec<Vec<(String, String)>> = lines.iter().map(|l| pasted_pairs(l)).collect();
    match &outcome.result {
        Ok(code) => {
            let code = code.secret().expose_secret();
            assert!(!code.is_empty());
            let answers = pasted.iter().any(|pairs| {
                let states: Vec<&str> = values(pairs, "state");
                states == [request.state()] && values(pairs, "code") == [code]
            });
            let bare = lines.iter().any(|l| l.trim() == code);
            assert!(
                answers || (accept_bare_code && bare),
                "a code accepted without this sign-in's state"
            );
        }
        Err(e) => {
            let server_text = pasted.iter().any(|pairs| quotes_mark(pairs));
            let message = format!("{e} {e:?}");
            assert!(
                server_text || !message.contains(MARK),
                "an error quotes a paste: {message}"
            );
        }
    }
});

fn check_answer(
    request: &AuthorizationRequest,
    callback: &Callback,
    pairs: &[(String, String)],
    with_issuer: bool,
    require_iss: bool,
) {
    let _ = format!("{callback:?}");
    let all = |name: &str| values(pairs, name);
    let first = request.check(callback);
    if let Ok(code) = &first {
        assert_eq!(all("state"), [request.state()], "state");
        assert_eq!(all("code"), [code.secret().expose_secret()], "code");
        assert!(!code.secret().expose_secret().is_empty());
        assert!(all("error").is_empty(), "code with error");
        let iss = all("iss");
        assert!(iss.len() <= 1);
        if with_issuer {
            assert!(iss.is_empty() || iss == [ISSUER], "foreign iss");
        }
        if require_iss {
            assert_eq!(iss.len(), 1, "missing iss");
        }
        assert_eq!(code.issuer(), iss.first().copied());
    }
    if let Err(e) = &first {
        let message = format!("{e} {e:?}");
        assert!(
            quotes_mark(pairs) || !message.contains(MARK),
            "an error quotes the callback: {message}"
        );
    }
    if all("state") != [request.state()] {
        assert!(matches!(first, Err(Error::StateMismatch)), "{first:?}");
    }
    // Whatever the first answer was, the same callback never gives a code twice.
    assert!(request.check(callback).is_err(), "a replay was accepted");
}
