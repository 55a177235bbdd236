//! The token path: any text as a bearer token verified with a fixed secret. It answers an
//! identity only for a token that secret signed, and never panics.
#![no_main]

use enclave::auth::Auth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let auth = Auth::new(b"fuzz-secret-fuzz-secret-fuzz-secret-0");
    if let Ok(identity) = auth.verify(token) {
        // Accepted: it must have come from this secret, so signing its user again verifies.
        let again = auth
            .issue(&identity.user_id, std::time::Duration::from_secs(60))
            .expect("issue");
        assert!(auth.verify(&again).is_ok());
    }
});
