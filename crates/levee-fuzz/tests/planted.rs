//! The harness can find a panic: a test-only build of the decode target
//! panics on one rare input shape, a `trip` whose `vehicle_id` holds a lone
//! UTF-16 surrogate escape and which gives one of the trip's required
//! fields twice. Byte flips of the seeds essentially never write a
//! surrogate escape and a duplicate key together; the structure-aware
//! mutator does, and the seeded run finds it within a bounded number of
//! inputs, every time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use levee_fuzz::corpus::{default_root, Corpus};
use levee_fuzz::rng::Rng;
use levee_fuzz::runner::{self, Config, Outcome, Target};
use levee_fuzz::targets::decode::Decode;

const TRIP_KEYS: [&str; 9] = [
    "event_id",
    "type",
    "occurred_at",
    "branch",
    "vehicle_id",
    "driver_id",
    "distance_km",
    "fuel_used_l",
    "standard_l_per_100km",
];

/// Reads a JSON string's raw text from `at` (just past its opening quote):
/// the text and the index past its closing quote.
fn raw_string(b: &[u8], mut at: usize) -> (&[u8], usize) {
    let start = at;
    while at < b.len() && b[at] != b'"' {
        at += if b[at] == b'\\' { 2 } else { 1 };
    }
    let end = at.min(b.len());
    (&b[start..end], end + 1)
}

/// The hex value of a `\uXXXX` escape at `at`.
fn escape_at(s: &[u8], at: usize) -> Option<u32> {
    let hex = s.get(at..at + 6)?;
    if !hex.starts_with(b"\\u") {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
}

fn has_lone_surrogate(s: &[u8]) -> bool {
    let mut i = 0;
    let mut after_high = false;
    while i < s.len() {
        if s[i] == b'\\' {
            match escape_at(s, i) {
                Some(0xD800..=0xDBFF) => {
                    if after_high {
                        return true;
                    }
                    after_high = true;
                    i += 6;
                    continue;
                }
                Some(0xDC00..=0xDFFF) if !after_high => return true,
                _ => {}
            }
            if after_high && escape_at(s, i).is_none_or(|c| !(0xDC00..=0xDFFF).contains(&c)) {
                return true;
            }
            after_high = false;
            i += 2;
            continue;
        }
        if after_high {
            return true;
        }
        i += 1;
    }
    after_high
}

/// The planted shape: a trip, a lone surrogate in `vehicle_id`, a trip key
/// given twice.
fn planted_shape(b: &[u8]) -> bool {
    let mut keys: Vec<&[u8]> = Vec::new();
    let (mut trip, mut lone) = (false, false);
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let (key, next) = raw_string(b, i + 1);
        let mut j = next;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b':' {
            i = next;
            continue;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'"' {
            let (value, after) = raw_string(b, j + 1);
            trip |= key == b"type" && value == b"trip";
            lone |= key == b"vehicle_id" && has_lone_surrogate(value);
            i = after;
        } else {
            i = j;
        }
        keys.push(key);
    }
    let twice = TRIP_KEYS
        .iter()
        .any(|k| keys.iter().filter(|x| **x == k.as_bytes()).count() > 1);
    trip && lone && twice
}

/// The decode target with a planted bug.
struct Planted(Decode);

impl Target for Planted {
    fn name(&self) -> &'static str {
        "planted"
    }
    fn generate(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        self.0.generate(rng, out);
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        if planted_shape(input) {
            panic!("planted: a trip with a lone surrogate in vehicle_id and a key given twice");
        }
        self.0.run(input)
    }
    fn keep(&mut self) {
        self.0.keep();
    }
    fn reset(&mut self) {
        self.0.reset();
    }
}

#[test]
fn the_shape_is_what_it_says() {
    let trip = |vid: &str, extra: &str| {
        format!(r#"{{"type":"trip","vehicle_id":"{vid}","distance_km":1{extra}}}"#).into_bytes()
    };
    assert!(planted_shape(&trip(r"V\ud800", r#","distance_km":2"#)));
    assert!(planted_shape(&trip(r"\udc00V", r#", "type": "trip""#)));
    assert!(!planted_shape(&trip(r"V\ud800", "")), "no key twice");
    assert!(
        !planted_shape(&trip(r"V\ud83d\ude97", r#","distance_km":2"#)),
        "a pair"
    );
    assert!(
        !planted_shape(&trip("V1", r#","distance_km":2"#)),
        "no surrogate"
    );
    let refuel = String::from_utf8(trip(r"V\ud800", r#","distance_km":2"#))
        .unwrap()
        .replace("trip", "refuel");
    assert!(!planted_shape(refuel.as_bytes()));
}

#[test]
fn the_harness_finds_the_planted_panic() {
    let corpus = Corpus::load(&default_root()).unwrap();
    // A campaign on trips, as `levee-fuzz --event-type trip` runs one.
    let mut target = Planted(Decode::new(&corpus).unwrap().focus("trip").unwrap());
    let dir = tempfile_dir();
    let budget = 100_000;
    let config = Config {
        seed: 1,
        inputs: Some(budget),
        duration: None,
        crash_dir: dir.clone(),
        max_rss_mib: 4096,
        progress: None,
        stop_on_crash: true,
    };
    let report = runner::run(&mut target, &config);
    let crash = report
        .crashes
        .iter()
        .find(|c| c.message.starts_with("planted"))
        .unwrap_or_else(|| panic!("not found in {budget} inputs: {report:?}"));
    assert!(planted_shape(&crash.input));
    // The crash file holds the input, and it replays.
    let file = crash.file.as_ref().unwrap();
    let saved = std::fs::read(file).unwrap();
    assert_eq!(saved, crash.input);
    assert!(runner::run_one(&mut target, &saved).is_err());
    eprintln!(
        "planted panic found at input {} (seed 1, budget {budget})",
        crash.index
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("planted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn blind_byte_flips_do_not_find_it_in_the_same_budget() {
    // The same seeds, damaged byte by byte only: the shape needs a
    // six-character escape in one string and a whole key repeated.
    let corpus = Corpus::load(&default_root()).unwrap();
    let seeds: Vec<&Vec<u8>> = corpus.events.iter().collect();
    let mut rng = Rng::new(1);
    let mut found = 0;
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        buf.clear();
        buf.extend_from_slice(seeds[rng.below(seeds.len())]);
        for _ in 0..rng.small(4) {
            let other = seeds[rng.below(seeds.len())].clone();
            levee_fuzz::event::damage(&mut rng, &mut buf, &other);
        }
        found += usize::from(planted_shape(&buf));
    }
    assert_eq!(found, 0);
}
