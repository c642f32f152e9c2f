//! Runs `uptime` on every host of a pssh hosts file, as prun would, and
//! prints each host's answer, then the five slowest hosts: fleet used as a
//! library (inventory → connector → run → events and results).
//!
//!     cargo run --example slowest -- HOSTS_FILE
//!
//! Keys, known_hosts and the user are the usual ones (~/.ssh, $USER).

use std::sync::Arc;

use fleet::engine::{Event, Job, Run};
use fleet::inventory::read_hosts_file;
use fleet::ssh::{Connector, Secrets, SshOptions};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: slowest HOSTS_FILE")?;
    let hosts: Arc<[_]> = read_hosts_file(path.as_ref())?.into();
    let connector = Connector::new(&hosts, &SshOptions::default(), None, Secrets::default())?;
    let run = Run::new(Arc::new(connector), Arc::clone(&hosts), Job::new("uptime"));
    let (events, mut received) = mpsc::channel::<Event>(256);
    let running = tokio::spawn(run.execute(events, Default::default()));
    while let Some(event) = received.recv().await {
        if let Event::Output { host, data, .. } = event {
            print!(
                "{}: {}",
                hosts[host].label(),
                String::from_utf8_lossy(&data)
            );
        }
    }
    let results = running.await?;
    let mut slowest: Vec<_> = hosts.iter().zip(&results).collect();
    slowest.sort_by_key(|(_, result)| std::cmp::Reverse(result.duration));
    println!("slowest:");
    for (host, result) in slowest.iter().take(5) {
        let outcome = result.outcome.failure_reason().unwrap_or("ok".into());
        println!(
            "{:8.3}s  {}  {outcome}",
            result.duration.as_secs_f64(),
            host.label()
        );
    }
    Ok(())
}
