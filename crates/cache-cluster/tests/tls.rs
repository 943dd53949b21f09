//! Mutual TLS on the peer port (`cache_cluster::tls`): a cluster whose nodes hold certificates of
//! one CA replicates and survives its leader's stop; clients of the peer port without such a
//! certificate (none, another tier's CA, plaintext frames, garbage) get no session, while a
//! client with one is answered (the control that shows the probe itself works).

use std::sync::Arc;
use std::time::Duration;

use cache_cluster::transport::{decode, encode, read_frame, Reply, Rpc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mtls_cluster_replicates_and_survives_a_leader_stop() {
    let ca = tier_certs::Ca::generate("alpha").unwrap();
    let mut tc = TestCluster::start_tls(3, &ca).await;
    let (leader, follower) = tc.leader_and_follower_slots().await;
    set(&tc.node(follower), "via-follower", "1").await.unwrap();
    set(&tc.node(leader), "via-leader", "2").await.unwrap();
    for n in tc.nodes() {
        assert_eq!(
            get(&n, "via-follower").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            get(&n, "via-leader").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
    }
    tc.stop(leader).await;
    let new_leader = tc.leader_slot().await;
    assert_ne!(new_leader, leader);
    let other = tc
        .nodes
        .iter()
        .find(|(s, n)| n.is_some() && **s != new_leader)
        .map(|(s, _)| *s)
        .expect("a surviving follower");
    // Writes resume on the two survivors (retried while the election settles).
    wait_until(Duration::from_secs(10), || {
        let n = tc.node(other);
        async move { set(&n, "after", "3").await.is_ok() }
    })
    .await;
    assert_eq!(
        get(&tc.node(new_leader), "after").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    // The stopped node comes back (new Raft id, same address and certificate) and catches up.
    let back = tc.restart(leader).await;
    back.wait_ready(Duration::from_secs(20)).await.unwrap();
    for k in ["via-follower", "via-leader", "after"] {
        assert!(get(&back, k).await.unwrap().is_some(), "{k}");
    }
    tc.shutdown().await;
}

/// A TLS client of the peer port trusting `ca` for the server, showing `cert` (or nothing).
fn client(ca: &tier_certs::Ca, cert: Option<&tier_certs::Issued>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().cert_pem.as_bytes()).unwrap())
        .unwrap();
    #[allow(deprecated)] // the provider the nodes use (crate::tls)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        None => b.with_no_client_auth(),
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

/// What the node at `addr` does with a `Hello` sent over TLS by `connector`: `Some(reply)` or
/// `None` (handshake refused, connection closed without a reply). Bounded in time.
async fn hello_over_tls(connector: &TlsConnector, addr: &str) -> Option<Reply> {
    let probe = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        // In TLS 1.3 the client finishes its side before the server has checked the client's
        // certificate: a refusal shows as the connection failing on the first read.
        let mut s = connector.connect(name, tcp).await.ok()?;
        s.write_all(&encode(1, &Rpc::Hello).unwrap()).await.ok()?;
        s.flush().await.ok()?;
        let mut buf = Vec::new();
        read_frame(&mut s, &mut buf).await.ok()??;
        decode::<Reply>(&buf).ok()
    };
    tokio::time::timeout(Duration::from_secs(10), probe)
        .await
        .expect("the peer port neither answered nor closed the connection")
}

/// Plain TCP: send `bytes`, then read until the node closes; it may send a TLS alert record
/// (content type 21) and nothing else.
async fn send_plain(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The node may close before everything is written: that is an answer too.
    let _ = s.write_all(bytes).await;
    let mut back = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back)).await;
    assert!(r.is_ok(), "the node kept a connection of garbage open");
    assert!(
        back.is_empty() || back[0] == 21,
        "the node answered garbage with {back:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_peer_port_refuses_clients_without_a_certificate_of_the_tier() {
    let ca = tier_certs::Ca::generate("alpha").unwrap();
    let other_ca = tier_certs::Ca::generate("beta").unwrap();
    let tc = TestCluster::start_tls(3, &ca).await;
    let (leader, _) = tc.leader_and_follower_slots().await;
    let addr = tc.peers[&leader].clone();
    let role_before = tc.node(leader).status();

    // The control: a certificate of the tier's CA gets an answer.
    let member = ca.issue("probe", &["127.0.0.1"]).unwrap();
    let r = hello_over_tls(&client(&ca, Some(&member)), &addr).await;
    assert!(matches!(r, Some(Reply::Hello(_))), "{r:?}");

    // No certificate; a certificate of another tier's CA (same names, same purposes).
    let stranger = other_ca.issue("probe", &["127.0.0.1"]).unwrap();
    for (what, c) in [
        ("no certificate", client(&ca, None)),
        ("another CA's certificate", client(&ca, Some(&stranger))),
    ] {
        let r = hello_over_tls(&c, &addr).await;
        assert!(r.is_none(), "{what}: answered {r:?}");
    }

    // Plaintext: a valid frame of the old transport, and garbage.
    send_plain(&addr, &encode(7, &Rpc::Hello).unwrap()).await;
    let mut garbage = Vec::with_capacity(1 << 16);
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..garbage.capacity() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(x as u8);
    }
    send_plain(&addr, &garbage).await;
    // A TLS record header claiming a huge handshake, then nothing: closed, nothing allocated.
    send_plain(
        &addr,
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff],
    )
    .await;

    // The node is unharmed: same term and role, and the cluster serves.
    let after = tc.node(leader).status();
    assert_eq!(
        (after.role.as_str(), after.term),
        (role_before.role.as_str(), role_before.term)
    );
    set(&tc.node(leader), "still", "here").await.unwrap();
    for n in tc.nodes() {
        assert_eq!(
            get(&n, "still").await.unwrap().as_deref(),
            Some(&b"here"[..])
        );
    }
    tc.shutdown().await;
}
