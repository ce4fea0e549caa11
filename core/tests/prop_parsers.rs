//! Parsers never panic on arbitrary input, and round-trip what they render.

use mcp_oauth_core::callback::{parse_request_head, CallbackError};
use mcp_oauth_core::discovery::{parse_www_authenticate, render_www_authenticate, Challenge};
use mcp_oauth_core::http::Purpose;
use mcp_oauth_core::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_oauth_core::token::TokenResponse;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn challenge() -> impl Strategy<Value = Challenge> {
    (token(), prop::collection::vec((token(), "[ -~]{0,30}"), 0..6)).prop_map(|(scheme, params)| {
        let mut seen = std::collections::HashSet::new();
        let params = params.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).filter(|(n, _)| seen.insert(n.clone())).collect();
        Challenge { scheme: scheme.to_ascii_lowercase(), token68: None, params }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn www_authenticate_never_panics(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4)) {
        let _ = parse_www_authenticate(lines.iter().map(|l| l.as_slice()));
    }

    #[test]
    fn www_authenticate_round_trips(cs in prop::collection::vec(challenge(), 1..4)) {
        let rendered = render_www_authenticate(&cs);
        let parsed = parse_www_authenticate([rendered.as_bytes()]).unwrap();
        prop_assert_eq!(parsed, cs);
    }

    #[test]
    fn callback_head_whole_equals_byte_by_byte(path in "/[a-z]{0,10}(\\?[a-z0-9=&]{0,40})?", extra in "[A-Za-z-]{1,10}: [ -~]{0,20}") {
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n\r\n").into_bytes();
        let whole = parse_request_head(&head);
        let mut last = Err(CallbackError::Incomplete);
        for i in 1..=head.len() {
            last = parse_request_head(&head[..i]);
            if i < head.len() {
                prop_assert_eq!(&last, &Err(CallbackError::Incomplete));
            }
        }
        prop_assert_eq!(last, whole.clone());
        prop_assert_eq!(whole.unwrap().target, path);
    }

    #[test]
    fn callback_head_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = parse_request_head(&bytes);
    }

    #[test]
    fn metadata_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..500), s in "\\{[ -~]{0,200}\\}") {
        let _ = ProtectedResourceMetadata::from_json(&bytes);
        let _ = ProtectedResourceMetadata::from_json(s.as_bytes());
        let _ = AuthorizationServerMetadata::from_json(&bytes, "https://a.example", false);
        let _ = AuthorizationServerMetadata::from_json(s.as_bytes(), "https://a.example", true);
    }

    #[test]
    fn token_response_never_panics(body in "\\{[ -~]{0,200}\\}", status in prop::sample::select(vec![200u16, 201, 400, 401, 500])) {
        let resp = http::Response::builder().status(status).body(body.into_bytes()).unwrap();
        let _ = TokenResponse::from_http(&resp, Purpose::CodeExchange);
    }

    #[test]
    fn token_response_accepts_any_numeric_expiry(exp in any::<u64>(), as_string in any::<bool>()) {
        let e = if as_string { format!("\"{exp}\"") } else { exp.to_string() };
        let body = format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{e}}}"#);
        let resp = http::Response::builder().status(200).body(body.into_bytes()).unwrap();
        prop_assert_eq!(TokenResponse::from_http(&resp, Purpose::Refresh).unwrap().expires_in, Some(exp));
    }

    #[test]
    fn redirect_parsing_never_panics(s in "[ -~]{0,300}") {
        let redirect = url::Url::parse("http://127.0.0.1:8976/callback").unwrap();
        let _ = mcp_oauth_core::authorize::parse_redirect(&s, &redirect);
        let _ = mcp_oauth_core::authorize::parse_redirect(&format!("http://127.0.0.1:8976/callback?{s}"), &redirect);
    }
}

proptest! {
    /// The network policy judges an IPv4 address the same whether it arrives as IPv4, mapped
    /// into IPv6, or behind the NAT64 prefix; `open` blocks nothing; `public` blocks a superset
    /// of `public_or_loopback`.
    #[test]
    fn address_policy_is_consistent(bits in any::<u32>()) {
        use mcp_oauth_core::http::address_blocked;
        use mcp_oauth_core::NetworkPolicy::{Open, Public, PublicOrLoopback};
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let v4 = Ipv4Addr::from(bits);
        let mapped = v4.to_ipv6_mapped();
        let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, (bits >> 16) as u16, bits as u16);
        for policy in [Open, PublicOrLoopback, Public] {
            let direct = address_blocked(IpAddr::V4(v4), policy);
            prop_assert_eq!(address_blocked(IpAddr::V6(mapped), policy), direct);
            prop_assert_eq!(address_blocked(IpAddr::V6(nat64), policy), direct);
        }
        prop_assert_eq!(address_blocked(IpAddr::V4(v4), Open), None);
        if address_blocked(IpAddr::V4(v4), PublicOrLoopback).is_some() {
            prop_assert!(address_blocked(IpAddr::V4(v4), Public).is_some());
        }
        if v4.is_private() || v4.is_link_local() {
            prop_assert!(address_blocked(IpAddr::V4(v4), PublicOrLoopback).is_some());
        }
    }
}
