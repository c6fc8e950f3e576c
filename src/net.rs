//! Process-wide set-up for HTTPS, shared by the LLM client and the
//! downloads.

/// Installs the TLS crypto provider that reqwest's rustls needs (ring,
/// which builds with a C compiler only). Installing twice is harmless (the
/// second call fails, and is ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
