//! `WWW-Authenticate` challenges on a response: what the parser (`oauth_layer::challenge`) reads
//! from them, and what the layer and the middleware do about the response (the challenge
//! policy: renew, new DPoP nonce, claims, step-up, more scope, or give it back).
//!
//! Invariants of the parser: no panic; at most `MAX_CHALLENGES` challenges, `MAX_PARAMS`
//! parameters each, values at most `MAX_VALUE_LEN`, names in lower case and unique, nothing
//! read longer than the input; a parsed challenge, rendered, reads back the same.
//!
//! Invariants of the policy: no panic; only a 401 renews or asks for a new nonce or a step-up,
//! and a 403 only for more scope or claims; other statuses give the response back, except a
//! gRPC 200 with `grpc-status: 16`, which renews; a 401 without challenges renews; a 401 with a
//! plain `Bearer` challenge renews, whatever else it carries; a 401 whose readable challenges
//! never name the `Bearer` or `DPoP` scheme does not renew; a `Basic` challenge added beside
//! readable ones changes nothing; a nonce is asked for only after a DPoP request, only the
//! server's, and never the one just sent; scopes and claims handed on are well formed.
#![no_main]

#[path = "common.rs"]
mod common;

use common::fields;
use libfuzzer_sys::fuzz_target;
use oauth_layer::challenge::{
    Challenges, MAX_CHALLENGES, MAX_HEADER_BYTES, MAX_PARAMS, MAX_VALUE_LEN,
};
use oauth_layer::fuzzing::{Verdict, assess, calls_for_renewal};

const WWW: &str = "www-authenticate";
const SERVER_NONCE: &str = "server-nonce";

fuzz_target!(|data: &[u8]| {
    // Up to eight header values.
    let values: Vec<&[u8]> = fields(data, 8)
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect();
    parser(data, &values);
    policy(&values);
});

fn parser(data: &[u8], values: &[&[u8]]) {
    let mut headers = http::HeaderMap::new();
    for v in values {
        if let Ok(v) = http::HeaderValue::from_bytes(v) {
            headers.append(http::header::WWW_AUTHENTICATE, v);
        }
    }
    let total: usize = values.iter().map(|v| v.len()).sum();
    let parsed = Challenges::from_headers(&headers);
    bounded(&parsed, total);
    bounded(
        &Challenges::from_value(&String::from_utf8_lossy(data)),
        usize::MAX,
    );

    let rendered: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    let joined = rendered.join(", ");
    if joined.len() <= MAX_HEADER_BYTES {
        let again = Challenges::from_value(&joined);
        assert_eq!(again, parsed, "rendered as {joined:?}");
    }
}

fn bounded(parsed: &Challenges, input_len: usize) {
    assert!(parsed.len() <= MAX_CHALLENGES);
    let mut kept = 0usize;
    for c in parsed.iter() {
        kept += c.scheme().len();
        let params: Vec<(&str, &str)> = c.params().collect();
        assert!(params.len() <= MAX_PARAMS);
        for (i, (name, value)) in params.iter().enumerate() {
            assert!(!name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(value.len() <= MAX_VALUE_LEN);
            assert!(params[..i].iter().all(|(n, _)| n != name), "{name} twice");
            kept += name.len() + value.len();
        }
        kept += c.token68().map_or(0, str::len);
        assert!(c.token68().is_none_or(|t| t.len() <= MAX_VALUE_LEN));
        if let Some(claims) = c.claims() {
            assert!(
                serde_json::from_str::<serde_json::Value>(&claims).is_ok_and(|v| v.is_object())
            );
        }
        let _ = (c.max_age(), c.algs().count(), c.scopes().count());
    }
    assert!(kept <= input_len, "read {kept} bytes out of {input_len}");
}

fn www(values: &[&[u8]]) -> Vec<(&'static str, Vec<u8>)> {
    values.iter().map(|v| (WWW, v.to_vec())).collect()
}

fn run(status: u16, headers: &[(&str, Vec<u8>)], dpop: bool, nonce: Option<&str>) -> Verdict {
    let borrowed: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    assess(status, &borrowed, dpop, nonce)
}

fn policy(values: &[&[u8]]) {
    // What an HTTP stack delivers: valid header values; the crate reads only the visible ones.
    let delivered: Vec<&[u8]> = values
        .iter()
        .copied()
        .filter(|v| http_value(v).is_some())
        .collect();
    let readable: Vec<&str> = delivered.iter().filter_map(|v| http_value(v)).collect();
    let headers = www(values);
    let parsed = {
        let mut h = http::HeaderMap::new();
        for v in &delivered {
            if let Ok(v) = http::HeaderValue::from_bytes(v) {
                h.append(http::header::WWW_AUTHENTICATE, v);
            }
        }
        Challenges::from_headers(&h)
    };

    let verdict = run(401, &headers, false, None);
    assert_eq!(calls_for_renewal(401, values), verdict == Verdict::Renew);
    well_formed(&verdict);
    assert!(
        !matches!(verdict, Verdict::Nonce(_)),
        "a nonce without DPoP"
    );

    for status in [200, 400, 407, 500] {
        assert_eq!(run(status, &headers, true, None), Verdict::Done, "{status}");
        assert!(!calls_for_renewal(status, values), "a {status} renewed");
    }
    let forbidden = run(403, &headers, true, None);
    well_formed(&forbidden);
    assert!(
        matches!(
            forbidden,
            Verdict::Done | Verdict::MoreScope(_) | Verdict::Claims(_)
        ),
        "a 403 gave {forbidden:?}"
    );

    if delivered.is_empty() {
        assert_eq!(
            verdict,
            Verdict::Renew,
            "a 401 without challenges must renew"
        );
    }
    if parsed.len() < MAX_CHALLENGES {
        let mut with_bearer = values.to_vec();
        with_bearer.push(b"Bearer");
        assert!(
            calls_for_renewal(401, &with_bearer),
            "a bare Bearer challenge must renew"
        );
    }
    let mut with_bearer_first = vec![b"Bearer realm=\"x\"".as_slice()];
    with_bearer_first.extend(values.iter().copied());
    assert!(calls_for_renewal(401, &with_bearer_first));

    if !readable.is_empty()
        && readable.iter().all(|v| {
            let v = v.to_ascii_lowercase();
            !v.contains("bearer") && !v.contains("dpop")
        })
    {
        assert_eq!(verdict, Verdict::Done, "acted on {readable:?}");
        assert_eq!(run(401, &headers, true, None), Verdict::Done);
    }
    if !readable.is_empty() {
        let mut with_basic = values.to_vec();
        with_basic.push(b"Basic realm=\"other\"");
        assert_eq!(
            run(401, &www(&with_basic), false, None),
            verdict,
            "{readable:?}"
        );
    }

    // DPoP: the server's nonce, only when it is not the one just sent.
    let mut with_nonce = headers.clone();
    with_nonce.push(("dpop-nonce", SERVER_NONCE.as_bytes().to_vec()));
    let after_old = run(401, &with_nonce, true, Some("old-nonce"));
    well_formed(&after_old);
    match &after_old {
        Verdict::Nonce(n) => assert_eq!(n, SERVER_NONCE),
        other => assert_eq!(other, &run(401, &with_nonce, false, None)),
    }
    let after_same = run(401, &with_nonce, true, Some(SERVER_NONCE));
    assert_eq!(
        after_same,
        run(401, &with_nonce, false, None),
        "retried the same nonce"
    );
    // Without a nonce header there is nothing to retry with.
    assert!(!matches!(
        run(401, &headers, true, Some("old-nonce")),
        Verdict::Nonce(_)
    ));

    // gRPC: UNAUTHENTICATED in a trailers-only response's headers, whatever the value says.
    if let Some(first) = values.first() {
        let grpc = run(200, &[("grpc-status", first.to_vec())], false, None);
        let unauthenticated =
            http::HeaderValue::from_bytes(first).is_ok_and(|v| v.as_bytes().trim_ascii() == b"16");
        assert_eq!(
            grpc == Verdict::Renew,
            unauthenticated,
            "grpc-status {first:?}"
        );
        assert!(matches!(grpc, Verdict::Renew | Verdict::Done));
    }
}

/// Scopes are single-spaced and non-empty, claims a JSON object, acr_values non-empty.
fn well_formed(verdict: &Verdict) {
    match verdict {
        Verdict::MoreScope(s) => {
            assert!(!s.is_empty() && !s.starts_with(' ') && !s.ends_with(' '));
            assert!(!s.contains("  ") && !s.contains('\t'), "{s:?}");
        }
        Verdict::Claims(c) => {
            assert!(serde_json::from_str::<serde_json::Value>(c).is_ok_and(|v| v.is_object()));
        }
        Verdict::StepUp { acr_values, .. } => {
            assert!(acr_values.as_deref().is_none_or(|a| !a.trim().is_empty()));
        }
        Verdict::Nonce(n) => assert_eq!(n, SERVER_NONCE),
        Verdict::Done | Verdict::Renew => {}
    }
}

/// The value as `HeaderValue::to_str` reads it: visible ASCII, space and tab only.
fn http_value(v: &[u8]) -> Option<&str> {
    let valid = v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    let visible = v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    (valid && visible)
        .then(|| std::str::from_utf8(v).ok())
        .flatten()
}
