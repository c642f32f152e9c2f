//! The schedulers of a run, all on the one bounded fan-out
//! ([`FanOut`]): preflight on every host that has not started its tasks,
//! then the rolling of the hosts as the [`Rolling`] policy admits them
//! (batches or a window, stopping past max_fail or at the operator's word),
//! and `--check`. They emit [`PlayEvent`]s and build the [`PlayReport`];
//! they print nothing.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use std::time::Instant;

use super::batch::{Batches, OpenBatch};
use super::event::{Earlier, Failure, HostEnd, PlayEvent, PlayReport};
use super::host::{Context, HostRun};
use super::journal::{now, Entry};
use super::replay::HostProgress;
use super::rolling::{batch_sizes, Admit, Rolling};
use super::spec::Order;
use super::Phase;
use crate::engine::FanOut;

/// A host still to run, as the journal (if any) left it.
pub struct PendingHost {
    pub run: HostRun,
    pub progress: HostProgress,
}

/// A rollout ready to go.
pub struct Rollout {
    pub ctx: Arc<Context>,
    pub hosts: Vec<PendingHost>,
    /// Hosts of the play, finished ones included: what percentages are of.
    pub total: usize,
    /// Most hosts in preflight at once (`-p`).
    pub parallelism: usize,
    /// Most hosts in flight at all, whatever `serial` says: what the
    /// machine's open-files limit allows.
    pub max_in_flight: usize,
    /// `--start-at-task`: hosts that have not started begin here.
    pub start_at: usize,
    /// Batches a resumed journal shows left open: put back first.
    pub open: Vec<OpenBatch>,
}

impl Rollout {
    pub async fn run(mut self, earlier: Earlier) -> PlayReport {
        let clock = Instant::now();
        let playbook = Arc::clone(&self.ctx.play);
        order_hosts(&mut self.hosts, playbook.order);
        let max_fail = playbook.max_fail.allowed_of(self.total);
        self.emit_plan(max_fail, &earlier);
        let mut report = PlayReport {
            earlier,
            journal: self.ctx.recorder.journal_path(),
            ..PlayReport::default()
        };
        let open = std::mem::take(&mut self.open);
        self.put_back_open(open, &mut report).await;
        if report.stop_reason.is_some() {
            let labels = self.hosts.iter().map(|h| h.run.label.clone());
            report.not_started.extend(labels);
            report.elapsed = clock.elapsed();
            return report;
        }
        let hosts = self.preflight(&mut report).await;
        let mut rolling = Rolling::new(
            playbook.mode,
            &playbook.serial,
            self.total,
            hosts.len(),
            max_fail,
            report.failed.len(),
        );
        if rolling.is_stopped() && report.stop_reason.is_none() {
            let reason = format!(
                "preflight failed on {} host(s), more than max_fail ({max_fail}); no host was changed",
                report.failed.len()
            );
            self.stop(&mut report, reason).await;
        }
        self.roll(hosts, &mut rolling, max_fail, &mut report).await;
        report.elapsed = clock.elapsed();
        report
    }

    /// The hosts in the order and batches they are meant to go.
    fn emit_plan(&self, max_fail: usize, earlier: &Earlier) {
        let playbook = &self.ctx.play;
        let sizes = batch_sizes(&playbook.serial, self.total, self.hosts.len());
        let mut labels = self.hosts.iter().map(|h| h.run.label.clone());
        let batches = sizes
            .iter()
            .map(|&size| labels.by_ref().take(size).collect())
            .collect();
        self.emit(PlayEvent::Plan {
            playbook: playbook.name.clone(),
            play: playbook.number,
            batches,
            mode: playbook.mode,
            max_fail,
            earlier: earlier.clone(),
            journal: self.ctx.recorder.journal_path(),
            check: false,
        });
    }

    /// Facts and preflight on every host that has not started its tasks,
    /// `parallelism` at a time. Returns the hosts that may go on, in order.
    async fn preflight(&mut self, report: &mut PlayReport) -> Vec<PendingHost> {
        let (fresh, resumed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.hosts)
            .into_iter()
            .partition(|h| !h.progress.started_tasks);
        self.emit(PlayEvent::Preflight { hosts: fresh.len() });
        let mut fanout = FanOut::new(self.parallelism);
        let mut ready: Vec<Option<PendingHost>> = Vec::new();
        let mut interrupted = false;
        for (position, mut pending) in fresh.into_iter().enumerate() {
            ready.push(None);
            let label = pending.run.label.clone();
            let stop = self.ctx.stop.clone();
            let work = async move {
                let connector = &pending.run.ctx.connector;
                let refused = connector.sudo_password_refused().map(str::to_string);
                let end = match (stop.is_cancelled(), refused) {
                    (true, _) => HostEnd::Stopped,
                    // The same password would be refused here too (and
                    // counted against the account): not asked again.
                    (false, Some(host)) => {
                        let why = format!("not run: sudo refused the password on {host}");
                        HostEnd::Failed(Failure::said(why))
                    }
                    (false, None) => match pending.run.gather_facts().await {
                        Ok(()) => match pending.run.run_phase(Phase::Preflight, 0).await {
                            HostEnd::Done => match pending.run.load_sources().await {
                                Ok(()) => HostEnd::Done,
                                Err(why) => HostEnd::Failed(Failure::said(why)),
                            },
                            other => other,
                        },
                        Err(error) => HostEnd::Failed(Failure::of("facts", &error)),
                    },
                };
                (pending, end)
            };
            if !fanout.start(position, &label, &self.ctx.stop, work).await {
                interrupted = true;
                report.not_started.push(label);
            }
        }
        while let Some((position, joined)) = fanout.next().await {
            let Ok((mut pending, end)) = joined else {
                continue;
            };
            match end {
                HostEnd::Done => ready[position] = Some(pending),
                HostEnd::Stopped => {
                    interrupted = true;
                    report.not_started.push(pending.run.label.clone());
                }
                HostEnd::Failed(_) => self.finish(&mut pending.run, end, report).await,
            }
        }
        let ready = ready.into_iter().flatten();
        if interrupted {
            report
                .not_started
                .extend(ready.map(|h| h.run.label.clone()));
            report
                .not_started
                .extend(resumed.iter().map(|h| h.run.label.clone()));
            self.stop(
                report,
                "interrupted during preflight; no host was changed".into(),
            )
            .await;
            report.interrupted = true;
            return Vec::new();
        }
        let ready = self.one_per(ready.collect(), report).await;
        resumed.into_iter().chain(ready).collect()
    }

    /// `one_per:` keeps the first host of each distinct value; the others
    /// have nothing to do and are done.
    async fn one_per(&self, hosts: Vec<PendingHost>, report: &mut PlayReport) -> Vec<PendingHost> {
        let Some(template) = &self.ctx.play.one_per else {
            return hosts;
        };
        let mut chosen: Vec<String> = Vec::new();
        let mut values = HashSet::new();
        let mut kept = Vec::new();
        for mut pending in hosts {
            let end = match pending.run.expand(template) {
                Ok(value) if values.insert(value.clone()) => {
                    chosen.push(format!("{} ({value})", pending.run.label));
                    kept.push(pending);
                    continue;
                }
                Ok(_) => HostEnd::Done,
                Err(error) => HostEnd::Failed(Failure::said(format!("one_per: {error}"))),
            };
            self.finish(&mut pending.run, end, report).await;
        }
        if !chosen.is_empty() {
            self.emit(PlayEvent::Notice(format!(
                "one host per `{template}`: {}",
                chosen.join(", ")
            )));
        }
        kept
    }

    /// The rolling part: whatever the policy admits, until it is done,
    /// with the batch hooks around each batch (window mode: each host).
    async fn roll(
        &self,
        hosts: Vec<PendingHost>,
        rolling: &mut Rolling,
        max_fail: usize,
        report: &mut PlayReport,
    ) {
        let limit = rolling.batch_sizes().iter().copied().max().unwrap_or(1);
        let mut flight = Flight {
            fanout: FanOut::new(limit.min(self.max_in_flight)),
            labels: hosts.iter().map(|h| h.run.label.clone()).collect(),
            batches: Batches::new(hosts.len()),
            queue: hosts.into_iter().map(Some).collect(),
        };
        loop {
            if self.ctx.stop.is_cancelled() {
                rolling.stop();
            }
            match rolling.admit() {
                Admit::Start { hosts, batch } => {
                    self.start_batch(hosts, batch, &mut flight, rolling, max_fail, report)
                        .await;
                    continue;
                }
                Admit::Done => break,
                Admit::Wait => {}
            }
            let Some((position, joined)) = flight.fanout.next().await else {
                break;
            };
            let failed = match joined {
                Ok((run, end)) => {
                    let failed = matches!(end, HostEnd::Failed(_));
                    self.end_host(run, end, position, &mut flight.batches, report)
                        .await;
                    failed
                }
                Err(_) => {
                    flight.batches.lost(position);
                    true
                }
            };
            self.end_batches(&mut flight.batches, report).await;
            if rolling.ended(failed) {
                self.stop(report, over_max_fail(report, max_fail)).await;
            }
        }
        let labels = &flight.labels;
        let never: Vec<String> = rolling.never_started().map(|p| labels[p].clone()).collect();
        report.not_started.extend(never);
        self.note_operator_stop(report);
    }

    /// Starts the hosts the policy admitted, as a batch: announced (batch
    /// mode), through `before_batch`, then each on the fan-out.
    async fn start_batch(
        &self,
        hosts: Range<usize>,
        batch: Option<(usize, usize)>,
        flight: &mut Flight,
        rolling: &mut Rolling,
        max_fail: usize,
        report: &mut PlayReport,
    ) {
        let (number, of) = batch.unwrap_or((hosts.start + 1, flight.labels.len()));
        if batch.is_some() {
            let names = flight.labels[hosts.clone()].to_vec();
            self.emit(PlayEvent::Batch {
                number,
                of,
                hosts: names,
            });
        }
        let members = hosts
            .filter_map(|p| Some((p, flight.queue[p].take()?)))
            .collect();
        let ready = self.begin_batch(members, (number, of), report).await;
        for (position, outcome) in ready {
            flight.batches.joined(position, number);
            let pending = match outcome {
                Ok(pending) => pending,
                Err((run, end)) => {
                    let failed = matches!(end, HostEnd::Failed(_));
                    self.end_host(run, end, position, &mut flight.batches, report)
                        .await;
                    if rolling.ended(failed) {
                        self.stop(report, over_max_fail(report, max_fail)).await;
                    }
                    continue;
                }
            };
            let work = run_host(pending, self.start_at);
            let label = &flight.labels[position];
            if !flight
                .fanout
                .start(position, label, &self.ctx.stop, work)
                .await
            {
                report.not_started.push(label.clone());
                rolling.ended(false);
                flight.batches.lost(position);
            }
        }
        self.end_batches(&mut flight.batches, report).await;
    }

    /// Records a host's end and keeps it for its batch's `after_batch`.
    async fn end_host(
        &self,
        mut run: HostRun,
        end: HostEnd,
        position: usize,
        batches: &mut Batches,
        report: &mut PlayReport,
    ) {
        // A host stopped before its tasks was counted as not started.
        if !(end == HostEnd::Stopped && report.not_started.contains(&run.label)) {
            self.finish(&mut run, end, report).await;
        }
        batches.ended(position, run);
    }

    /// Records how a host ended.
    pub(super) async fn finish(&self, run: &mut HostRun, end: HostEnd, report: &mut PlayReport) {
        if self.ctx.play.after_batch.is_empty() {
            run.disconnect().await;
        }
        let label = run.label.clone();
        let registered = std::mem::take(&mut run.registered);
        report.registered.insert(label.clone(), registered);
        match &end {
            HostEnd::Done => report.done.push(label.clone()),
            HostEnd::Failed(why) => report.failed.push((label.clone(), why.reason.clone())),
            HostEnd::Stopped => report.stopped.push(label.clone()),
        }
        if end != HostEnd::Stopped {
            run.record(Entry::HostEnd {
                host: label.clone(),
                ok: end == HostEnd::Done,
                message: match &end {
                    HostEnd::Failed(why) => Some(why.detail.clone()),
                    _ => None,
                },
                time: now(),
            })
            .await;
        }
        self.emit(PlayEvent::HostEnd { host: label, end });
    }

    /// No host starts any more, and why.
    pub(super) async fn stop(&self, report: &mut PlayReport, reason: String) {
        // Failures of the tasks an operator's stop let finish are reported
        // as failures, but the run ends because of the operator (exit 3).
        if self.note_operator_stop(report) {
            return;
        }
        self.ctx.stop.cancel();
        self.ctx
            .recorder
            .record(Entry::Stop {
                reason: reason.clone(),
                time: now(),
            })
            .await;
        self.emit(PlayEvent::Notice(format!("stopping: {reason}")));
        report.stop_reason = Some(reason);
    }

    /// Records that the operator stopped the run, when they did: the stop
    /// was asked for and no reason of the run's own came first.
    fn note_operator_stop(&self, report: &mut PlayReport) -> bool {
        let by_operator = self.ctx.stop.is_cancelled() && report.stop_reason.is_none();
        if by_operator {
            report.stop_reason = Some("interrupted".into());
            report.interrupted = true;
        }
        by_operator
    }

    pub(super) fn emit(&self, event: PlayEvent) {
        self.ctx.events().emit(event);
    }
}

/// The rolling's hosts in flight: the fan-out they run on, their labels,
/// those not started yet, and their batches.
struct Flight {
    fanout: FanOut<(HostRun, HostEnd)>,
    labels: Vec<String>,
    queue: Vec<Option<PendingHost>>,
    batches: Batches,
}

/// One host's rolling part: from where its journal left it, or the start.
async fn run_host(mut pending: PendingHost, start_at: usize) -> (HostRun, HostEnd) {
    let run = &mut pending.run;
    let resumed = pending.progress.started_tasks;
    // A host in the middle of a reboot may be down: its facts are wanted
    // (on_failure may need them) but not required; the reboot gathers
    // them again once the host is back.
    if resumed {
        let facts = run.gather_facts().await;
        if let (Err(error), None) = (facts, &pending.progress.reboot) {
            return (pending.run, HostEnd::Failed(Failure::of("facts", &error)));
        }
    }
    run.reboot_mark = pending.progress.reboot.clone();
    let end = match pending.progress.next {
        Some((Phase::OnFailure, first)) if resumed => {
            match Box::pin(run.run_phase(Phase::OnFailure, first)).await {
                HostEnd::Done => HostEnd::Failed(Failure::said(
                    "a task failed before the resume (on_failure ran)".into(),
                )),
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

/// Why the rollout stops when failures pass `max_fail`, naming the hosts.
fn over_max_fail(report: &PlayReport, max_fail: usize) -> String {
    let names: Vec<_> = report.failed.iter().map(|(h, _)| h.as_str()).collect();
    format!(
        "{} host(s) failed, more than max_fail ({max_fail}): {}",
        report.failed.len(),
        names.join(", ")
    )
}
