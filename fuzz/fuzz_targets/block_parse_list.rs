//! `Block::parse_list` (the `mess` list of a PATCH) on JSON from arbitrary bytes: never a
//! panic, and an accepted block's body reads back as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mess_core::Block;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(blocks) = Block::parse_list(&v) {
            for b in &blocks {
                let _ = b.kind();
                assert!(serde_json::from_str::<serde_json::Value>(b.raw_body()).is_ok());
                let _ = b.status_code();
            }
            let _ = mess_core::mess::data_uris(&blocks);
        }
    }
});
