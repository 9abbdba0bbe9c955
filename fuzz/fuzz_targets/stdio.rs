//! The stdio ask/tell protocol: each line of the input is one request to one session
//! (init, ask, tell, close, in any order and shape). Every line gets a JSON reply.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut protocol) = knobs::stdio::Protocol::new("auto", &[]) else { return };
    for line in text.lines().take(64) {
        let (reply, close) = protocol.reply(line);
        assert!(reply.is_object());
        if close {
            break;
        }
    }
});
