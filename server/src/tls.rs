//! One rustls crypto provider (ring) for the whole binary: octocrab and jsonrpsee bring ring too,
//! so aws-lc-rs stays out of the binary.
use std::sync::Once;

pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
