//! TLS for SSL and SASL_SSL listeners: the rustls server configuration from PEM files, and
//! a client certificate's principal as Kafka names it.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate is asked for; a client without one is let in as `User:ANONYMOUS`.
    Requested,
    /// A client without a certificate trusted by `--ssl-ca` is refused in the handshake.
    Required,
}

/// What a TLS listener needs.
pub struct TlsSettings<'a> {
    pub certificate: &'a Path,
    pub key: &'a Path,
    pub client_auth: ClientAuth,
    pub ca: Option<&'a Path>,
}

/// Builds the server configuration: TLS 1.2 and 1.3, the certificate chain and key from
/// PEM, and client certificates checked against the CA file when asked for.
pub fn server_config(s: &TlsSettings<'_>) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(s.certificate)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--ssl-certificate {}: {e}", s.certificate.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--ssl-certificate {}: no certificate in the file",
            s.certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(s.key).map_err(|e| {
        format!(
            "--ssl-key {}: {e} (an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key)",
            s.key.display()
        )
    })?;
    // ring rather than aws-lc-rs keeps the cold build short (no second large C library);
    // rustls deprecates it only for lacking post-quantum key exchange, which Kafka's JVM
    // clients do not offer either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let ca = s
                .ca
                .ok_or("--ssl-client-auth requested or required needs --ssl-ca (the CA that signs client certificates)")?;
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?,
            )
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("--ssl-certificate/--ssl-key: {e}"))?;
    Ok(Arc::new(config))
}

/// The client side, for brokers dialing each other on an SSL or SASL_SSL inter-broker
/// listener: the other brokers' certificates are checked against `ca` (and their names
/// against the advertised host, as Kafka's `ssl.endpoint.identification.algorithm=https`
/// does); this broker's own certificate and key go along for listeners that ask for one.
pub fn client_config(
    ca: &Path,
    certificate: &Path,
    key: &Path,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?
    {
        let c = c.map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--ssl-certificate {}: {e}", certificate.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--ssl-key {}: {e}", key.display()))?;
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("--ssl-certificate/--ssl-key: {e}"))?;
    Ok(Arc::new(config))
}

/// The principal of this broker's own certificate (the first in `--ssl-certificate`), as
/// another broker names it when it asks for client certificates.
pub fn own_principal(certificate: &Path) -> Option<String> {
    let first = CertificateDer::pem_file_iter(certificate)
        .ok()?
        .next()?
        .ok()?;
    certificate_principal(first.as_ref())
}

/// The principal of a client certificate: `User:` and its subject as Java's
/// `X500Principal.getName()` writes it (RFC 2253: the last RDN first, `CN=a,OU=b,O=c`),
/// which is what Kafka's default `ssl.principal.mapping.rules` yields.
pub fn certificate_principal(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns: Vec<_> = cert.subject().iter().collect();
    rdns.reverse();
    let rdns: Vec<String> = rdns
        .into_iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let value = atv.as_str().ok().map(rfc2253_escape);
                    match (short_name(&oid), value) {
                        (Some(name), Some(v)) => format!("{name}={v}"),
                        // Java writes other attributes as OID=#hex of the DER value.
                        (_, _) => format!("{oid}=#{}", hex(atv.attr_value().as_bytes())),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(format!("User:{}", rdns.join(",")))
}

/// The keywords `X500Principal.getName(RFC2253)` uses.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn rfc2253_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2253_escapes_what_java_escapes() {
        assert_eq!(rfc2253_escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(rfc2253_escape("#x "), "\\#x\\ ");
        assert_eq!(rfc2253_escape("plain"), "plain");
    }
}
