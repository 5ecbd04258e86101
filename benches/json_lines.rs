//! The baseline of `levee replay` (BENCHMARKS.md, section 2): a whole
//! process that reads a JSON-lines file line by line, parses each line into
//! a `serde_json::Value`, counts the objects and prints a one-line summary.
//! No rules, no state, nothing written per line: what any program that
//! reads the same file must at least do.
//!
//! `cargo build --release -p levee --example json_lines`, then
//! `target/release/examples/json_lines FILE` (`-` reads stdin).

use std::io::{self, BufRead, BufReader, Read};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: json_lines FILE");
        return ExitCode::FAILURE;
    };
    let input: Box<dyn Read> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        match std::fs::File::open(&name) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("json_lines: cannot open {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let (mut lines, mut objects, mut bad) = (0u64, 0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("json_lines: reading {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(v) => objects += u64::from(v.is_object()),
            Err(_) => bad += 1,
        }
    }
    println!("json_lines: {lines} lines, {objects} objects, {bad} not JSON");
    ExitCode::SUCCESS
}
