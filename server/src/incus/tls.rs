//! TLS for HTTPS remotes: our client certificate, and the server's certificate pinned (Incus
//! servers use self-signed certificates, so the pin is the trust).
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::error::{IncusError, Result};

#[derive(Debug, Clone)]
pub struct RemoteTls {
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// The server certificate to accept (PEM). Required: no unpinned remotes.
    pub server_cert_pem: String,
}

impl RemoteTls {
    pub fn client_config(&self) -> Result<ClientConfig> {
        let tls = |m: &str, e: &dyn std::fmt::Display| IncusError::Tls(format!("{m}: {e}"));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.client_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls("client certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes()).map_err(|e| tls("client key", &e))?;
        let server = CertificateDer::from_pem_slice(self.server_cert_pem.as_bytes())
            .map_err(|e| tls("server certificate", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Verifier { check: Check::Pinned(server.into_owned()), provider: provider.clone() });
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls("protocol versions", &e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls("client certificate", &e))
    }
}

#[derive(Debug)]
enum Check {
    /// Accept exactly this certificate.
    Pinned(CertificateDer<'static>),
    /// Accept anything and keep it, for the caller to check (trust-token fingerprint).
    Capture(Arc<std::sync::Mutex<Option<Vec<u8>>>>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Pinned(cert) if end_entity.as_ref() == cert.as_ref() => Ok(ServerCertVerified::assertion()),
            Check::Pinned(_) => {
                Err(rustls::Error::General("the Incus server's certificate does not match the pinned one".into()))
            }
            Check::Capture(seen) => {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.as_ref().to_vec());
                Ok(ServerCertVerified::assertion())
            }
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A new self-signed client certificate and key (PEM) for a remote.
pub fn generate_client_certificate(common_name: &str) -> Result<(String, String)> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| IncusError::Tls(e.to_string()))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| IncusError::Tls(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| IncusError::Tls(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The certificate a server presents, read during a handshake that accepts any certificate — the
/// caller must check it (against a trust token's fingerprint) before trusting it.
pub async fn fetch_server_certificate(host: &str, port: u16) -> Result<Vec<u8>> {
    let tls = |m: &str, e: &dyn std::fmt::Display| IncusError::Tls(format!("{m}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(std::sync::Mutex::new(None));
    let verifier = Arc::new(Verifier { check: Check::Capture(seen.clone()), provider: provider.clone() });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocol versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let url = format!("https://{host}:{port}");
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| IncusError::Tls(format!("cannot connect to {url}: {e}")))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| tls("server name", &e))?;
    // The handshake may fail after the certificate was seen (the server wants a client cert).
    let _ = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await;
    let der = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    der.ok_or_else(|| IncusError::Tls(format!("{url} presented no TLS certificate — is it an Incus server?")))
}
