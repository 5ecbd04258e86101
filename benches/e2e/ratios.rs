//! The ratios to the passthrough, each taken within its round, as a median
//! with its spread (lowest and highest).

use crate::observe::Throughput;

/// Per round: at-least-once and exactly-once against that round's
/// passthrough, steady and wall.
pub(crate) struct Ratios {
    al_steady: Vec<f64>,
    al_wall: Vec<f64>,
    eos_steady: Vec<f64>,
    eos_wall: Vec<f64>,
}

impl Ratios {
    /// `rounds`: passthrough, at-least-once, exactly-once of each round.
    pub(crate) fn of(rounds: &[[Throughput; 3]]) -> Ratios {
        let steady =
            |i: usize| -> Vec<f64> { rounds.iter().map(|r| r[i].steady / r[0].steady).collect() };
        let wall = |i: usize| -> Vec<f64> {
            rounds
                .iter()
                .map(|r| r[0].wall.as_secs_f64() / r[i].wall.as_secs_f64())
                .collect()
        };
        Ratios {
            al_steady: steady(1),
            al_wall: wall(1),
            eos_steady: steady(2),
            eos_wall: wall(2),
        }
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "ratio to passthrough over {} rounds, median (lowest-highest): at-least-once steady {} wall {} (target >= 0.9x); exactly-once steady {} wall {} (target >= 0.8x)",
            self.al_steady.len(),
            spread(&self.al_steady),
            spread(&self.al_wall),
            spread(&self.eos_steady),
            spread(&self.eos_wall),
        )
    }
}

/// `0.91x (0.85-0.97)`.
fn spread(v: &[f64]) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let (lo, hi) = (v[0], v[v.len() - 1]);
    format!("{:.2}x ({lo:.2}-{hi:.2})", v[v.len() / 2])
}
