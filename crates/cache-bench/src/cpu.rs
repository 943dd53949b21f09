//! CPU time of a process (all its threads, user + system), read from `/proc/<pid>/stat`, and a
//! sampler that reads it for the server and for the client itself at the start and the end of the
//! measured window. CPU per operation compares servers fairly even when the client, sharing the
//! machine, limits the throughput; the client's own share says whether it is the bottleneck.

use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, fixed at 100 in the kernel's ABI).
const USER_HZ: f64 = 100.0;

/// Parses user + system seconds out of the text of a `/proc/<pid>/stat` file.
pub fn parse_stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces or ')': skip past the
    // last ')'. Then state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds consumed so far by process `pid` (`None`: this process).
pub fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    parse_stat_cpu_seconds(&std::fs::read_to_string(path).ok()?)
}

/// CPU seconds used in the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuWindow {
    /// By the server's processes (if pids were given and all readable), summed.
    pub server: Option<f64>,
    /// By this client process.
    pub client: Option<f64>,
}

/// Spawns a thread that samples CPU times at `from` and at `to`; join it for the differences.
pub fn sample_window(
    server_pid: Vec<u32>,
    from: Instant,
    to: Instant,
) -> std::thread::JoinHandle<CpuWindow> {
    std::thread::spawn(move || {
        let sleep_until = |t: Instant| {
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
        };
        sleep_until(from);
        let servers = || -> Option<f64> {
            if server_pid.is_empty() {
                return None;
            }
            server_pid
                .iter()
                .map(|p| process_cpu_seconds(Some(*p)))
                .sum()
        };
        let s0 = servers();
        let c0 = process_cpu_seconds(None);
        sleep_until(to);
        let s1 = servers();
        let c1 = process_cpu_seconds(None);
        CpuWindow {
            server: s0.zip(s1).map(|(a, b)| b - a),
            client: c0.zip(c1).map(|(a, b)| b - a),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_line() {
        let line = "1234 (memcached) S 1 1234 1234 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 6 0 100 \
                    1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_seconds(line), Some(3.25));
        let odd = "99 (we ird) (x) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat_cpu_seconds(odd), Some(0.1));
        assert_eq!(parse_stat_cpu_seconds("garbage"), None);
    }

    #[test]
    fn reads_own_cpu() {
        let t = process_cpu_seconds(None).expect("/proc/self/stat");
        assert!(t >= 0.0);
    }
}
