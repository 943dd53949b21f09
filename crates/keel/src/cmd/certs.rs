//! `keel certs`: the tier's certificate authority and its nodes' certificates
//! ([`tier_certs`]), kept in `secrets/tls/` beside the cluster description, every file mode 0600
//! in a 0700 folder. `keel up` runs [`ensure`] for its tier.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use cluster_config::ClusterConfig;
use tier_certs::{Ca, Layout};

use super::db::Where;
use super::status::load_config;
use super::write_private;

#[derive(clap::Subcommand)]
pub enum CertsCommand {
    /// Create the tier's CA (unless it exists) and the certificate of every node that has none.
    Init(Where),
    /// Issue node NODE's certificate again, with a new key (a replaced host, a leaked key).
    Issue {
        /// The node.
        node: String,
        #[command(flatten)]
        place: Where,
    },
    /// Issue every node's certificate again, with new keys, from the same CA.
    Rotate(Where),
}

pub fn run(c: CertsCommand) -> anyhow::Result<()> {
    let (place, which) = match &c {
        CertsCommand::Init(w) => (w, Which::Missing),
        CertsCommand::Issue { node, place } => (place, Which::Node(node.as_str())),
        CertsCommand::Rotate(w) => (w, Which::All),
    };
    let cfg = load_config(place.dir.as_deref(), place.config.as_deref())?;
    let layout = Layout::of(&cfg.base_dir);
    let written = ensure(&cfg, which)?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    if written.is_empty() {
        println!("nothing to do: every node of the description has its certificate");
    }
    println!(
        "each host needs {} and its own NODE.crt and NODE.key from {}; keep {} on this host only",
        layout.ca_cert().display(),
        layout.dir.display(),
        layout.ca_key().display()
    );
    Ok(())
}

/// Which node certificates [`ensure`] issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which<'a> {
    /// Those that do not exist yet.
    Missing,
    /// This node's, again.
    Node(&'a str),
    /// Every node's, again.
    All,
}

/// The tier's CA (created if neither of its files exists) and the node certificates `which`
/// asks for; returns the files written.
pub fn ensure(cfg: &ClusterConfig, which: Which<'_>) -> anyhow::Result<Vec<PathBuf>> {
    let layout = Layout::of(&cfg.base_dir);
    if let Which::Node(n) = which {
        cfg.node(n)?;
    }
    fs::create_dir_all(&layout.dir)
        .with_context(|| format!("creating {}", layout.dir.display()))?;
    fs::set_permissions(&layout.dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", layout.dir.display()))?;
    let mut written = Vec::new();
    let (crt, key) = (layout.ca_cert(), layout.ca_key());
    let ca = match (crt.exists(), key.exists()) {
        (true, true) => {
            let read = |p: &PathBuf| {
                fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            Ca::from_pem(&read(&crt)?, &read(&key)?)
                .with_context(|| format!("the tier's CA in {}", layout.dir.display()))?
        }
        (false, false) => {
            let ca = Ca::generate(&cfg.cluster.name)?;
            write_private(&key, &ca.pem().key_pem)?;
            write_private(&crt, &ca.pem().cert_pem)?;
            written.extend([crt, key]);
            ca
        }
        (true, false) => bail!(
            "{} is missing: issue certificates on the host that keeps the CA's key",
            key.display()
        ),
        (false, true) => bail!(
            "{} is missing beside {}: restore it, or remove both to start a new CA",
            crt.display(),
            key.display()
        ),
    };
    for node in &cfg.nodes {
        let (n_crt, n_key) = (layout.node_cert(&node.name), layout.node_key(&node.name));
        let wanted = match which {
            Which::Missing => !n_crt.exists() || !n_key.exists(),
            Which::Node(n) => n == node.name,
            Which::All => true,
        };
        if !wanted {
            continue;
        }
        let issued = ca
            .issue(&node.name, &[node.address.as_str()])
            .with_context(|| format!("issuing the certificate of {}", node.name))?;
        write_private(&n_key, &issued.key_pem)?;
        write_private(&n_crt, &issued.cert_pem)?;
        written.extend([n_crt, n_key]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(tag: &str) -> ClusterConfig {
        use super::super::up::{local_description, with_secrets};
        with_secrets(&format!("certs-{tag}"), &local_description("t", 17500))
    }

    fn mode(p: &std::path::Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_issue_rotate() {
        let cfg = tier("ensure");
        let l = Layout::of(&cfg.base_dir);
        let first = ensure(&cfg, Which::Missing).unwrap();
        assert_eq!(first.len(), 2 + 2 * cfg.nodes.len(), "{first:?}");
        assert_eq!(mode(&l.dir), 0o700);
        for p in &first {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        let ca = fs::read_to_string(l.ca_cert()).unwrap();
        let key2 = fs::read_to_string(l.node_key("node2")).unwrap();
        // Again: nothing to do.
        assert!(ensure(&cfg, Which::Missing).unwrap().is_empty());
        // One node again: its two files, a new key, the same CA.
        let again = ensure(&cfg, Which::Node("node2")).unwrap();
        assert_eq!(again, vec![l.node_cert("node2"), l.node_key("node2")]);
        assert_ne!(fs::read_to_string(l.node_key("node2")).unwrap(), key2);
        assert_eq!(fs::read_to_string(l.ca_cert()).unwrap(), ca);
        assert_eq!(ensure(&cfg, Which::All).unwrap().len(), 2 * cfg.nodes.len());
        assert!(ensure(&cfg, Which::Node("node9")).is_err());
        // A lost node file is issued again; a lost CA key is an error, not a new CA.
        fs::remove_file(l.node_cert("node1")).unwrap();
        assert_eq!(ensure(&cfg, Which::Missing).unwrap().len(), 2);
        fs::remove_file(l.ca_key()).unwrap();
        let e = ensure(&cfg, Which::Missing).unwrap_err().to_string();
        assert!(e.contains("ca.key is missing"), "{e}");
        assert_eq!(fs::read_to_string(l.ca_cert()).unwrap(), ca);
        let _ = fs::remove_dir_all(&cfg.base_dir);
    }

    #[test]
    fn a_secret_is_never_readable_by_others() {
        let d = std::env::temp_dir().join(format!("keel-private-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("s");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, "new").unwrap();
        assert_eq!(
            (mode(&p), fs::read_to_string(&p).unwrap()),
            (0o600, "new".into())
        );
        let q = d.join("t");
        write_private(&q, "x").unwrap();
        assert_eq!(mode(&q), 0o600);
        let _ = fs::remove_dir_all(&d);
    }
}
