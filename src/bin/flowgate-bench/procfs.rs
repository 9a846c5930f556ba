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
    }
}
