//! The rolling policy, as a small state machine with no I/O: which hosts of
//! a play may start now (a batch when the last one is over, or one more
//! host while the window has room, ramping as `serial` says), and when no
//! host may start any more (more than `max_fail` failed, or a stop). The
//! scheduler tells it what happened; it says what may happen next.

use std::ops::Range;

use super::spec::{Amount, Mode};

/// What may happen next, by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Start the hosts at these positions of the play's order; in batch
    /// mode, as batch `number` of `of`.
    Start {
        hosts: Range<usize>,
        batch: Option<(usize, usize)>,
    },
    /// Nothing may start until a running host ends.
    Wait,
    /// Nothing more will start.
    Done,
}

/// Where a play's rolling stands.
#[derive(Debug)]
pub struct Rolling {
    mode: Mode,
    /// Batch sizes: the serial ramp, its last step repeated.
    sizes: Vec<usize>,
    max_fail: usize,
    /// Hosts this run has to roll.
    count: usize,
    started: usize,
    running: usize,
    failed: usize,
    batches_begun: usize,
    stopped: bool,
}

impl Rolling {
    /// `count` hosts to roll out of the play's `total` (percentages are of
    /// the total, so a resumed play ramps as the first run did), with
    /// `failed` hosts failed already (in preflight).
    pub fn new(
        mode: Mode,
        serial: &[Amount],
        total: usize,
        count: usize,
        max_fail: usize,
        failed: usize,
    ) -> Self {
        Rolling {
            mode,
            sizes: batch_sizes(serial, total, count),
            max_fail,
            count,
            started: 0,
            running: 0,
            failed,
            batches_begun: 0,
            stopped: failed > max_fail,
        }
    }

    /// The batch sizes, for the plan the operator sees first.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// What may start now; what it admits counts as started.
    pub fn admit(&mut self) -> Admit {
        if self.stopped || self.started == self.count {
            return match self.running {
                0 => Admit::Done,
                _ => Admit::Wait,
            };
        }
        let (size, batch) = match self.mode {
            Mode::Batch if self.running > 0 => return Admit::Wait,
            Mode::Batch => {
                self.batches_begun += 1;
                let number = self.batches_begun;
                (self.sizes[number - 1], Some((number, self.sizes.len())))
            }
            Mode::Window if self.running >= self.window_at(self.started) => return Admit::Wait,
            Mode::Window => (1, None),
        };
        let hosts = self.started..self.started + size;
        self.started += size;
        self.running += size;
        Admit::Start { hosts, batch }
    }

    /// A started host ended. True when its failure made the play stop
    /// (more than `max_fail` hosts have failed).
    pub fn ended(&mut self, failed: bool) -> bool {
        self.running = self.running.saturating_sub(1);
        self.failed += usize::from(failed);
        let stops = failed && !self.stopped && self.failed > self.max_fail;
        self.stopped |= stops;
        stops
    }

    /// The operator stopped the play: no host starts any more.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether hosts may still start.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Positions never started (all of them once the policy is done).
    pub fn never_started(&self) -> Range<usize> {
        self.started..self.count
    }

    /// Window mode: the most hosts in flight when the host at `position`
    /// starts is the size of the batch that position falls in.
    fn window_at(&self, position: usize) -> usize {
        let mut end = 0;
        for &size in &self.sizes {
            end += size;
            if position < end {
                return size;
            }
        }
        self.sizes.last().copied().unwrap_or(1)
    }
}

/// Batch sizes for `count` hosts: the serial ramp, its last step repeated;
/// percentages are of `total`.
pub fn batch_sizes(serial: &[Amount], total: usize, count: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = count;
    let mut steps = serial.iter();
    let mut step = serial.last().copied().unwrap_or(Amount::Count(1));
    while left > 0 {
        if let Some(next) = steps.next() {
            step = *next;
        }
        let size = step.of(total).clamp(1, left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(hosts: Range<usize>, batch: Option<(usize, usize)>) -> Admit {
        Admit::Start { hosts, batch }
    }

    #[test]
    fn serial_ramps_then_repeats() {
        let serial = [Amount::Count(1), Amount::Percent(10.0)];
        assert_eq!(
            batch_sizes(&serial, 20, 20),
            [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]
        );
        assert_eq!(batch_sizes(&[Amount::Percent(100.0)], 5, 5), [5]);
        assert_eq!(batch_sizes(&[Amount::Count(3)], 10, 4), [3, 1]);
    }

    #[test]
    fn a_batch_starts_when_the_last_one_is_over() {
        let serial = [Amount::Count(1), Amount::Count(2)];
        let mut rolling = Rolling::new(Mode::Batch, &serial, 4, 4, 0, 0);
        assert_eq!(rolling.admit(), start(0..1, Some((1, 3))));
        assert_eq!(rolling.admit(), Admit::Wait);
        assert!(!rolling.ended(false));
        assert_eq!(rolling.admit(), start(1..3, Some((2, 3))));
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Wait, "half a batch is not over");
        rolling.ended(false);
        assert_eq!(rolling.admit(), start(3..4, Some((3, 3))));
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Done);
    }

    #[test]
    fn a_window_keeps_its_step_in_flight() {
        // The window is the size of the step the next host falls in.
        let serial = [Amount::Count(1), Amount::Count(2)];
        let mut rolling = Rolling::new(Mode::Window, &serial, 5, 5, 5, 0);
        assert_eq!(rolling.admit(), start(0..1, None));
        assert_eq!(rolling.admit(), start(1..2, None));
        assert_eq!(rolling.admit(), Admit::Wait, "two in flight");
        rolling.ended(false);
        assert_eq!(rolling.admit(), start(2..3, None));
        assert_eq!(rolling.admit(), Admit::Wait);
        rolling.ended(true);
        assert_eq!(rolling.admit(), start(3..4, None));
        rolling.ended(false);
        assert_eq!(rolling.admit(), start(4..5, None));
        assert_eq!(rolling.admit(), Admit::Wait);
        rolling.ended(false);
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Done);
    }

    #[test]
    fn more_than_max_fail_stops_but_running_hosts_finish() {
        let mut rolling = Rolling::new(Mode::Window, &[Amount::Count(3)], 10, 10, 1, 0);
        for position in 0..3 {
            assert_eq!(rolling.admit(), start(position..position + 1, None));
        }
        assert!(!rolling.ended(true), "one failure is within max_fail 1");
        assert_eq!(rolling.admit(), start(3..4, None));
        assert!(rolling.ended(true), "the second failure stops the play");
        assert!(rolling.is_stopped());
        assert_eq!(rolling.admit(), Admit::Wait, "two hosts still run");
        assert!(!rolling.ended(true), "it stopped once");
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Done);
        assert_eq!(rolling.never_started(), 4..10);
    }

    #[test]
    fn preflight_failures_count_and_a_stop_is_final() {
        let stopped = Rolling::new(Mode::Batch, &[Amount::Count(2)], 4, 2, 1, 2);
        assert!(
            stopped.is_stopped(),
            "two preflight failures pass max_fail 1"
        );
        let mut rolling = Rolling::new(Mode::Batch, &[Amount::Count(2)], 4, 4, 4, 0);
        assert_eq!(rolling.admit(), start(0..2, Some((1, 2))));
        rolling.stop();
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Wait);
        rolling.ended(false);
        assert_eq!(rolling.admit(), Admit::Done);
        assert_eq!(rolling.never_started(), 2..4);
    }

    #[test]
    fn a_resumed_play_ramps_by_the_whole_play() {
        // 20 hosts, 12 finished earlier: 10% is still 2 hosts, not 1.
        let serial = [Amount::Percent(10.0)];
        let rolling = Rolling::new(Mode::Batch, &serial, 20, 8, 0, 0);
        assert_eq!(rolling.batch_sizes(), [2, 2, 2, 2]);
    }
}
