//! A request frame (the bytes after the 4-byte length), as the broker's connection hands it
//! to dispatch: framing and header, then the body's decoder for the key and version. Any
//! panic (libfuzzer-sys aborts on one), or an allocation past libFuzzer's -malloc_limit_mb,
//! is a finding: whatever the bytes, the broker must answer an error or close.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use klamm_fuzz::wire::{parse_request, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Parsed::Request(r) = parse_request(Bytes::copy_from_slice(data)) {
        let mut body = r.body;
        let _ = RequestKind::decode(r.key, &mut body, r.version);
    }
});
