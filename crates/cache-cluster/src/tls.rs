//! Mutual TLS on the peer port ([`PeerTls`]): with it, every connection between nodes, made or
//! accepted, is TLS 1.3 (rustls, the `ring` provider), and **both** ends must present a
//! certificate that chains to the tier's CA: a node verifies the node it dials against the CA
//! and the host part of the peer address it dialled (an IP address or a DNS name among the
//! certificate's names, as `keel certs` issues them), and an accepting node refuses a client
//! without a certificate of that CA. A connection that fails the handshake gets no session:
//! nothing it sent is ever decoded as a frame.
//!
//! Without [`PeerTls`] the transport is plaintext, as before (tests, a lone `keel cache`).
//!
//! Reads the three PEM files once, at startup; errors name the file at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// How long an accepted connection may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS settings could not be loaded. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM certificate: {why}", path.display())]
    BadCertificate { path: PathBuf, why: String },
    #[error("{}: no usable PEM private key in it: {why}", path.display())]
    BadKey { path: PathBuf, why: String },
    #[error("{what}: {why}")]
    Config { what: String, why: String },
}

/// The three files of a node's mutual TLS: the tier's CA certificate, the node's certificate
/// (issued by that CA; a chain may follow it) and the node's private key, all PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A node's TLS settings for both ends of a peer connection.
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// Refused handshakes, for the rate-limited warning.
    refused: RateLimited,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

impl PeerTls {
    /// Load the three files (see [`TlsFiles`]).
    pub fn from_files(files: &TlsFiles) -> Result<PeerTls, TlsError> {
        let ca = read(&files.ca)?;
        let cert = read(&files.cert)?;
        let key = read(&files.key)?;
        Self::build(files, &ca, &cert, &key)
    }

    /// From PEM text (tests; errors name the parts instead of files).
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<PeerTls, TlsError> {
        let names = TlsFiles {
            ca: "the CA certificate".into(),
            cert: "the node certificate".into(),
            key: "the node key".into(),
        };
        Self::build(&names, ca_pem, cert_pem, key_pem)
    }

    fn build(
        files: &TlsFiles,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<PeerTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in certs(&files.ca, ca_pem)? {
            roots.add(c).map_err(|e| TlsError::BadCertificate {
                path: files.ca.clone(),
                why: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let chain = certs(&files.cert, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
            path: files.key.clone(),
            why: e.to_string(),
        })?;
        // ring, as rcgen uses (tier-certs): no second crypto library to build. rustls 0.23.48
        // deprecated it for lacking post-quantum key exchange (aws-lc-rs has it); classical
        // X25519/P-256 is what this link needs today (an attacker recording now to decrypt
        // later would get cache replication traffic).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config_err = |what: &str| {
            let what = what.to_owned();
            move |e: rustls::Error| TlsError::Config {
                what,
                why: e.to_string(),
            }
        };
        let both = format!("{} with {}", files.cert.display(), files.key.display());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config {
                what: files.ca.display().to_string(),
                why: e.to_string(),
            })?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err("TLS 1.3"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config_err(&both))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err("TLS 1.3"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config_err(&both))?;
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            refused: RateLimited::new(Duration::from_secs(10)),
        })
    }

    /// The client end: a handshake with the node at `addr` (`HOST:PORT`, as in the peer list),
    /// whose certificate must name `HOST`.
    pub async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> std::io::Result<client::TlsStream<TcpStream>> {
        let name = server_name(addr)?;
        self.connector.connect(name, stream).await
    }

    /// The server end: a handshake with a connecting node, within [`HANDSHAKE_TIMEOUT`]. A
    /// refused or failed handshake is logged (a warning at most every 10 s, with how many were
    /// refused meanwhile) and returns `None`.
    pub async fn accept(
        &self,
        stream: TcpStream,
        from: Option<SocketAddr>,
    ) -> Option<server::TlsStream<TcpStream>> {
        let err = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await
        {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "handshake timed out".to_owned(),
        };
        let from = from.map_or_else(|| "?".to_owned(), |a| a.to_string());
        if let Some(more) = self.refused.check() {
            tracing::warn!(
                from = %from,
                error = %err,
                refused_since_last_warning = more,
                "cluster peer port: refused a connection without a valid certificate of the tier's CA"
            );
        } else {
            tracing::debug!(from = %from, error = %err, "cluster peer port: refused a TLS handshake");
        }
        None
    }
}

/// The name a peer's certificate must carry: the host part of `HOST:PORT` (`[v6]:PORT` too).
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: not a host name or IP address for TLS: {e}"),
        )
    })
}

/// At most one "yes" per `every`; counts the "no"s in between.
struct RateLimited {
    start: Instant,
    every: Duration,
    /// Milliseconds after `start` of the last "yes", plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    fn new(every: Duration) -> RateLimited {
        RateLimited {
            start: Instant::now(),
            every,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events suppressed since the last yes)` when it is time to say something again.
    fn check(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.every.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_the_host_part() {
        assert_eq!(
            server_name("127.0.0.1:7101").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name("[::1]:7101").unwrap(),
            ServerName::IpAddress("::1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name("db1.example:7101").unwrap(),
            ServerName::try_from("db1.example").unwrap()
        );
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let r = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r = RateLimited::new(Duration::ZERO);
        assert_eq!(r.check(), Some(0));
        assert!(r.check().is_some());
    }

    #[test]
    fn errors_name_the_file() {
        let d = std::env::temp_dir().join(format!("cache-cluster-tls-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ca = tier_certs::Ca::generate("t").unwrap();
        let node = ca.issue("n1", &["127.0.0.1"]).unwrap();
        let files = TlsFiles {
            ca: d.join("ca.crt"),
            cert: d.join("n1.crt"),
            key: d.join("n1.key"),
        };
        std::fs::write(&files.ca, &ca.pem().cert_pem).unwrap();
        std::fs::write(&files.cert, &node.cert_pem).unwrap();
        std::fs::write(&files.key, &node.key_pem).unwrap();
        PeerTls::from_files(&files).unwrap();
        let e = PeerTls::from_files(&TlsFiles {
            key: d.join("missing.key"),
            ..files.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing.key"), "{e}");
        // A key where the certificate should be, and the other way round.
        let e = PeerTls::from_files(&TlsFiles {
            cert: files.key.clone(),
            ..files.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("n1.key: no PEM certificate"), "{e}");
        let e = PeerTls::from_files(&TlsFiles {
            key: files.cert.clone(),
            ..files.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("n1.crt: no usable PEM private key"), "{e}");
        // Another node's key does not go with this certificate.
        let other = ca.issue("n2", &["127.0.0.1"]).unwrap();
        std::fs::write(d.join("n2.key"), &other.key_pem).unwrap();
        let e = PeerTls::from_files(&TlsFiles {
            key: d.join("n2.key"),
            ..files.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("n1.crt with"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
