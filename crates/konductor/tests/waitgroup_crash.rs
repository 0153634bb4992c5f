//! A WaitGroup under `kill -9` of `konductor server` while four SDK clients add and
//! finish 200 members: every add and done the server acknowledged before the kill is
//! there after the restart, the clients' retries of the ones cut off count once, and
//! the group ends Done with exactly 200 members.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connection, kill_9_and_restart, start_server};
use konductor_api::waitgroup::{
    MemberOutcome, WaitGroup, WaitGroupMember, WaitGroupPhase, WaitGroupSpec, member_name,
};
use konductor_sdk::waitgroup::WaitGroups;
use kube::Api;

/// The longest the test may wait for anything before calling it a hang.
const HANG: Duration = Duration::from_secs(120);

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 50;

/// What the server acknowledged: members added, members done.
#[derive(Default)]
struct Acknowledged {
    added: BTreeSet<String>,
    done: BTreeSet<String>,
}

/// How long a client waits before retrying a request the server did not answer.
const RETRY: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_adds_and_dones_survive_kill_9_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_server(dir.path(), &[]);
    let connection = connection(dir.path()).await;
    let groups = WaitGroups::new(&connection);
    groups
        .create("fan", WaitGroupSpec::default())
        .await
        .unwrap();

    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let (progress, mut progressed) = tokio::sync::watch::channel(0usize);
    let progress = Arc::new(progress);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (groups, acknowledged, progress) =
                (groups.clone(), acknowledged.clone(), progress.clone());
            tokio::spawn(async move {
                for i in 0..PER_CLIENT {
                    let id = format!("c{client}-m{i}");
                    let ids = [id.clone()];
                    while groups.add("fan", &ids).await.is_err() {
                        tokio::time::sleep(RETRY).await;
                    }
                    acknowledged.lock().unwrap().added.insert(id.clone());
                    let succeeded = MemberOutcome::succeeded(Some(0));
                    while groups.done("fan", &id, succeeded.clone()).await.is_err() {
                        tokio::time::sleep(RETRY).await;
                    }
                    acknowledged.lock().unwrap().done.insert(id.clone());
                    progress.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();

    // Kill the server once a quarter of the members are through.
    tokio::time::timeout(
        HANG,
        progressed.wait_for(|n| *n >= CLIENTS * PER_CLIENT / 4),
    )
    .await
    .unwrap()
    .unwrap();
    let before_kill = {
        let acknowledged = acknowledged.lock().unwrap();
        (acknowledged.added.clone(), acknowledged.done.clone())
    };
    let server = kill_9_and_restart(first, dir.path()).await;

    // Everything acknowledged before the kill is there.
    let members: Api<WaitGroupMember> = Api::namespaced(connection.client.clone(), "default");
    for id in &before_kill.0 {
        let member = loop {
            match members.get(&member_name("fan", id)).await {
                Ok(member) => break member,
                Err(kube::Error::Api(status)) => panic!("{id} acknowledged, then {status:?}"),
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        };
        if before_kill.1.contains(id) {
            assert!(member.spec.outcome.is_some(), "done of {id} was lost");
        }
    }
    assert!(
        before_kill.1.len() >= CLIENTS * PER_CLIENT / 4,
        "{} dones acknowledged before the kill",
        before_kill.1.len()
    );

    for client in clients {
        tokio::time::timeout(HANG, client).await.unwrap().unwrap();
    }
    groups.seal("fan").await.unwrap();
    let finished = tokio::time::timeout(HANG, groups.wait("fan", None, |_| {}))
        .await
        .unwrap()
        .unwrap();
    let status = finished.status.clone().unwrap();
    assert_eq!(finished.phase(), WaitGroupPhase::Done, "{status:?}");
    let total = i32::try_from(CLIENTS * PER_CLIENT).unwrap();
    assert_eq!(
        (status.added, status.done, status.failed, status.counter),
        (total, total, 0, 0)
    );
    let api: Api<WaitGroup> = Api::namespaced(connection.client.clone(), "default");
    assert_eq!(api.get("fan").await.unwrap().phase(), WaitGroupPhase::Done);
    drop(server);
}
