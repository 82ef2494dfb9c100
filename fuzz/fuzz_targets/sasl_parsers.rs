//! What an unauthenticated client can send a SASL listener: PLAIN messages, SCRAM's two
//! client messages (the second against a real exchange, so mutations reach the proof
//! check) and OAUTHBEARER initial responses. None may panic or allocate what the input
//! says.
#![no_main]

use klamm_fuzz::scram::{parse_client_first, ScramCredential, ScramMechanism, ScramServer};
use klamm_fuzz::{oauthbearer, plain};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Derived once: PBKDF2 per input would make the target crawl.
fn credential() -> &'static ScramCredential {
    static C: OnceLock<ScramCredential> = OnceLock::new();
    C.get_or_init(|| ScramCredential::new(ScramMechanism::Sha256, b"pw", 4096))
}

fuzz_target!(|data: &[u8]| {
    let _ = plain::parse(data);
    let _ = oauthbearer::validate(data, 1_700_000_000_000);
    // The input as a client-first-message, and split at its first newline into a first
    // and a final message.
    let (first, last) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"c=biws,r=x,p=AAAA"[..]),
    };
    if let Ok(f) = parse_client_first(first) {
        let (server, answer) =
            ScramServer::start(ScramMechanism::Sha256, f, Some(credential().clone()));
        assert!(answer.len() < 8192);
        let _ = server.finish(last);
    }
});
