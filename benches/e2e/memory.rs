//! Memory of the state: `levee replay` with many distinct subjects.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{root, LEVEE};
use crate::load::{routing, Ev};
use crate::observe::{cpu_ticks, proc_memory};

/// Feeds `n` clean purchase events with distinct suppliers to `levee replay -`
/// and reads its memory once all are evaluated. (VmRSS, VmHWM) in KiB.
pub(crate) fn replay_memory(template: &Value, subject: &str, n: usize) -> (u64, u64) {
    let mut child = Command::new(LEVEE)
        .current_dir(root())
        .args(["replay", "--now", "2026-11-26T00:00:00Z", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let template = template.clone();
    let subject = subject.to_owned();
    let writer = std::thread::spawn(move || {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut stdin);
        let mut v = template;
        for i in 0..n {
            v[subject.as_str()] = Value::String(format!("SUP-MEM-{i:07}"));
            v["event_id"] = Value::String(format!("mem{i}"));
            serde_json::to_writer(&mut w, &v).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
        drop(w);
        stdin
    });
    let stdin = writer.join().unwrap();
    // Everything is written; wait until the process has gone idle.
    let mut last = cpu_ticks(pid);
    let mut idle = 0;
    while idle < 3 {
        std::thread::sleep(Duration::from_millis(200));
        let t = cpu_ticks(pid);
        idle = if t == last { idle + 1 } else { 0 };
        last = t;
    }
    let mem = proc_memory(pid);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    mem
}

/// `levee replay`'s memory at 1/10 and all of `mem_subjects` subjects.
pub(crate) struct StateMemory {
    pub(crate) small: usize,
    pub(crate) rss_small: u64,
    pub(crate) hwm_small: u64,
    pub(crate) rss_big: u64,
    pub(crate) hwm_big: u64,
    /// Bytes per subject: the difference / the subjects added.
    pub(crate) per_subject: f64,
}

pub(crate) fn state_memory(events: &[Ev], mem_subjects: usize) -> StateMemory {
    let routes = routing();
    let subject = routes["purchase"].1.clone();
    let template: Value = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.payload).unwrap())
        .find(|v| v["type"] == "purchase" && v["event_id"].as_str().unwrap().starts_with('c'))
        .expect("a clean purchase event");
    let small = (mem_subjects / 10).max(1);
    let (rss_small, hwm_small) = replay_memory(&template, &subject, small);
    let (rss_big, hwm_big) = replay_memory(&template, &subject, mem_subjects);
    let per_subject =
        (hwm_big.saturating_sub(hwm_small)) as f64 * 1024.0 / (mem_subjects - small) as f64;
    StateMemory {
        small,
        rss_small,
        hwm_small,
        rss_big,
        hwm_big,
        per_subject,
    }
}
