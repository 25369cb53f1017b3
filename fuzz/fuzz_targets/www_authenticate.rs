//! `WWW-Authenticate` challenges on a response: whether the layer and the middleware renew the
//! token and resend the request.
//!
//! Invariants: no panic; only a 401 ever renews; a 401 without challenges renews; a 401 with a
//! plain `Bearer` challenge renews, whatever else it carries; a 401 whose readable challenges
//! never name the bearer scheme does not renew; a `Basic` challenge added beside readable ones
//! changes nothing.
#![no_main]

#[path = "common.rs"]
mod common;

use common::fields;
use libfuzzer_sys::fuzz_target;
use oauth_layer::fuzzing::calls_for_renewal;

fuzz_target!(|data: &[u8]| {
    // Up to eight header values.
    let values: Vec<&[u8]> = fields(data, 8)
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect();
    // What an HTTP stack delivers: valid header values; the crate reads only the visible ones.
    let delivered: Vec<&[u8]> = values
        .iter()
        .copied()
        .filter(|v| http_value(v).is_some())
        .collect();
    let readable: Vec<&str> = delivered.iter().filter_map(|v| http_value(v)).collect();

    let renews = calls_for_renewal(401, &values);
    for status in [200, 400, 403, 407, 500] {
        assert!(!calls_for_renewal(status, &values), "a {status} renewed");
    }
    if delivered.is_empty() {
        assert!(renews, "a 401 without challenges must renew");
    }
    let mut with_bearer = values.clone();
    with_bearer.push(b"Bearer");
    assert!(
        calls_for_renewal(401, &with_bearer),
        "a bare Bearer challenge must renew"
    );
    let mut with_bearer_first = vec![b"Bearer realm=\"x\"".as_slice()];
    with_bearer_first.extend(values.iter().copied());
    assert!(calls_for_renewal(401, &with_bearer_first));

    if !readable.is_empty()
        && readable
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("bearer"))
    {
        assert!(
            !renews,
            "renewed on challenges that never name Bearer: {readable:?}"
        );
    }
    if !readable.is_empty() {
        let mut with_basic = values.clone();
        with_basic.push(b"Basic realm=\"other\"");
        assert_eq!(calls_for_renewal(401, &with_basic), renews, "{readable:?}");
    }
});

/// The value as `HeaderValue::to_str` reads it: visible ASCII, space and tab only.
fn http_value(v: &[u8]) -> Option<&str> {
    let valid = v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    let visible = v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    (valid && visible)
        .then(|| std::str::from_utf8(v).ok())
        .flatten()
}
