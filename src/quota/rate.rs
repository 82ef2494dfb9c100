//! Kafka's sampled rate (`SampledStat` + `Rate` with `SampledTotal`), the measure every
//! client quota is checked against, re-implemented so that throttle times come out as
//! Kafka's do for the same traffic.

/// `quota.window.size.seconds` (Kafka's default, 1 s), in milliseconds.
pub const WINDOW_MS: u64 = 1000;
/// `quota.window.num` (Kafka's default, 11).
pub const SAMPLES: usize = 11;

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When the sample's window started (Kafka's `lastWindowMs`).
    start_ms: u64,
    value: f64,
}

/// A value's total over the last [`SAMPLES`] windows of [`WINDOW_MS`], as a rate per second.
///
/// It exists because the throttle time Kafka tells a client depends on the exact shape of
/// this measure: samples are reset when they grow older than all windows together, and the
/// window a rate is divided by is never shorter than `SAMPLES - 1` windows, so a new
/// client may send that many windows' worth of its quota before it is throttled.
#[derive(Clone, Debug)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
    /// When a value was last recorded (for dropping rates nobody uses).
    pub last_record_ms: u64,
}

impl Rate {
    pub fn new(now_ms: u64) -> Rate {
        Rate {
            samples: vec![Sample {
                start_ms: now_ms,
                value: 0.0,
            }],
            current: 0,
            last_record_ms: now_ms,
        }
    }

    /// Adds `value` at `now_ms` (negative to take back what a throttled fetch did not send).
    pub fn record(&mut self, value: f64, now_ms: u64) {
        self.last_record_ms = now_ms;
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= WINDOW_MS {
            self.current = (self.current + 1) % SAMPLES;
            let fresh = Sample {
                start_ms: now_ms,
                value: 0.0,
            };
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Kafka's `purgeObsoleteSamples`: a sample older than all the windows together is reset.
    fn purge(&mut self, now_ms: u64) {
        let expire = SAMPLES as u64 * WINDOW_MS;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= expire {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// Kafka's `Rate.windowSize`: the time the samples cover, at least `SAMPLES - 1` windows
    /// and at least 1 ms.
    pub fn window_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / WINDOW_MS;
        let min_full = SAMPLES as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * WINDOW_MS;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        let window = self.window_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window as f64 / 1000.0)
    }

    /// Kafka's `QuotaUtils.throttleTime` after a record: 0 within `bound`, else the delay that
    /// brings the rate back to it, `(rate - bound) / bound * window`.
    pub fn throttle_ms(&mut self, bound: f64, now_ms: u64) -> u64 {
        let rate = self.measure(now_ms);
        if rate <= bound || bound <= 0.0 {
            return 0;
        }
        let window = self.window_ms(now_ms) as f64;
        ((rate - bound) / bound * window)
            .round()
            .clamp(0.0, u32::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rate_is_spread_over_ten_windows() {
        let mut r = Rate::new(0);
        r.record(1000.0, 0);
        // 1000 over the minimum window of 10 s.
        assert_eq!(r.window_ms(0), 10_000);
        assert!((r.measure(0) - 100.0).abs() < 1e-9);
        assert_eq!(r.throttle_ms(100.0, 0), 0);
        r.record(1000.0, 500);
        // 2000 / 10.5 s... the window is 10 full windows until 1 s has passed.
        assert_eq!(r.window_ms(500), 10_500);
        let t = r.throttle_ms(100.0, 500);
        let expected = ((2000.0 / 10.5 - 100.0) / 100.0 * 10_500.0_f64).round() as u64;
        assert_eq!(t, expected);
    }

    #[test]
    fn old_samples_drop_out_and_negative_records_take_back() {
        let mut r = Rate::new(0);
        r.record(5000.0, 0);
        r.record(-5000.0, 0);
        assert_eq!(r.measure(0), 0.0);
        r.record(5000.0, 100);
        assert!(r.measure(100) > 0.0);
        // After 11 windows the sample is reset.
        assert_eq!(r.measure(11_200), 0.0);
    }

    #[test]
    fn steady_traffic_at_the_bound_is_not_throttled() {
        let mut r = Rate::new(0);
        let mut throttled = 0;
        for ms in (0..30_000).step_by(100) {
            r.record(99.0, ms);
            throttled += r.throttle_ms(1000.0, ms);
        }
        assert_eq!(throttled, 0);
        // Twice the bound is.
        for ms in (30_000..40_000).step_by(100) {
            r.record(200.0, ms);
        }
        assert!(r.throttle_ms(1000.0, 40_000) > 0);
    }
}
