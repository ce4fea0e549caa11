//! Parsers never panic on arbitrary input, and round-trip what they render.

use mcp_oauth_core::callback::{parse_request_head, CallbackError};
use mcp_oauth_core::discovery::{parse_www_authenticate, render_www_authenticate, AuthChallenge};
use mcp_oauth_core::http::Purpose;
use mcp_oauth_core::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_oauth_core::token::TokenResponse;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn challenge() -> impl Strategy<Value = AuthChallenge> {
    (token(), prop::collection::vec((token(), "[ -~]{0,30}"), 0..6)).prop_map(|(scheme, params)| {
        let mut seen = std::collections::HashSet::new();
        let params = params.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).filter(|(n, _)| seen.insert(n.clone())).collect();
        AuthChallenge { scheme: scheme.to_ascii_lowercase(), token68: None, params }
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
    /// The network policy judges an IPv4 address the same whether it arrives as IPv4 or inside
    /// IPv6: mapped, behind the NAT64 prefix, IPv4-compatible, 6to4, or as either end of a
    /// Teredo address (the client obfuscated); `open` blocks nothing; `public` blocks a
    /// superset of `public_or_loopback`.
    #[test]
    fn address_policy_is_consistent(bits in any::<u32>(), other in any::<u32>(), subnet in any::<u16>(), iid in any::<u64>(), flags in any::<u32>()) {
        use mcp_oauth_core::http::address_blocked;
        use mcp_oauth_core::NetworkPolicy::{Open, Public, PublicOrLoopback};
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let v4 = Ipv4Addr::from(bits);
        let (hi, lo) = ((bits >> 16) as u16, bits as u16);
        let v6 = |s: [u16; 8]| IpAddr::V6(Ipv6Addr::from(s));
        let iid4 = [(iid >> 48) as u16, (iid >> 32) as u16, (iid >> 16) as u16, iid as u16];
        // A public Teredo server and client (8.8.8.8; obfuscated: f7f7:f7f7).
        let (pub_hi, pub_lo) = (0x0808, 0x0808);
        let embeddings = [
            IpAddr::V6(v4.to_ipv6_mapped()),
            v6([0x64, 0xff9b, 0, 0, 0, 0, hi, lo]),
            v6([0x2002, hi, lo, subnet, iid4[0], iid4[1], iid4[2], iid4[3]]),
            v6([0x2001, 0, pub_hi, pub_lo, (flags >> 16) as u16, flags as u16, !hi, !lo]),
            v6([0x2001, 0, hi, lo, (flags >> 16) as u16, flags as u16, !pub_hi, !pub_lo]),
        ];
        for policy in [Open, PublicOrLoopback, Public] {
            let direct = address_blocked(IpAddr::V4(v4), policy);
            for e in embeddings {
                prop_assert_eq!(address_blocked(e, policy), direct, "{} for {}", e, v4);
            }
            // IPv4-compatible (::a.b.c.d): the same, except that ::1 is IPv6 loopback and ::
            // unspecified; all of 0.0.0.0/8 is blocked anyway.
            let compat = v6([0, 0, 0, 0, 0, 0, hi, lo]);
            if v4.octets()[0] != 0 {
                prop_assert_eq!(address_blocked(compat, policy), direct, "{}", compat);
            } else if policy != Open && bits != 1 {
                prop_assert!(address_blocked(compat, policy).is_some(), "{}", compat);
            }
        }
        // Teredo between two arbitrary ends: blocked exactly when either end is.
        let teredo = v6([0x2001, 0, hi, lo, 0, 0, !((other >> 16) as u16), !(other as u16)]);
        for policy in [PublicOrLoopback, Public] {
            let either = address_blocked(IpAddr::V4(v4), policy).is_some()
                || address_blocked(IpAddr::V4(Ipv4Addr::from(other)), policy).is_some();
            prop_assert_eq!(address_blocked(teredo, policy).is_some(), either, "{}", teredo);
        }
        prop_assert_eq!(address_blocked(IpAddr::V4(v4), Open), None);
        if address_blocked(IpAddr::V4(v4), PublicOrLoopback).is_some() {
            prop_assert!(address_blocked(IpAddr::V4(v4), Public).is_some());
        }
        if v4.is_private() || v4.is_link_local() || v4.is_documentation() {
            prop_assert!(address_blocked(IpAddr::V4(v4), PublicOrLoopback).is_some());
        }
    }

    /// Any IPv6 address: `open` blocks nothing, `public` blocks a superset of
    /// `public_or_loopback`, and outside global unicast (2000::/3) only IPv4 embeddings and
    /// `::1` can pass.
    #[test]
    fn ipv6_policy_allows_only_global_unicast(bits in any::<u128>(), prefix in 0usize..8) {
        use mcp_oauth_core::http::address_blocked;
        use mcp_oauth_core::NetworkPolicy::{Open, Public, PublicOrLoopback};
        use std::net::{IpAddr, Ipv6Addr};
        // Bias the first bits towards the special ranges, which random bits rarely hit.
        let prefixes: [u128; 8] = [0, 0x64_ff9b_0001 << 80, 0xfec0 << 112, 0x2001 << 112, 0x2002 << 112, 0x0100 << 112, 0x3fff << 112, 0x2001_0db8 << 96];
        let masks: [u32; 8] = [96, 48, 10, 23, 16, 64, 20, 32];
        let (p, m) = (prefixes[prefix], masks[prefix]);
        let addr = if bits & 1 == 0 { bits } else { p | (bits & (u128::MAX >> m)) };
        let ip = IpAddr::V6(Ipv6Addr::from(addr));
        prop_assert_eq!(address_blocked(ip, Open), None);
        if address_blocked(ip, PublicOrLoopback).is_some() {
            prop_assert!(address_blocked(ip, Public).is_some());
        }
        let v6 = Ipv6Addr::from(addr);
        let embeds_v4 = addr >> 32 == 0 || v6.to_ipv4_mapped().is_some() || addr >> 32 == 0x64_ff9b_0000_0000_0000_0000;
        if addr >> 125 != 1 && !embeds_v4 {
            prop_assert!(address_blocked(ip, Public).is_some(), "{}", ip);
        }
        // Local-use NAT64, site-local, discard-only and documentation ranges never pass.
        for (p, m) in [(0x64_ff9b_0001u128 << 80, 48), (0xfec0 << 112, 10), (0x0100 << 112, 64), (0x3fff << 112, 20), (0x2001_0db8 << 96, 32)] {
            if addr >> (128 - m) == p >> (128 - m) {
                prop_assert!(address_blocked(ip, PublicOrLoopback).is_some(), "{}", ip);
            }
        }
    }
}
