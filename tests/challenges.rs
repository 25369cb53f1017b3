#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `WWW-Authenticate` parser through the public `challenge` module, the way a hostile server
//! would feed it: arbitrary text never panics and stays within the documented bounds, rendered
//! challenges read back to the same parameters, and huge or endless inputs are cut short in
//! linear time.

use std::time::{Duration, Instant};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue};
use oauth_layer::challenge::{
    Challenge, Challenges, MAX_CHALLENGES, MAX_HEADER_BYTES, MAX_PARAMS, MAX_VALUE_LEN,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn headers<V: AsRef<[u8]>>(values: &[V]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v.as_ref()) {
            h.append(WWW_AUTHENTICATE, v);
        }
    }
    h
}

/// Every bound the module documents, and that nothing read is longer than what was sent.
fn assert_bounded(challenges: &Challenges, input_len: usize) {
    assert!(challenges.len() <= MAX_CHALLENGES);
    let mut kept = 0;
    for c in challenges.iter() {
        assert!(!c.scheme().is_empty());
        kept += c.scheme().len();
        let params: Vec<_> = c.params().collect();
        assert!(params.len() <= MAX_PARAMS);
        for (i, (name, value)) in params.iter().enumerate() {
            assert!(!name.is_empty() && *name == name.to_ascii_lowercase());
            assert!(value.len() <= MAX_VALUE_LEN);
            assert!(
                params[..i].iter().all(|(n, _)| n != name),
                "duplicate {name}"
            );
            assert_eq!(c.param(&name.to_ascii_uppercase()), Some(*value));
            kept += name.len() + value.len();
        }
        if let Some(t) = c.token68() {
            assert!(t.len() <= MAX_VALUE_LEN);
            kept += t.len();
        }
        // The typed accessors are total.
        let _ = (
            c.error(),
            c.scope(),
            c.acr_values(),
            c.max_age(),
            c.claims(),
        );
        let _ = (c.resource_metadata(), c.algs().count(), c.scopes().count());
    }
    assert!(kept <= input_len, "read {kept} bytes out of {input_len}");
}

#[test]
fn arbitrary_text_never_panics_and_stays_bounded() {
    let grammar = prop::collection::vec(
        prop::sample::select(vec![
            "Bearer",
            "DPoP",
            "Basic",
            "error",
            "=",
            "==",
            ",",
            " ",
            "\t",
            "\"",
            "\\",
            "realm",
            "scope",
            "claims",
            "a",
            "é",
            "\u{1f600}",
            "\u{0}",
            "\r\n",
        ]),
        0..200,
    )
    .prop_map(|parts| parts.concat());
    runner(256)
        .run(&grammar, |text| {
            let c = Challenges::from_value(&text);
            assert_bounded(&c, text.len());
            Ok(())
        })
        .unwrap();
    runner(256)
        .run(&".{0,400}", |text| {
            assert_bounded(&Challenges::from_value(&text), text.len());
            Ok(())
        })
        .unwrap();
    let fields = prop::collection::vec(prop::collection::vec(1u8..=255, 0..300), 0..6);
    runner(256)
        .run(&fields, |fields| {
            let h = headers(&fields);
            let total = h.get_all(WWW_AUTHENTICATE).iter().map(|v| v.len()).sum();
            assert_bounded(&Challenges::from_headers(&h), total);
            Ok(())
        })
        .unwrap();
}

/// A token (RFC 9110 §5.6.2) for schemes and parameter names.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,12}"
}

fn challenge() -> impl Strategy<Value = Challenge> {
    (
        token(),
        prop::option::of("[A-Za-z0-9._~+/-]{1,20}={0,2}"),
        // Values of any visible ASCII, quotes, backslashes, commas and spaces included.
        prop::collection::vec((token(), "[ -~\t]{0,40}"), 0..6),
    )
        .prop_map(|(scheme, token68, params)| {
            let mut c = Challenge::new(scheme);
            if let Some(t) = token68 {
                c = c.with_token68(t);
            }
            for (name, value) in params {
                c = c.with_param(name, value);
            }
            c
        })
}

#[test]
fn rendered_challenges_read_back_the_same() {
    let many = prop::collection::vec(challenge(), 1..6);
    runner(256)
        .run(&many, |list| {
            let rendered: Vec<String> = list.iter().map(ToString::to_string).collect();
            // One field each, and all in one field.
            let apart = Challenges::from_headers(&headers(&rendered)).into_vec();
            prop_assert_eq!(&apart, &list, "{:?}", rendered);
            let together = Challenges::from_value(&rendered.join(", ")).into_vec();
            prop_assert_eq!(&together, &list);
            for c in &list {
                for (name, value) in c.params() {
                    prop_assert_eq!(c.param(name), Some(value));
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn first_parameter_wins_and_names_ignore_case() {
    let c = Challenges::from_value(r#"Bearer Error="first", ERROR="second", error=third"#);
    assert_eq!(c[0].error(), Some("first"));
    assert_eq!(c[0].params().count(), 1);
}

/// Parses `value` (one field) and `fields` under a deadline a quadratic parser would miss.
fn quickly(what: &str, run: impl FnOnce() -> Challenges) -> Challenges {
    let started = Instant::now();
    let c = run();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "{what} took {took:?}");
    c
}

#[test]
fn hostile_headers_are_cut_short_in_linear_time() {
    // A 64 KiB field is not read at all, nor are the fields after it.
    let huge = format!("Bearer error=\"{}\"", "x".repeat(64 * 1024));
    let c = quickly("64 KiB", || {
        Challenges::from_headers(&headers(&["Basic", &huge, "Bearer"]))
    });
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].scheme(), "Basic");

    // Ten thousand commas between two parameters.
    let commas = format!("Bearer realm=x{}error=invalid_token", ",".repeat(10_000));
    let c = quickly("commas", || Challenges::from_headers(&headers(&[&commas])));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].error(), Some("invalid_token"));

    // A thousand challenges: the first ones are kept.
    let thousand = (0..1000)
        .map(|i| format!("S{i} p=v"))
        .collect::<Vec<_>>()
        .join(", ");
    let c = quickly("1000 challenges", || {
        Challenges::from_headers(&headers(&[&thousand]))
    });
    assert_eq!(c.len(), MAX_CHALLENGES);
    assert_eq!(
        c[MAX_CHALLENGES - 1].scheme(),
        format!("S{}", MAX_CHALLENGES - 1)
    );

    // A thousand fields of one challenge each, within the byte budget only.
    let fields: Vec<String> = (0..1000).map(|i| format!("Bearer realm=r{i}")).collect();
    let c = quickly("1000 fields", || {
        Challenges::from_headers(&headers(&fields))
    });
    assert_eq!(c.len(), MAX_CHALLENGES);

    // Unterminated quotes, escapes at the end, nothing but escapes.
    for s in [
        r#"Bearer error="invalid_token"#,
        r#"Bearer error="\"#,
        &format!(r#"Bearer realm="{}"#, "\\\"".repeat(4000)),
        &"\"".repeat(MAX_HEADER_BYTES),
        &"=".repeat(MAX_HEADER_BYTES),
        &"a=".repeat(MAX_HEADER_BYTES / 2),
        &"a ".repeat(MAX_HEADER_BYTES / 2),
        &"a,".repeat(MAX_HEADER_BYTES / 2),
        &"Bearer a=\"b\\".repeat(MAX_HEADER_BYTES / 12),
    ] {
        let c = quickly(&s[..s.len().min(20)], || Challenges::from_value(s));
        assert_bounded(&c, s.len());
    }
    let c = Challenges::from_value(r#"Bearer error="invalid_token"#);
    assert_eq!(c[0].error(), Some("invalid_token"));

    // Non-ASCII: through a header it is not readable (skipped); as text it is skipped byte by
    // byte, and inside a quoted string it is kept.
    let mut h = headers(&["Basic"]);
    h.append(
        WWW_AUTHENTICATE,
        HeaderValue::from_bytes("Bearer realm=\"é\"".as_bytes()).unwrap(),
    );
    assert_eq!(Challenges::from_headers(&h).len(), 1);
    let c = Challenges::from_value("ü Bearer realm=\"é\u{1f600}\"");
    assert_eq!(c[0].scheme(), "Bearer");
    assert_eq!(c[0].realm(), Some("é\u{1f600}"));

    // Binary without NUL (what a header may carry) and with it (text only).
    let binary: Vec<u8> = (1..=255u8).cycle().take(8 * 1024).collect();
    let c = quickly("binary", || Challenges::from_headers(&headers(&[&binary])));
    assert_bounded(&c, binary.len());
    let text = String::from_utf8_lossy(&binary).replace('\u{1}', "\u{0}");
    let c = quickly("binary text", || Challenges::from_value(&text));
    assert_bounded(&c, text.len());
}

#[test]
fn over_long_values_are_dropped_not_cut() {
    let long = "s".repeat(MAX_VALUE_LEN + 1);
    let c = Challenges::from_value(&format!(
        r#"Bearer error="insufficient_scope", scope="{long}", realm=r"#
    ));
    assert_eq!(c[0].scope(), None);
    assert_eq!(c[0].error(), Some("insufficient_scope"));
    assert_eq!(c[0].realm(), Some("r"));
    let fits = "s".repeat(MAX_VALUE_LEN);
    let c = Challenges::from_value(&format!(r#"Bearer scope="{fits}""#));
    assert_eq!(c[0].scope(), Some(fits.as_str()));
}
