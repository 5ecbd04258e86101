//! The sample's files: numbered JSON-lines segments in one directory, the
//! newest written, the oldest deleted first so that the segments together
//! never exceed the bound.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A segment's file name: `sample-0000000042.jsonl`.
pub fn segment_name(seq: u64) -> String {
    format!("sample-{seq:010}.jsonl")
}

/// The sequence number of a segment's file name.
pub fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("sample-")?.strip_suffix(".jsonl")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segments of `dir`, oldest first, with their sizes.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(seq) = name.to_str().and_then(segment_seq) {
            out.push((seq, entry.path(), entry.metadata()?.len()));
        }
    }
    out.sort_unstable_by_key(|(seq, _, _)| *seq);
    Ok(out)
}

/// How large one segment grows: an eighth of the bound, between 64 KiB
/// (or the bound, if smaller) and 64 MiB.
pub fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp((64 << 10).min(max_bytes), 64 << 20)
}

/// The segments of a sample directory being written.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Closed segments, oldest first: sequence number and size.
    closed: VecDeque<(u64, u64)>,
    /// The segment being written, its sequence number and size.
    current: Option<(u64, BufWriter<File>, u64)>,
    next_seq: u64,
}

impl Segments {
    /// Opens `dir` (created if missing): the segments already there count
    /// against `max_bytes`; new lines go to a new segment.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Segments> {
        fs::create_dir_all(dir)?;
        let existing = list(dir)?;
        let next_seq = existing.last().map_or(1, |(seq, _, _)| seq + 1);
        Ok(Segments {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: segment_bytes(max_bytes),
            closed: existing.into_iter().map(|(s, _, len)| (s, len)).collect(),
            current: None,
            next_seq,
        })
    }

    /// Deletes every segment (a sample under another key or share).
    pub fn clear(&mut self) -> io::Result<()> {
        if let Some((seq, _, _)) = self.current.take() {
            self.closed.push_back((seq, 0));
        }
        while let Some((seq, _)) = self.closed.pop_front() {
            remove(&self.dir.join(segment_name(seq)))?;
        }
        Ok(())
    }

    /// Appends one line (a newline is added). `Ok(false)`: the line alone
    /// is larger than a segment, and is left out.
    pub fn write(&mut self, line: &[u8]) -> io::Result<bool> {
        let n = line.len() as u64 + 1;
        if n > self.segment_bytes {
            return Ok(false);
        }
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, len)| len + n > self.segment_bytes)
        {
            self.rotate()?;
        }
        while self.bytes() + n > self.max_bytes {
            let Some((seq, _)) = self.closed.pop_front() else {
                break;
            };
            remove(&self.dir.join(segment_name(seq)))?;
        }
        if self.current.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = File::create(self.dir.join(segment_name(seq)))?;
            self.current = Some((seq, BufWriter::with_capacity(1 << 16, file), 0));
        }
        if let Some((_, w, len)) = self.current.as_mut() {
            w.write_all(line)?;
            w.write_all(b"\n")?;
            *len += n;
        }
        Ok(true)
    }

    /// Closes the segment being written; the next line starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some((seq, mut w, len)) = self.current.take() {
            w.flush()?;
            self.closed.push_back((seq, len));
        }
        Ok(())
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some((_, w, _)) => w.flush(),
            None => Ok(()),
        }
    }

    /// The bytes of every segment, the one being written included.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|(_, len)| len).sum::<u64>()
            + self.current.as_ref().map_or(0, |(_, _, len)| *len)
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_sequence() {
        assert_eq!(segment_name(42), "sample-0000000042.jsonl");
        assert_eq!(segment_seq("sample-0000000042.jsonl"), Some(42));
        assert_eq!(segment_seq("sample-42.jsonl"), None);
        assert_eq!(segment_seq("manifest.json"), None);
        assert!(segment_name(9) < segment_name(10));
    }

    #[test]
    fn the_bound_holds_and_the_oldest_segment_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let max = 256 << 10; // segments of 64 KiB
        let mut s = Segments::open(dir.path(), max).unwrap();
        let line = |i: usize| {
            format!(
                "{{\"event_id\":\"e{i:06}\",\"pad\":\"{}\"}}",
                "x".repeat(200)
            )
        };
        for i in 0..5000 {
            assert!(s.write(line(i).as_bytes()).unwrap());
            assert!(s.bytes() <= max, "{} > {max} after {i}", s.bytes());
        }
        s.flush().unwrap();
        let files = list(dir.path()).unwrap();
        let on_disk: u64 = files.iter().map(|(_, _, len)| len).sum();
        assert_eq!(on_disk, s.bytes());
        assert!(on_disk <= max && on_disk > max / 2, "{on_disk}");
        assert!(files.len() >= 4, "{files:?}");
        // What is kept is the newest, in order, without a gap.
        let text: String = files
            .iter()
            .map(|(_, p, _)| fs::read_to_string(p).unwrap())
            .collect();
        let ids: Vec<usize> = text.lines().map(|l| l[14..20].parse().unwrap()).collect();
        assert_eq!(*ids.last().unwrap(), 4999);
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(ids[0] > 0, "the oldest were deleted");
    }

    #[test]
    fn a_reopened_sample_counts_what_is_there_and_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segments::open(dir.path(), 1 << 20).unwrap();
        s.write(b"{\"a\":1}").unwrap();
        s.flush().unwrap();
        drop(s);
        let mut s = Segments::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.bytes(), 8);
        s.write(b"{\"a\":2}").unwrap();
        s.flush().unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        // A line larger than a segment is left out.
        assert!(!s.write(&vec![b'x'; 200 << 10]).unwrap());
        s.clear().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        assert_eq!(s.bytes(), 0);
    }
}
