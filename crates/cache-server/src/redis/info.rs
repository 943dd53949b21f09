//! `INFO`'s text (Redis's section and field names, keel's own figures) and `CLIENT LIST`'s
//! lines.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::{now_ms, ClientHandle, RedisShared, REDIS_VERSION};

/// The sections `INFO` (no argument, or `default`) shows.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

/// Every section keel has (`INFO all` / `everything`).
const ALL_SECTIONS: &[&str] = DEFAULT_SECTIONS;

/// Which sections `INFO args...` asks for, in keel's order.
pub fn sections(args: &[bytes::Bytes]) -> Vec<&'static str> {
    if args.is_empty() {
        return DEFAULT_SECTIONS.to_vec();
    }
    let asked: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    for s in ALL_SECTIONS {
        if asked.iter().any(|a| {
            a == s
                || a == "all"
                || a == "everything"
                || (a == "default" && DEFAULT_SECTIONS.contains(s))
        }) {
            out.push(*s);
        }
    }
    out
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// The process's resident set size and CPU times (user, system seconds), from /proc.
fn process_figures() -> (u64, f64, f64) {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    let (mut utime, mut stime) = (0.0, 0.0);
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) start after the last ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // state is f[0]; utime and stime are fields 14 and 15 of the full line.
            let tick = 100.0;
            utime = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
            stime = f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
        }
    }
    (rss, utime, stime)
}

/// The `INFO` text for `sections`.
pub fn render(shared: &RedisShared, ks: &redis_store::Keyspace, sections: &[&str]) -> String {
    let (used, maxmemory, policy, stats, keyspace) = {
        (
            ks.used_memory(),
            ks.config().maxmemory,
            ks.config().policy,
            ks.stats().clone(),
            ks.keyspace_info(),
        )
    };
    let st = &shared.stats;
    let now = now_ms();
    let uptime = shared.started.elapsed().as_secs();
    let (rss, utime, stime) = process_figures();
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let o = &mut out;
        match *s {
            "server" => {
                let _ = write!(
                    o,
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nkeel_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:{}\r\nexecutable:\r\nconfig_file:\r\nio_threads_active:0\r\n",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    shared.run_id,
                    shared.port.load(Relaxed),
                    now * 1000,
                    uptime / 86400,
                    (now / 1000) & ((1 << 24) - 1),
                );
            }
            "clients" => {
                let _ = write!(
                    o,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n",
                    st.connected.load(Relaxed),
                    shared.max_clients,
                    st.blocked.load(Relaxed),
                    st.blocked.load(Relaxed),
                );
            }
            "memory" => {
                let _ = write!(
                    o,
                    "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_dataset:{used}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:libc\r\nlazyfree_pending_objects:0\r\n",
                    human(used),
                    human(rss),
                    human(maxmemory),
                    policy.name(),
                );
            }
            "persistence" => {
                let _ = write!(
                    o,
                    "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_saves:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n",
                    shared.start_unix
                );
            }
            "stats" => {
                let _ = write!(
                    o,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:0\r\ntotal_error_replies:{}\r\n",
                    st.total_connections.load(Relaxed),
                    st.total_commands.load(Relaxed),
                    st.net_input_bytes.load(Relaxed),
                    st.net_output_bytes.load(Relaxed),
                    st.rejected_connections.load(Relaxed),
                    stats.expired_keys,
                    stats.evicted_keys,
                    stats.keyspace_hits,
                    stats.keyspace_misses,
                    shared.pubsub.numchannels(),
                    shared.pubsub.numpat(),
                    st.total_error_replies.load(Relaxed),
                );
            }
            "replication" => match &shared.cluster {
                None => {
                    let _ = write!(
                        o,
                        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:0\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                        shared.run_id
                    );
                }
                Some(c) => replication_section(o, &c.status(), c.redis().map_or(0, |r| r.now_ms())),
            },
            "cpu" => {
                let _ = write!(
                    o,
                    "# CPU\r\nused_cpu_sys:{stime:.6}\r\nused_cpu_user:{utime:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
                );
            }
            // Redis Cluster (hash slots) is off: every keel node serves every key.
            "cluster" => o.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            "keyspace" => {
                o.push_str("# Keyspace\r\n");
                for (db, keys, expires) in &keyspace {
                    let _ = write!(o, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
            _ => {}
        }
    }
    out
}

/// One `CLIENT LIST` / `CLIENT INFO` line (Redis 7.0's fields; 7.2's `lib-name`/`lib-ver`).
pub fn client_line(h: &ClientHandle, now_ms: u64) -> String {
    let i = h.info.lock().clone();
    let mut flags = String::new();
    if i.sub + i.psub > 0 {
        flags.push('P');
    }
    if i.multi >= 0 {
        flags.push('x');
    }
    if i.blocked {
        flags.push('b');
    }
    if i.no_evict {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={flags} db={} sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        h.id,
        h.addr,
        h.laddr,
        String::from_utf8_lossy(&i.name),
        h.created.elapsed().as_secs(),
        now_ms.saturating_sub(i.last_active_ms) / 1000,
        i.db,
        i.sub,
        i.psub,
        i.multi,
        h.pending(),
        if i.cmd.is_empty() { "NULL" } else { &i.cmd },
        i.resp,
        String::from_utf8_lossy(&i.lib_name),
        String::from_utf8_lossy(&i.lib_ver),
    )
}

/// `INFO replication` of a cluster member: Redis's fields as a client expects them (the leader
/// is the `master`, the others `slave`s of it, though every node accepts writes), then keel's
/// own: the Raft role, the leader's slot, and the log positions.
fn replication_section(o: &mut String, st: &cache_cluster::ClusterStatus, clock_ms: u64) {
    let leader = st.role == "leader";
    let others = st
        .members
        .iter()
        .filter(|m| m.voter && m.id != st.id)
        .count();
    let _ = write!(
        o,
        "# Replication\r\nrole:{}\r\n",
        if leader { "master" } else { "slave" }
    );
    if leader {
        let _ = write!(o, "connected_slaves:{others}\r\n");
    } else {
        let up = st.ready && st.leader.is_some();
        let _ = write!(
            o,
            "master_link_status:{}\r\nconnected_slaves:0\r\n",
            if up { "up" } else { "down" }
        );
    }
    let _ = write!(
        o,
        "master_repl_offset:{}\r\nkeel_cluster_role:{}\r\nkeel_cluster_slot:{}\r\nkeel_cluster_leader_slot:{}\r\nkeel_cluster_ready:{}\r\nkeel_cluster_term:{}\r\nkeel_cluster_commit:{}\r\nkeel_cluster_applied:{}\r\nkeel_cluster_voters:{}\r\n",
        st.applied,
        st.role,
        st.slot,
        st.leader_slot.map_or_else(|| "-".to_string(), |s| s.to_string()),
        u8::from(st.ready),
        st.term,
        st.commit,
        st.applied,
        st.members.iter().filter(|m| m.voter).count(),
    );
    // The replicated clock reads and expiry use (unix ms): equal on nodes at equal `applied`.
    let _ = write!(o, "keel_cluster_clock_ms:{clock_ms}\r\n");
    // Pops this node sent again after an unknown outcome (applied once all the same).
    let _ = write!(o, "keel_cluster_pops_resent:{}\r\n", st.pops_resent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn section_selection() {
        assert_eq!(sections(&[]), DEFAULT_SECTIONS);
        assert_eq!(
            sections(&[Bytes::from_static(b"KEYSPACE")]),
            vec!["keyspace"]
        );
        assert_eq!(sections(&[Bytes::from_static(b"all")]), ALL_SECTIONS);
        assert_eq!(
            sections(&[Bytes::from_static(b"memory"), Bytes::from_static(b"server")]),
            vec!["server", "memory"]
        );
        assert!(sections(&[Bytes::from_static(b"nosuch")]).is_empty());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }

    #[test]
    fn info_text_has_redis_fields() {
        let shared = RedisShared::new(&crate::config::RedisSettings::default(), 10);
        let ks = redis_store::Keyspace::new(redis_store::Config::default());
        let t = render(&shared, &ks, &sections(&[]));
        assert!(t.starts_with("# Server\r\nredis_version:7.0.15\r\n"));
        assert!(t.contains("\r\n\r\n# Clients\r\nconnected_clients:0\r\n"));
        assert!(t.contains("maxmemory_policy:noeviction\r\n"));
        assert!(t.contains("role:master\r\n"));
        assert!(t.ends_with("# Keyspace\r\n"));
    }
}
