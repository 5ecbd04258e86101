//! Every crash the fuzzer found, kept as its input under
//! `crates/levee-fuzz/regressions/TARGET/`, runs through its target again
//! (on a 2 MiB stack, as a tokio worker's) without a panic or an abort.
//! A new crash file goes there with a line in `docs/fuzzing.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use levee_fuzz::corpus::{default_root, Corpus};
use levee_fuzz::runner;

fn replay_all(target: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let name = target.to_owned();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let corpus = Corpus::load(&default_root()).unwrap();
            let mut t = levee_fuzz::target(&name, &corpus, None).unwrap();
            for f in &files {
                let input = std::fs::read(f).unwrap();
                if let Err((at, message)) = runner::run_one(t.as_mut(), &input) {
                    panic!("{}: panics at {at}: {message}", f.display());
                }
            }
            files.len()
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn compile_regressions_stay_fixed() {
    assert!(replay_all("compile") >= 1);
}

#[test]
fn decode_regressions_stay_fixed() {
    replay_all("decode");
}

#[test]
fn http_regressions_stay_fixed() {
    replay_all("http");
}
