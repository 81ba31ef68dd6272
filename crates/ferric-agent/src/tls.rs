//! Automatic TLS for the command API, as IPA does it when Ironic's API is
//! 1.68 or newer: a self-signed certificate made at start-up for the
//! advertised IP address (EC key, the IP as a critical subjectAltName,
//! valid from an hour ago for 90 days), sent to Ironic as `agent_verify_ca`.

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A generated certificate and the server configuration serving it.
pub struct AutoTls {
    /// The certificate in PEM, for `agent_verify_ca`.
    pub cert_pem: String,
    /// rustls configuration for the listener.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot generate the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// Makes the certificate for the advertised `host` (an IP address, or a
/// DNS name; common name: `hostname`) and a server config; `tls13_only`
/// follows lookup's `tls_min_version` of `1.3`.
pub fn generate(host: &str, hostname: &str, tls13_only: bool) -> Result<AutoTls, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        if hostname.is_empty() {
            "ferric-agent"
        } else {
            hostname
        },
    );
    params.distinguished_name = name;
    let san = match host.trim_matches(['[', ']']).parse() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(host.try_into()?),
    };
    params.subject_alt_names = vec![san];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(90);
    let cert = params.self_signed(&key)?;
    let cert_der = CertificateDer::from(cert.der().to_vec());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)?;
    Ok(AutoTls {
        cert_pem: cert.pem(),
        server_config: Arc::new(server_config),
    })
}
