//! `Profile::parse` and `Registration::parse` (register and PATCH executor bodies) on JSON
//! from arbitrary bytes: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mess_core::{Profile, Registration};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Profile::parse(&v);
        let _ = Registration::parse(&v);
    }
});
