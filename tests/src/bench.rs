//! What the benchmarks share.

/// Each variant's time against the first's, measured in alternation (100 rounds of 50 calls
/// each, the order rotating), printed as the median and quartiles of the per-round ratios: on a
/// shared machine the load drifts over the seconds criterion spends on each function, which
/// moves separately measured times by more than the few percent compared here.
pub fn paired(group: &str, variants: &[(&str, &dyn Fn())]) {
    let (rounds, calls) = (100, 50);
    let mut per_round = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        let mut times = vec![0.0; variants.len()];
        for k in 0..variants.len() {
            let k = (k + round) % variants.len();
            let start = std::time::Instant::now();
            for _ in 0..calls {
                (variants[k].1)();
            }
            times[k] = start.elapsed().as_secs_f64();
        }
        for (k, t) in times.iter().enumerate() {
            per_round[k].push(t / times[0]);
        }
    }
    for (k, ratios) in per_round.iter_mut().enumerate().skip(1) {
        ratios.sort_by(f64::total_cmp);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f) as usize];
        println!("{group} paired: {} / {} = {:.3} (quartiles {:.3}..{:.3})", variants[k].0, variants[0].0, q(0.5), q(0.25), q(0.75));
    }
}
