//! The tier's own certificate authority, so that nodes can speak mutual TLS without anything
//! bought or installed: one CA per tier ([`Ca::generate`]) and one certificate per node
//! ([`Ca::issue`]), which serves both ends of a connection between nodes (server and client
//! authentication). A certificate of another tier's CA is of no use here, which is the point.
//!
//! PEM in, PEM out, no I/O: where the files live and who may read them is the caller's business
//! ([`Layout`] says where keel keeps them).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// How long a CA is valid.
pub const CA_VALIDITY: Duration = Duration::days(10 * 365);
/// How long a node certificate is valid (`keel certs rotate` renews them all).
pub const NODE_VALIDITY: Duration = Duration::days(825);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The tier's certificate authority.
pub struct Ca {
    issued: Issued,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA for the tier named `tier` (its subject names it, so an operator can tell two
    /// tiers' CAs apart), valid for [`CA_VALIDITY`] from now.
    pub fn generate(tier: &str) -> Result<Ca, CertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "keel");
        dn.push(DnType::CommonName, format!("keel CA of tier {tier}"));
        params.distinguished_name = dn;
        // Only node certificates below it.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + CA_VALIDITY;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            issuer: Issuer::new(params, key),
            issued,
        })
    }

    /// The CA of an earlier [`Ca::generate`], from its two PEM files.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        let invalid = |what: &str, e: rcgen::Error| CertError::Invalid {
            what: what.into(),
            why: e.to_string(),
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| invalid("the CA's key", e))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| invalid("the CA's certificate", e))?;
        Ok(Ca {
            issued: Issued {
                cert_pem: cert_pem.into(),
                key_pem: key_pem.into(),
            },
            issuer,
        })
    }

    /// The CA's certificate and key.
    pub fn pem(&self) -> &Issued {
        &self.issued
    }

    /// A certificate for node `node`, with a new key, valid for [`NODE_VALIDITY`]: for the
    /// node's `addresses` (IP addresses or host names, what peers dial) and its name, as server
    /// and as client.
    pub fn issue(&self, node: &str, addresses: &[&str]) -> Result<Issued, CertError> {
        let mut names: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
        if !names.iter().any(|n| n == node) && is_dns_name(node) {
            names.push(node.to_owned());
        }
        let mut params = CertificateParams::new(names)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "keel");
        dn.push(DnType::CommonName, node);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + NODE_VALIDITY;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A name a certificate can carry as a DNS name (letters, digits, `-`, `.`).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Where keel keeps a tier's certificates: `secrets/tls/` beside the cluster description.
/// `ca.key` is needed only where certificates are issued; every host needs `ca.crt` and its
/// own `NODE.crt` and `NODE.key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// The layout of the description in folder `base`.
    pub fn of(base: &Path) -> Layout {
        Layout {
            dir: base.join("secrets").join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn node_cert(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.crt"))
    }
    pub fn node_key(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.key"))
    }
}

#[cfg(test)]
mod tests;
