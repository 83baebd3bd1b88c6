//! Helpers shared by the simulated-network scenario tests.

use sockstate::sim::Sim;

/// The seeds each scenario runs under: `SIM_SEEDS=n` (default 24).
pub fn seeds() -> std::ops::Range<u64> {
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    0..n
}

/// Fails with the seed and the end of the transcript.
#[track_caller]
pub fn ensure(sim: &Sim, seed: u64, ok: bool, what: &str) {
    if !ok {
        let text = sim.transcript_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        panic!("seed {seed}: {what}\n--- transcript (last 80 lines) ---\n{tail}");
    }
}

/// No invariant broken on any host, and the run ended by itself.
#[track_caller]
pub fn clean(sim: &Sim, seed: u64) {
    let v = sim.violations();
    ensure(sim, seed, v.is_empty(), &format!("violations: {v:#?}"));
    ensure(sim, seed, sim.stopped().is_none(), "the run hit a limit");
}
