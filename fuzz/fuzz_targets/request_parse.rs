//! `NewRequest::parse` (the body of `POST .../requests`) on JSON from arbitrary bytes: it
//! must return `Ok` or `Err`, never panic, whatever the shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mess_core::NewRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(req) = NewRequest::parse(v) {
            // What was accepted can be parsed again from its own serialisation.
            let _ = serde_json::to_string(&req.intent);
        }
    }
});
