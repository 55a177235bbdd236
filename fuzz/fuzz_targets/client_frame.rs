//! The client-frame parser (`ClientFrame::parse`), fed any text a socket may carry: it answers
//! a frame or a `FrameError`, never panics, and a frame it accepts obeys the protocol's limits.
#![no_main]

use enclave::protocol::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientFrame::UserMessage(message)) = ClientFrame::parse(text, 64) {
        assert!(message.content.chars().count() <= 64);
        assert!(!message.content.contains('\0'));
    }
});
