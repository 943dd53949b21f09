//! Certificates checked by OpenSSL (`openssl verify`, `openssl x509`), the tool an operator
//! would use on them.

use super::*;
use std::process::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tier-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian's openssl package)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn verify(ca: &Path, cert: &Path, purpose: &str) -> (bool, String) {
    openssl(&[
        "verify".as_ref(),
        "-purpose".as_ref(),
        purpose.as_ref(),
        "-CAfile".as_ref(),
        ca.as_os_str(),
        cert.as_os_str(),
    ])
}

#[test]
fn a_node_certificate_verifies_against_its_tier_only() {
    let d = Dir::new("verify");
    let ca = Ca::generate("alpha").unwrap();
    let ca_crt = d.write("ca.crt", &ca.pem().cert_pem);
    let node = ca.issue("node1", &["127.0.0.1", "db1.example"]).unwrap();
    let crt = d.write("node1.crt", &node.cert_pem);
    for purpose in ["sslserver", "sslclient"] {
        let (ok, out) = verify(&ca_crt, &crt, purpose);
        assert!(ok, "{purpose}: {out}");
    }
    // Names: the addresses peers dial, and the node's name.
    let (ok, text) = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-subject".as_ref(),
        "-ext".as_ref(),
        "subjectAltName,basicConstraints,extendedKeyUsage".as_ref(),
        "-in".as_ref(),
        crt.as_os_str(),
    ]);
    assert!(ok, "{text}");
    for want in [
        "IP Address:127.0.0.1",
        "DNS:db1.example",
        "DNS:node1",
        "CN = node1",
        "CA:FALSE",
        "TLS Web Server Authentication",
        "TLS Web Client Authentication",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // The key belongs to the certificate.
    let key = d.write("node1.key", &node.key_pem);
    let pubkey = |args: &[&std::ffi::OsStr]| openssl(args).1;
    assert_eq!(
        pubkey(&[
            "x509".as_ref(),
            "-noout".as_ref(),
            "-pubkey".as_ref(),
            "-in".as_ref(),
            crt.as_os_str()
        ]),
        pubkey(&[
            "pkey".as_ref(),
            "-pubout".as_ref(),
            "-in".as_ref(),
            key.as_os_str()
        ])
    );
    // Another tier's CA does not vouch for it, nor does its own CA for another tier's node.
    let other = Ca::generate("beta").unwrap();
    let other_crt = d.write("other-ca.crt", &other.pem().cert_pem);
    let (ok, out) = verify(&other_crt, &crt, "sslclient");
    assert!(!ok, "{out}");
    let stranger = d.write(
        "stranger.crt",
        &other.issue("node1", &["127.0.0.1"]).unwrap().cert_pem,
    );
    let (ok, out) = verify(&ca_crt, &stranger, "sslserver");
    assert!(!ok, "{out}");
}

#[test]
fn a_ca_read_back_from_its_files_issues_certificates_its_certificate_verifies() {
    let d = Dir::new("reload");
    let ca = Ca::generate("gamma").unwrap();
    let again = Ca::from_pem(&ca.pem().cert_pem, &ca.pem().key_pem).unwrap();
    assert_eq!(again.pem(), ca.pem());
    let ca_crt = d.write("ca.crt", &ca.pem().cert_pem);
    let crt = d.write(
        "n.crt",
        &again.issue("n2", &["10.0.0.12"]).unwrap().cert_pem,
    );
    let (ok, out) = verify(&ca_crt, &crt, "sslserver");
    assert!(ok, "{out}");
    // Two issues for one node: two keys.
    assert_ne!(
        again.issue("n2", &[]).unwrap().key_pem,
        again.issue("n2", &[]).unwrap().key_pem
    );
    // Garbage is an error that says which file, never a panic.
    let e = Ca::from_pem("not pem", &ca.pem().key_pem)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    let e = Ca::from_pem(&ca.pem().cert_pem, "not pem")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("key"), "{e}");
    // A name that cannot be a DNS name is left out, not refused.
    assert!(ca.issue("node one", &["127.0.0.2"]).is_ok());
}

#[test]
fn layout_paths() {
    let l = Layout::of(Path::new("/etc/keel"));
    assert_eq!(l.ca_cert(), Path::new("/etc/keel/secrets/tls/ca.crt"));
    assert_eq!(l.ca_key(), Path::new("/etc/keel/secrets/tls/ca.key"));
    assert_eq!(
        l.node_cert("app1"),
        Path::new("/etc/keel/secrets/tls/app1.crt")
    );
    assert_eq!(
        l.node_key("app1"),
        Path::new("/etc/keel/secrets/tls/app1.key")
    );
}
