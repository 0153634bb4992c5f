//! WaitGroup: one group of N members, each added and then marked done by separate
//! requests (as a producer and its workers do), from several clients, until a watcher
//! sees the group Done.

use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt;
use konductor_api::waitgroup::{MemberOutcome, WaitGroup, WaitGroupPhase, WaitGroupSpec};
use konductor_sdk::Connection;
use konductor_sdk::waitgroup::WaitGroups;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::oneshot;

use crate::server::ServerProcess;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct MembersResult {
    /// Members per second, from the first add until the group was seen Done.
    pub members_per_s: f64,
    /// Seconds from the first add until the group was seen Done.
    pub time_to_done_s: f64,
    /// Milliseconds from the last done's acknowledgement until the group was seen Done.
    pub done_after_last_ms: f64,
    /// Group status writes per member (MODIFIED events seen).
    pub status_writes_per_member: f64,
    /// The server's peak resident memory so far, MiB.
    pub peak_rss_mib: f64,
}

/// Watches the group `name` until it is Done; says `ready` once watching.
async fn watch_until_done(
    api: Api<WaitGroup>,
    name: String,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<(Instant, usize)> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).boxed();
    let mut ready = Some(ready);
    let mut writes = 0usize;
    while let Some(event) = events.next().await {
        match event.context("watching the group")? {
            watcher::Event::InitDone => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            watcher::Event::Apply(group) | watcher::Event::InitApply(group) => {
                writes += 1;
                if group.phase() == WaitGroupPhase::Done {
                    return Ok((Instant::now(), writes));
                }
                anyhow::ensure!(
                    !group.phase().is_finished(),
                    "the group ended {}",
                    group.phase()
                );
            }
            _ => {}
        }
    }
    anyhow::bail!("the group watch ended")
}

/// Adds and finishes `members` members of a fresh group from `clients` clients.
pub async fn run(
    server: &ServerProcess,
    name: &str,
    members: usize,
    clients: usize,
) -> anyhow::Result<MembersResult> {
    let mut groups = Vec::with_capacity(clients);
    for _ in 0..clients {
        groups.push(WaitGroups::new(&Connection {
            client: server.client().await?,
            namespace: "default".into(),
            url: String::new(),
        }));
    }
    let spec = WaitGroupSpec {
        expected: Some(i32::try_from(members)?),
        ..WaitGroupSpec::default()
    };
    groups[0].create(name, spec).await?;
    let api: Api<WaitGroup> = Api::namespaced(server.client().await?, "default");
    let (ready, watching) = oneshot::channel();
    let done = tokio::spawn(watch_until_done(api, name.to_owned(), ready));
    watching.await.context("the group watch did not start")?;

    let started = Instant::now();
    let work = groups.iter().enumerate().map(|(c, groups)| {
        let ids: Vec<String> = (c..members)
            .step_by(clients)
            .map(|i| format!("m{i}"))
            .collect();
        async move {
            for id in ids {
                groups
                    .add(name, std::slice::from_ref(&id))
                    .await
                    .with_context(|| format!("adding {id}"))?;
                groups
                    .done(name, &id, MemberOutcome::succeeded(Some(0)))
                    .await
                    .with_context(|| format!("marking {id} done"))?;
            }
            anyhow::Ok(Instant::now())
        }
    });
    let mut last_ack = started;
    for result in futures::future::join_all(work).await {
        last_ack = last_ack.max(result?);
    }
    let (done_at, writes) = tokio::time::timeout(std::time::Duration::from_secs(600), done)
        .await
        .context("the group was not Done within 10 minutes")???;
    Ok(MembersResult {
        members_per_s: members as f64 / (done_at - started).as_secs_f64(),
        time_to_done_s: (done_at - started).as_secs_f64(),
        done_after_last_ms: crate::report::ms(done_at.saturating_duration_since(last_ack)),
        status_writes_per_member: writes.saturating_sub(1) as f64 / members as f64,
        peak_rss_mib: server.peak_rss_mib(),
    })
}
