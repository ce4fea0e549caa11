#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth_core::fuzzing::authorizer(data));
