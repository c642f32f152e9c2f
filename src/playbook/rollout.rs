//! The rolling strategy: preflight on every host first, then hosts in
//! batches (waves) or a sliding window, ramping as `serial` says, stopping
//! the moment more than `max_fail` hosts have failed or the operator asks.
//! Emits [`PlayEvent`]s; prints nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::host::{Context, HostEnd, HostRun};
use super::journal::{now, Entry, HostProgress};
use super::spec::{Amount, Mode, Order};
use super::Phase;

/// How one task went on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    /// Done; nothing to say (an assertion held, a pause ended).
    Ok,
    /// Done, and it changed the host (a command ran, a file was installed).
    Changed,
    /// Done, with something to say (counts, reboot phase durations).
    Done(String),
    /// The host already was as wanted (`skip_unchanged`).
    Unchanged,
    /// A guard (`creates`, `unless`) said the task is not needed.
    Skipped(String),
    Failed,
    /// Killed by a second Ctrl-C; the task runs again on `--resume`.
    Aborted,
    /// `--check`: what the task would do.
    WouldRun(String),
}

impl TaskStatus {
    /// The word in the journal and on the status line.
    pub fn journal_name(&self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Ok | TaskStatus::Done(_) => "ok",
            TaskStatus::Changed => "changed",
            TaskStatus::Unchanged => "unchanged",
            TaskStatus::Skipped(_) => "skipped",
            TaskStatus::Failed => "failed",
            TaskStatus::Aborted => "aborted",
            TaskStatus::WouldRun(_) => "would run",
        }
    }
}

/// Something that happened during a rollout, for printers.
#[derive(Debug, Clone)]
pub enum PlayEvent {
    /// Before anything runs: the hosts in the order and groups they will go.
    Plan {
        playbook: String,
        batches: Vec<Vec<String>>,
        mode: Mode,
        max_fail: usize,
        /// What a resumed journal shows of hosts finished before.
        earlier: Earlier,
        journal: Option<PathBuf>,
    },
    /// Preflight begins on this many hosts.
    Preflight {
        hosts: usize,
    },
    /// A batch begins (batch mode), numbered from 1.
    Batch {
        number: usize,
        of: usize,
        hosts: Vec<String>,
    },
    Task {
        host: String,
        phase: Phase,
        task: String,
        status: TaskStatus,
        duration: Duration,
        detail: String,
    },
    HostEnd {
        host: String,
        end: HostEnd,
    },
    Notice(String),
}

/// A host still to run, as the journal (if any) left it.
pub struct PendingHost {
    pub run: HostRun,
    pub progress: HostProgress,
}

/// Hosts a resumed journal shows finished in an earlier run.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// Done: not contacted again.
    pub done: Vec<String>,
    /// Failed and left failed (`--skip-failed`), with why.
    pub failed: Vec<(String, String)>,
    /// Failed, and run again now.
    pub retried: usize,
}

/// How a rollout ended; `earlier` accounts for the hosts of the play this
/// run did not touch, so that every host is in the report.
#[derive(Debug, Default)]
pub struct RolloutReport {
    pub earlier: Earlier,
    pub done: Vec<String>,
    /// Host and where and why it failed.
    pub failed: Vec<(String, String)>,
    /// Stopped mid-way (Ctrl-C); `--resume` continues them.
    pub stopped: Vec<String>,
    pub not_started: Vec<String>,
    /// Why no new host was started, when it came to that.
    pub stop_reason: Option<String>,
    pub elapsed: Duration,
}

/// A rollout ready to go.
pub struct Rollout {
    pub ctx: Arc<Context>,
    pub hosts: Vec<PendingHost>,
    /// Hosts of the play, finished ones included: what percentages are of.
    pub total: usize,
    /// Most hosts in preflight at once.
    pub parallelism: usize,
    /// `--start-at-task`: hosts that have not started begin here.
    pub start_at: usize,
}

impl Rollout {
    pub async fn run(mut self, earlier: Earlier) -> RolloutReport {
        let clock = Instant::now();
        let playbook = Arc::clone(&self.ctx.playbook);
        order_hosts(&mut self.hosts, playbook.order);
        let max_fail = playbook.max_fail.of(self.total);
        let sizes = batch_sizes(&playbook.serial, self.total, self.hosts.len());
        self.emit(PlayEvent::Plan {
            playbook: playbook.name.clone(),
            batches: split(&self.hosts, &sizes)
                .into_iter()
                .map(|batch| batch.iter().map(|h| h.run.label.clone()).collect())
                .collect(),
            mode: playbook.mode,
            max_fail,
            earlier: earlier.clone(),
            journal: self.ctx.journal.as_ref().map(|j| j.path().to_path_buf()),
        });
        let mut report = RolloutReport {
            earlier,
            ..RolloutReport::default()
        };
        let hosts = self.preflight(&mut report).await;
        if report.failed.len() > max_fail {
            let reason = format!(
                "preflight failed on {} host(s), more than max_fail ({max_fail}); no host was changed",
                report.failed.len()
            );
            self.stop(&mut report, reason).await;
        }
        self.roll(hosts, &sizes, max_fail, &mut report).await;
        report.elapsed = clock.elapsed();
        report
    }

    /// Facts and preflight on every host that has not started its tasks,
    /// `parallelism` at a time. Returns the hosts that may go on.
    async fn preflight(&mut self, report: &mut RolloutReport) -> Vec<PendingHost> {
        let (fresh, resumed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.hosts)
            .into_iter()
            .partition(|h| !h.progress.started_tasks);
        self.emit(PlayEvent::Preflight { hosts: fresh.len() });
        let slots = Arc::new(Semaphore::new(self.parallelism.max(1)));
        let mut tasks = JoinSet::new();
        for (position, mut pending) in fresh.into_iter().enumerate() {
            let slots = Arc::clone(&slots);
            let stop = self.ctx.stop.clone();
            let span = tracing::info_span!("host", host = %pending.run.label);
            tasks.spawn(
                async move {
                    let _slot = slots.acquire_owned().await;
                    let end = match stop.is_cancelled() {
                        true => HostEnd::Stopped,
                        false => match pending.run.gather_facts().await {
                            Ok(()) => pending.run.run_phase(Phase::Preflight, 0).await,
                            Err(error) => HostEnd::Failed(format!("facts: {error}")),
                        },
                    };
                    (position, pending, end)
                }
                .instrument(span),
            );
        }
        let mut ready: Vec<(usize, PendingHost)> = Vec::new();
        let mut interrupted = false;
        while let Some(joined) = tasks.join_next().await {
            let Ok((position, mut pending, end)) = joined else {
                continue;
            };
            match end {
                HostEnd::Done => ready.push((position, pending)),
                HostEnd::Stopped => {
                    interrupted = true;
                    report.not_started.push(pending.run.label.clone());
                }
                HostEnd::Failed(_) => self.finish(&mut pending.run, end, report).await,
            }
        }
        if interrupted {
            report
                .not_started
                .extend(ready.iter().map(|(_, h)| h.run.label.clone()));
            self.stop(
                report,
                "interrupted during preflight; no host was changed".into(),
            )
            .await;
            return Vec::new();
        }
        ready.sort_by_key(|(position, _)| *position);
        let mut hosts: Vec<PendingHost> = resumed;
        hosts.extend(ready.into_iter().map(|(_, h)| h));
        hosts
    }

    /// The rolling part: batches or window, until done or stopped.
    async fn roll(
        &self,
        hosts: Vec<PendingHost>,
        sizes: &[usize],
        max_fail: usize,
        report: &mut RolloutReport,
    ) {
        let window = window_sizes(sizes);
        let mut queue = hosts.into_iter().enumerate().peekable();
        let mut running = JoinSet::new();
        let mut batch_number = 0;
        loop {
            while !self.ctx.stop.is_cancelled() {
                let Some(&(position, _)) = queue.peek() else {
                    break;
                };
                let may_start = match self.ctx.playbook.mode {
                    Mode::Batch => running.is_empty(),
                    Mode::Window => running.len() < window[position],
                };
                if !may_start {
                    break;
                }
                let count = match self.ctx.playbook.mode {
                    Mode::Batch => sizes[batch_number],
                    Mode::Window => 1,
                };
                let batch: Vec<PendingHost> = queue.by_ref().take(count).map(|(_, h)| h).collect();
                if self.ctx.playbook.mode == Mode::Batch {
                    batch_number += 1;
                    self.emit(PlayEvent::Batch {
                        number: batch_number,
                        of: sizes.len(),
                        hosts: batch.iter().map(|h| h.run.label.clone()).collect(),
                    });
                }
                for pending in batch {
                    let span = tracing::info_span!("host", host = %pending.run.label);
                    running.spawn(run_host(pending, self.start_at).instrument(span));
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let Ok((mut run, end)) = joined else { continue };
            self.finish(&mut run, end, report).await;
            if report.failed.len() > max_fail && !self.ctx.stop.is_cancelled() {
                let names: Vec<_> = report.failed.iter().map(|(h, _)| h.as_str()).collect();
                let reason = format!(
                    "{} host(s) failed, more than max_fail ({max_fail}): {}",
                    report.failed.len(),
                    names.join(", ")
                );
                self.stop(report, reason).await;
            }
        }
        report.not_started.extend(queue.map(|(_, h)| h.run.label));
        if self.ctx.stop.is_cancelled() && report.stop_reason.is_none() {
            report.stop_reason = Some("interrupted".into());
        }
    }

    /// Records how a host ended.
    async fn finish(&self, run: &mut HostRun, end: HostEnd, report: &mut RolloutReport) {
        run.disconnect().await;
        let label = run.label.clone();
        match &end {
            HostEnd::Done => report.done.push(label.clone()),
            HostEnd::Failed(why) => report.failed.push((label.clone(), why.clone())),
            HostEnd::Stopped => report.stopped.push(label.clone()),
        }
        if end != HostEnd::Stopped {
            run.journal(Entry::HostEnd {
                host: label.clone(),
                ok: end == HostEnd::Done,
                message: match &end {
                    HostEnd::Failed(why) => Some(why.clone()),
                    _ => None,
                },
                time: now(),
            })
            .await;
        }
        self.emit(PlayEvent::HostEnd { host: label, end });
    }

    async fn stop(&self, report: &mut RolloutReport, reason: String) {
        self.ctx.stop.cancel();
        let entry = Entry::Stop {
            reason: reason.clone(),
            time: now(),
        };
        if let Some(journal) = &self.ctx.journal {
            if let Err(error) = journal.record(&entry).await {
                self.emit(PlayEvent::Notice(error.to_string()));
            }
        }
        self.emit(PlayEvent::Notice(format!("stopping: {reason}")));
        report.stop_reason = Some(reason);
    }

    fn emit(&self, event: PlayEvent) {
        let _ = self.ctx.events.send(event);
    }
}

/// One host's rolling part: from where its journal left it, or the start.
async fn run_host(mut pending: PendingHost, start_at: usize) -> (HostRun, HostEnd) {
    let run = &mut pending.run;
    let resumed = pending.progress.started_tasks;
    // A host in the middle of a reboot may be down; the reboot gathers its
    // facts once the host is back.
    if resumed && pending.progress.reboot.is_none() {
        if let Err(error) = run.gather_facts().await {
            return (pending.run, HostEnd::Failed(format!("facts: {error}")));
        }
    }
    run.reboot_mark = pending.progress.reboot.clone();
    let end = match pending.progress.next {
        Some((Phase::OnFailure, first)) if resumed => {
            match Box::pin(run.run_phase(Phase::OnFailure, first)).await {
                HostEnd::Done => {
                    HostEnd::Failed("a task failed before the resume (on_failure ran)".into())
                }
                other => other,
            }
        }
        Some((Phase::Tasks, first)) if resumed => run.run_phase(Phase::Tasks, first).await,
        _ => run.run_phase(Phase::Tasks, start_at).await,
    };
    (pending.run, end)
}

fn order_hosts(hosts: &mut [PendingHost], order: Order) {
    match order {
        Order::Inventory => {}
        Order::Sorted => hosts.sort_by(|a, b| a.run.label.cmp(&b.run.label)),
        Order::Shuffle => {
            // xorshift seeded by the clock: no need for a crate to deal cards.
            let mut seed = (now() * 1e6) as u64 | 1;
            for i in (1..hosts.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                hosts.swap(i, (seed % (i as u64 + 1)) as usize);
            }
        }
    }
}

/// Batch sizes for `count` hosts: the serial ramp, its last step repeated.
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

/// Window mode: the most hosts in flight when host N starts is the size
/// of the batch N belongs to.
fn window_sizes(sizes: &[usize]) -> Vec<usize> {
    sizes
        .iter()
        .flat_map(|&size| std::iter::repeat_n(size, size))
        .collect()
}

fn split<'a, T>(items: &'a [T], sizes: &[usize]) -> Vec<Vec<&'a T>> {
    let mut rest = items;
    sizes
        .iter()
        .map(|&size| {
            let (batch, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            batch.iter().collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_ramps_then_repeats() {
        let serial = [Amount::Count(1), Amount::Percent(10.0)];
        assert_eq!(
            batch_sizes(&serial, 20, 20),
            [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]
        );
        assert_eq!(batch_sizes(&[Amount::Percent(100.0)], 5, 5), [5]);
        assert_eq!(batch_sizes(&[Amount::Count(3)], 10, 4), [3, 1]);
        assert_eq!(window_sizes(&[1, 2, 2]), [1, 2, 2, 2, 2]);
    }
}
