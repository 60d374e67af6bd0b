//! `Event::from_line` (replay reads every stored line with it) on arbitrary bytes: never a
//! panic, and an event it accepts survives `to_line` and back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mess_core::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = Event::from_line(line) {
        let again = event.to_line();
        let back = Event::from_line(&again).expect("a written line reads back");
        assert_eq!(back.to_line(), again);
    }
});
