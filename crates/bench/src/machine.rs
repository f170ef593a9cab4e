//! What a figure was measured on (cores, CPU model, memory, the disk under a directory), and the
//! memory of a server process watched during a run (`/proc/PID/status`).
//!
//! Everything is read from `/proc` and `/sys` on a best-effort basis: a field that cannot be read
//! is left out rather than failing the run.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_total_mib: Option<u64>,
    pub kernel: Option<String>,
    /// The disk under each directory the run touched (the data directory, the raw baseline dirs).
    pub disks: Vec<Disk>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Disk {
    pub path: PathBuf,
    pub mount_point: Option<String>,
    pub device: Option<String>,
    pub filesystem: Option<String>,
    pub mount_options: Option<String>,
    /// From `/sys/class/block/DEV/queue/rotational`.
    pub rotational: Option<bool>,
    pub model: Option<String>,
}

impl Machine {
    pub fn probe(paths: &[PathBuf]) -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            memory_total_mib: meminfo_kib("MemTotal:").map(|k| k / 1024),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
            disks: paths.iter().map(|p| Disk::probe(p)).collect(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "model name" | "Hardware" | "cpu model" | "cpu"))
        .map(|(_, v)| v.trim().to_owned())
}

fn meminfo_kib(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    status_kib(&text, field)
}

/// The value in kB of a `Name:   1234 kB` line.
fn status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Disk {
    pub fn probe(path: &Path) -> Disk {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut disk = Disk {
            path: canonical.clone(),
            mount_point: None,
            device: None,
            filesystem: None,
            mount_options: None,
            rotational: None,
            model: None,
        };
        let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
            return disk;
        };
        // The longest mount point that contains the path; the last one listed wins a tie (it is
        // mounted over the earlier ones).
        let mut best: Option<(usize, Vec<String>)> = None;
        for line in mounts.lines() {
            let fields: Vec<String> = line.split_whitespace().map(unescape_mount).collect();
            let Some(mount_point) = fields.get(1) else {
                continue;
            };
            if canonical.starts_with(mount_point)
                && best
                    .as_ref()
                    .is_none_or(|(len, _)| mount_point.len() >= *len)
            {
                best = Some((mount_point.len(), fields.clone()));
            }
        }
        if let Some((_, fields)) = best {
            disk.device = fields.first().cloned();
            disk.mount_point = fields.get(1).cloned();
            disk.filesystem = fields.get(2).cloned();
            disk.mount_options = fields.get(3).cloned();
        }
        if let Some(name) = disk.device.as_deref().and_then(|d| d.strip_prefix("/dev/")) {
            let name = fs::canonicalize(format!("/dev/{name}"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| name.to_owned());
            let class = PathBuf::from("/sys/class/block").join(&name);
            // A partition has no queue of its own: use its parent disk's.
            let whole = if class.join("partition").exists() {
                fs::canonicalize(&class)
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
            } else {
                Some(class)
            };
            if let Some(whole) = whole {
                disk.rotational = fs::read_to_string(whole.join("queue/rotational"))
                    .ok()
                    .map(|s| s.trim() == "1");
                disk.model = fs::read_to_string(whole.join("device/model"))
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
        }
        disk
    }
}

/// Memory of the watched server process during a run, in MiB.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    /// Highest `VmRSS` seen by sampling every 50 ms.
    pub rss_peak_sampled_mib: f64,
    /// `VmHWM` at the end of the run: the kernel's exact peak.
    pub vm_hwm_mib: f64,
    /// Whether the peak was reset at the start (`/proc/PID/clear_refs`); if not, `vm_hwm_mib` is
    /// the peak since the process started.
    pub hwm_reset_at_start: bool,
}

fn read_status(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&text, field)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples a process's resident memory in the background.
pub struct MemoryWatch {
    pid: u32,
    start_kib: u64,
    reset: bool,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl MemoryWatch {
    pub fn start(pid: u32) -> anyhow::Result<MemoryWatch> {
        let start_kib = read_status(pid, "VmRSS:").ok_or_else(|| {
            anyhow::anyhow!("cannot read VmRSS of process {pid} from /proc/{pid}/status")
        })?;
        // "5" resets the peak resident set size (VmHWM) to the current one.
        let reset = fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let peak = Arc::new(AtomicU64::new(start_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = read_status(pid, "VmRSS:") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Ok(MemoryWatch {
            pid,
            start_kib,
            reset,
            peak,
            stop,
            task,
        })
    }

    pub async fn finish(self) -> ServerMemory {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let end = read_status(self.pid, "VmRSS:").unwrap_or(0);
        let peak = self.peak.load(Ordering::Relaxed).max(end);
        ServerMemory {
            pid: self.pid,
            rss_start_mib: kib_to_mib(self.start_kib),
            rss_end_mib: kib_to_mib(end),
            rss_peak_sampled_mib: kib_to_mib(peak),
            vm_hwm_mib: kib_to_mib(read_status(self.pid, "VmHWM:").unwrap_or(0)),
            hwm_reset_at_start: self.reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines_and_mount_escapes() {
        let status = "Name:\tobhut\nVmHWM:\t  123456 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(123_456));
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        assert_eq!(unescape_mount("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn probes_this_machine() {
        let m = Machine::probe(&[PathBuf::from(".")]);
        assert!(m.cores >= 1);
        assert_eq!(m.disks.len(), 1);
        assert!(m.disks[0].mount_point.is_some());
    }
}
