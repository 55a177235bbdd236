//! What a process uses, read from Linux's `/proc`: resident memory and CPU time, for the
//! server under load (`--server-pid`) and for the load client itself.

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The resident set size of process `pid` (`self` for this one), KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time (user + system) process `pid` (`self` for this one) has used, seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let [utime, stime, ..] = cpu_ticks(pid)?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// The CPU time of this process and of the children it has waited for (a load client's
/// workers), seconds.
pub fn own_and_children_cpu_seconds() -> Option<f64> {
    let ticks: u64 = cpu_ticks("self")?.iter().sum();
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// `utime`, `stime`, `cutime` and `cstime` of process `pid`, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past its closing ')'.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace();
    // Fields 14 and 15 of the whole line; 12 and 13 after the name and state.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let children_utime: u64 = fields.next()?.parse().ok()?;
    let children_stime: u64 = fields.next()?.parse().ok()?;
    Some([utime, stime, children_utime, children_stime])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_kib("self").is_some_and(|kib| kib > 0));
        assert!(cpu_seconds("self").is_some());
        // One reading: this process's time is part of the sum with its children's.
        let [utime, stime, children_utime, children_stime] =
            cpu_ticks("self").expect("/proc/self/stat reads");
        let own = (utime + stime) as f64 / TICKS_PER_SECOND;
        let all = (utime + stime + children_utime + children_stime) as f64 / TICKS_PER_SECOND;
        assert!(all >= own);
        assert!(own_and_children_cpu_seconds().is_some());
        assert_eq!(rss_kib("0"), None);
    }
}
