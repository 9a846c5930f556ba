//! Linux `/proc` readings: a process's resident set size, and which process
//! listens on a TCP port (`/proc/net/tcp{,6}` gives the socket's inode,
//! `/proc/*/fd` tells whose it is).
//!
//! Reads `/proc` only.

use std::fs;

use crate::BenchError;

/// `VmRSS` of `pid` in KiB (`"self"` for this process).
pub fn rss_kib(pid: &str) -> Result<u64, BenchError> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(BenchError::Usage("no VmRSS line in /proc/PID/status"))
}

/// Threads of `pid`.
pub fn threads(pid: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// CPU time (user + system) `pid` has used, in seconds; assumes the usual
/// `USER_HZ` of 100 ticks a second.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU time every process on the machine has used (all cores), in
/// seconds, from the first line of `/proc/stat` (same `USER_HZ`).
pub fn machine_cpu_secs() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: u64 =
        ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    Some(busy as f64 / 100.0)
}

/// CPU seconds of the server, this bench and the whole machine, read together.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuClock {
    server: Option<f64>,
    bench: Option<f64>,
    machine: Option<f64>,
}

impl CpuClock {
    /// Reads the three clocks now (`server` is a pid, if known).
    pub fn read(server: Option<&str>) -> Self {
        CpuClock { server: server.and_then(cpu_secs), bench: cpu_secs("self"), machine: machine_cpu_secs() }
    }

    /// `(server, bench, everything else)` CPU seconds used since `earlier`.
    pub fn since(&self, earlier: &CpuClock) -> (Option<f64>, Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        let (server, bench, machine) =
            (d(self.server, earlier.server), d(self.bench, earlier.bench), d(self.machine, earlier.machine));
        let others = machine.zip(bench).map(|(m, b)| (m - server.unwrap_or(0.0) - b).max(0.0));
        (server, bench, others)
    }

    /// Table rows for the CPU used over `wall` seconds since `earlier`.
    pub fn rows(&self, earlier: &CpuClock, wall: f64) -> [(&'static str, String); 3] {
        let (server, bench, others) = self.since(earlier);
        let show = |v: Option<f64>| match v {
            Some(v) => format!("{v:.2} ({:.0}% of one core)", 100.0 * v / wall),
            None => "-".into(),
        };
        [
            ("server CPU, s", show(server)),
            ("bench CPU, s", show(bench)),
            ("rest of machine CPU (others + softirq), s", show(others)),
        ]
    }
}

/// The pid of the server: `given`, else the process listening on `port`.
pub fn server_pid(given: Option<u32>, port: u16) -> Result<String, BenchError> {
    match given {
        Some(p) => Ok(p.to_string()),
        None => listener_pid(port)?
            .map(|p| p.to_string())
            .ok_or(BenchError::Usage("cannot find the server's pid from its port; pass --pid")),
    }
}

/// The pid of the process listening on TCP `port`, if this user can see it.
pub fn listener_pid(port: u16) -> Result<Option<u32>, BenchError> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        inodes.extend(text.lines().skip(1).filter_map(|l| listening_inode(l, port)));
    }
    if inodes.is_empty() {
        return Ok(None);
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else { continue };
            if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                return Ok(Some(pid));
            }
        }
    }
    Ok(None)
}

/// The inode of a `/proc/net/tcp` row in state LISTEN (`0A`) on `port`.
fn listening_inode(row: &str, port: u16) -> Option<u64> {
    let cols: Vec<&str> = row.split_whitespace().collect();
    let local = cols.get(1)?;
    let state = cols.get(3)?;
    let row_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
    (row_port == port && *state == "0A").then(|| cols.get(9)?.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_row_yields_its_inode() {
        let row = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inode(row, 8080), Some(424242));
        assert_eq!(listening_inode(row, 8081), None);
        let established = row.replace(" 0A ", " 01 ");
        assert_eq!(listening_inode(&established, 8080), None);
    }

    #[test]
    fn this_process_has_a_resident_set_and_a_cpu_clock() {
        assert!(rss_kib("self").unwrap() > 0);
        assert!(cpu_secs("self").is_some());
        assert!(machine_cpu_secs().is_some());
    }
}
