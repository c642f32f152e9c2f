//! Batch hooks: `before_batch` on a batch's hosts before any of their
//! tasks, `after_batch` once they all ended, whatever became of them. A
//! batch is journaled when it begins and when `after_batch` has put it
//! back, so that a batch a crash, a stop or a failed `after_batch` left
//! open (drained) is put back first thing on `--resume`, before any other
//! batch begins.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::event::{HostEnd, PlayEvent, PlayReport};
use super::host::HostRun;
use super::journal::{now, Entry};
use super::schedule::{PendingHost, Rollout};
use super::Phase;

/// A batch a resumed journal shows begun and never put back, with its
/// hosts' runs.
pub struct OpenBatch {
    pub number: usize,
    pub of: usize,
    pub runs: Vec<HostRun>,
}

/// Gives a host the variables of its batch, and the batch's `run_once`
/// outcomes (by an id of its own: a resumed run numbers batches from 1
/// again, after putting back the last run's).
pub fn join_batch(run: &mut HostRun, names: &str, (number, of): (usize, usize), id: usize) {
    run.vars.insert("batch.hosts".into(), names.to_string());
    run.vars.insert("batch.number".into(), number.to_string());
    run.vars.insert("batch.count".into(), of.to_string());
    run.batch = id;
}

/// A host the batch's `before_batch` kept from its tasks, and how it ended.
pub type Refused = (HostRun, HostEnd);

impl Rollout {
    /// Journals the batch and runs `before_batch` on all its hosts. Hosts
    /// it failed (or a stop kept from their tasks) come back as ended,
    /// untouched by their tasks.
    pub(super) async fn begin_batch(
        &self,
        mut members: Vec<(usize, PendingHost)>,
        (number, of): (usize, usize),
        report: &mut PlayReport,
    ) -> Vec<(usize, Result<PendingHost, Refused>)> {
        let hosts: Vec<String> = members.iter().map(|(_, h)| h.run.label.clone()).collect();
        let names = hosts.join(" ");
        let id = self.ctx.once.new_batch();
        for (_, pending) in &mut members {
            join_batch(&mut pending.run, &names, (number, of), id);
        }
        self.ctx
            .recorder
            .record(Entry::BatchBegin {
                number,
                of,
                hosts,
                time: now(),
            })
            .await;
        let runs = members.iter_mut().map(|(_, h)| &mut h.run);
        let ends = self.hook(Phase::BeforeBatch, runs).await;
        let mut ready = Vec::with_capacity(members.len());
        for ((position, pending), end) in members.into_iter().zip(ends) {
            let outcome = match end {
                HostEnd::Done if !self.ctx.stop.is_cancelled() => Ok(pending),
                HostEnd::Done | HostEnd::Stopped => {
                    report.not_started.push(pending.run.label.clone());
                    Err((pending.run, HostEnd::Stopped))
                }
                HostEnd::Failed(why) => {
                    let end = HostEnd::Failed(why.map(|w| format!("before_batch: {w}")));
                    Err((pending.run, end))
                }
            };
            ready.push((position, outcome));
        }
        ready
    }

    /// A batch hook on several hosts at once; each host's end, in order.
    async fn hook(&self, phase: Phase, runs: impl Iterator<Item = &mut HostRun>) -> Vec<HostEnd> {
        let runs: Vec<&mut HostRun> = runs.collect();
        if self.ctx.play.phase(phase).is_empty() {
            return vec![HostEnd::Done; runs.len()];
        }
        join_all(runs.into_iter().map(|run| run.run_phase(phase, 0))).await
    }

    /// `after_batch` for every batch whose hosts have all ended.
    pub(super) async fn end_batches(&self, batches: &mut Batches, report: &mut PlayReport) {
        while let Some((number, runs)) = batches.complete() {
            self.put_back(number, runs, report).await;
        }
    }

    /// Puts back the batches a resumed journal shows left open, before
    /// anything else runs.
    pub(super) async fn put_back_open(&self, open: Vec<OpenBatch>, report: &mut PlayReport) {
        for mut batch in open {
            let names: Vec<String> = batch.runs.iter().map(|r| r.label.clone()).collect();
            self.emit(PlayEvent::Notice(format!(
                "batch {}/{} ({}) was left open by the run before: after_batch first",
                batch.number,
                batch.of,
                names.join(" ")
            )));
            let id = self.ctx.once.new_batch();
            for run in &mut batch.runs {
                join_batch(run, &names.join(" "), (batch.number, batch.of), id);
            }
            self.put_back(batch.number, batch.runs, report).await;
        }
    }

    /// `after_batch` on a batch's hosts, then the batch journaled as put
    /// back. A host whose `after_batch` failed fails, and the rollout
    /// stops: a batch that could not be put back (undrained) must not be
    /// followed by another; the batch stays open for `--resume`.
    async fn put_back(&self, number: usize, mut runs: Vec<HostRun>, report: &mut PlayReport) {
        let ends = self.hook(Phase::AfterBatch, runs.iter_mut()).await;
        let put_back = ends.iter().all(|end| *end == HostEnd::Done);
        let mut failures = Vec::new();
        for (run, end) in runs.iter_mut().zip(ends) {
            run.disconnect().await;
            match end {
                HostEnd::Failed(why) => {
                    failures.push((run.label.clone(), why.map(|w| format!("after_batch: {w}"))))
                }
                // Aborted: the host is not through until its batch is put
                // back, which --resume does first.
                HostEnd::Stopped if report.done.contains(&run.label) => {
                    report.done.retain(|done| *done != run.label);
                    report.stopped.push(run.label.clone());
                }
                _ => {}
            }
        }
        // Aborted (the second Ctrl-C): the batch stays open for --resume.
        if put_back {
            let entry = Entry::BatchEnd {
                number,
                time: now(),
            };
            self.ctx.recorder.record(entry).await;
            return;
        }
        if failures.is_empty() {
            return;
        }
        let reason = format!(
            "after_batch failed on {}: {}",
            failures[0].0, failures[0].1.detail
        );
        for (host, why) in failures {
            report.done.retain(|done| *done != host);
            report.earlier.done.retain(|done| *done != host);
            report.failed.retain(|(failed, _)| *failed != host);
            report.failed.push((host.clone(), why.reason.clone()));
            let end = HostEnd::Failed(why);
            self.emit(PlayEvent::HostEnd { host, end });
        }
        self.stop(report, reason).await;
    }
}

/// The hosts of each batch still running, and those ended, kept for the
/// batch's `after_batch`.
pub struct Batches {
    /// The batch each host position rolls in.
    of: Vec<usize>,
    running: BTreeMap<usize, usize>,
    ended: BTreeMap<usize, Vec<HostRun>>,
}

impl Batches {
    pub fn new(hosts: usize) -> Batches {
        Batches {
            of: vec![0; hosts],
            running: BTreeMap::new(),
            ended: BTreeMap::new(),
        }
    }

    /// The host at `position` rolls in batch `number`.
    pub fn joined(&mut self, position: usize, number: usize) {
        self.of[position] = number;
        *self.running.entry(number).or_default() += 1;
    }

    /// The host at `position` ended.
    pub fn ended(&mut self, position: usize, run: HostRun) {
        let number = self.of[position];
        self.ended.entry(number).or_default().push(run);
        self.lost(position);
    }

    /// The host at `position` is gone without its run (it panicked, or
    /// never started).
    pub fn lost(&mut self, position: usize) {
        if let Some(running) = self.running.get_mut(&self.of[position]) {
            *running = running.saturating_sub(1);
        }
    }

    /// A batch none of whose hosts still runs: its number and ended hosts.
    fn complete(&mut self) -> Option<(usize, Vec<HostRun>)> {
        let (&number, _) = self.running.iter().find(|(_, &running)| running == 0)?;
        self.running.remove(&number);
        Some((number, self.ended.remove(&number).unwrap_or_default()))
    }
}
