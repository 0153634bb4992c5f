//! Lock guards against an in-process `konductor server` with its controller.

use std::time::Duration;

mod common;

use common::{LIMIT, Running};
use konductor_api::locks::{Mutex, MutexSpec, Permit, Semaphore, SemaphoreSpec};
use konductor_sdk::Error;
use konductor_sdk::locks::{Claim, Locks, Wait};
use kube::api::{Api, DeleteParams, PostParams};

async fn start() -> (Running, Locks, kube::Client) {
    let (running, connection) = common::start().await;
    let client = connection.client.clone();
    (running, Locks::new(&connection), client)
}

async fn create_mutex(client: &kube::Client, name: &str, ttl: &str) {
    Api::<Mutex>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &Mutex::new(name, MutexSpec { ttl: ttl.into() }),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_mutex_guard_excludes_others_until_released() {
    let (_running, locks, client) = start().await;
    create_mutex(&client, "db", "5m").await;
    let first = tokio::time::timeout(
        LIMIT,
        locks.acquire(&Claim::mutex("db", "a"), Wait::Forever),
    )
    .await
    .unwrap()
    .unwrap();
    let busy = locks.acquire(&Claim::mutex("db", "b"), Wait::No).await;
    assert!(
        matches!(busy, Err(Error::LockBusy { .. })),
        "{:?}",
        busy.err()
    );
    let permits: Api<Permit> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        permits.list(&Default::default()).await.unwrap().items.len(),
        1,
        "the busy claim was withdrawn"
    );

    let waiting = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire(&Claim::mutex("db", "b"), Wait::Forever).await })
    };
    let first_token = first.token();
    first.release().await.unwrap();
    let second = tokio::time::timeout(LIMIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(second.token() > first_token);
    drop(second);
}

#[tokio::test]
async fn a_semaphore_times_out_when_full_and_the_claim_is_withdrawn() {
    let (_running, locks, client) = start().await;
    Api::<Semaphore>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &Semaphore::new(
                "pool",
                SemaphoreSpec {
                    permits: 1,
                    ttl: "5m".into(),
                },
            ),
        )
        .await
        .unwrap();
    let _held = locks
        .acquire(&Claim::semaphore("pool", "a"), Wait::Forever)
        .await
        .unwrap();
    let timed_out = locks
        .acquire(
            &Claim::semaphore("pool", "b"),
            Wait::AtMost(Duration::from_millis(300)),
        )
        .await;
    assert!(
        matches!(timed_out, Err(Error::LockTimeout { .. })),
        "{:?}",
        timed_out.err()
    );
    let permits: Api<Permit> = Api::namespaced(client, "default");
    assert_eq!(
        permits.list(&Default::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn a_guard_learns_that_its_grant_was_revoked() {
    let (_running, locks, client) = start().await;
    create_mutex(&client, "revocable", "5m").await;
    let guard = locks
        .acquire(&Claim::mutex("revocable", "a"), Wait::Forever)
        .await
        .unwrap();
    assert_eq!(guard.loss(), None);
    Api::<Permit>::namespaced(client, "default")
        .delete(guard.permit(), &DeleteParams::default())
        .await
        .unwrap();
    let loss = tokio::time::timeout(LIMIT, guard.lost())
        .await
        .expect("the loss is noticed");
    assert_eq!(loss, konductor_sdk::locks::Loss::Deleted);
    assert_eq!(guard.loss(), Some(loss));
}

#[tokio::test]
async fn a_renewing_guard_outlives_its_ttl_and_a_missing_lock_is_named() {
    let (_running, locks, client) = start().await;
    create_mutex(&client, "renewed", "2s").await;
    let guard = locks
        .acquire(&Claim::mutex("renewed", "a"), Wait::Forever)
        .await
        .unwrap();
    // Another holder waits; it gets the lock only when the guard goes, although the
    // guard held it well past one ttl (it renewed every third of it).
    let next = {
        let locks = locks.clone();
        tokio::spawn(async move {
            locks
                .acquire(&Claim::mutex("renewed", "b"), Wait::Forever)
                .await
        })
    };
    let outcome = tokio::time::timeout(Duration::from_secs(5), guard.lost()).await;
    assert!(outcome.is_err(), "the renewed grant was lost");
    assert!(
        !next.is_finished(),
        "the other holder got the lock while it was held"
    );
    let token = guard.token();
    guard.release().await.unwrap();
    let successor = tokio::time::timeout(LIMIT, next)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(successor.token() > token);

    let missing = locks.acquire(&Claim::mutex("nowhere", "a"), Wait::No).await;
    let message = missing.err().unwrap().to_string();
    assert_eq!(message, "mutex default/nowhere not found");
}

#[tokio::test]
async fn a_lock_created_again_under_the_same_name_owns_the_next_claim() {
    let (_running, locks, client) = start().await;
    let mutexes: Api<Mutex> = Api::namespaced(client.clone(), "default");
    let permits: Api<Permit> = Api::namespaced(client.clone(), "default");
    create_mutex(&client, "again", "5m").await;
    let first = locks
        .acquire(&Claim::mutex("again", "a"), Wait::Forever)
        .await
        .unwrap();
    first.release().await.unwrap();

    // Deleted: the remembered lock is checked beside the create, and named.
    mutexes
        .delete("again", &DeleteParams::default())
        .await
        .unwrap();
    let gone = locks
        .acquire(&Claim::mutex("again", "a"), Wait::No)
        .await
        .err()
        .unwrap();
    assert!(gone.to_string().contains("not found"), "{gone}");
    assert!(
        permits
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "the claim on a missing lock was withdrawn"
    );

    // Created again: the claim (made with the remembered, older uid) ends up owned by
    // the new lock, so deleting that lock deletes it.
    create_mutex(&client, "again", "5m").await;
    let uid = mutexes.get("again").await.unwrap().metadata.uid.unwrap();
    let second = tokio::time::timeout(
        LIMIT,
        locks.acquire(&Claim::mutex("again", "b"), Wait::Forever),
    )
    .await
    .unwrap()
    .unwrap();
    let name = second.permit().to_owned();
    let owned =
        kube::runtime::wait::await_condition(permits.clone(), &name, |p: Option<&Permit>| {
            p.is_some_and(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            })
        });
    tokio::time::timeout(LIMIT, owned).await.unwrap().unwrap();
    second.detach();
    mutexes
        .delete("again", &DeleteParams::default())
        .await
        .unwrap();
    let collected =
        kube::runtime::wait::await_condition(permits.clone(), &name, |p: Option<&Permit>| {
            p.is_none()
        });
    tokio::time::timeout(LIMIT, collected)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn holders_taking_a_lock_again_and_again_are_never_confused_by_their_earlier_claims() {
    // Each holder releases (deletes its Permit) and at once asks again under the same
    // name: the watch may still show the earlier Permit when the new one is made.
    let (_running, locks, client) = start().await;
    create_mutex(&client, "relay", "5m").await;
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|h| {
            let (locks, inside) = (locks.clone(), inside.clone());
            tokio::spawn(async move {
                let claim = Claim::mutex("relay", &format!("runner-{h}"));
                for _ in 0..5 {
                    let guard = locks.acquire(&claim, Wait::Forever).await?;
                    assert_eq!(inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0);
                    assert_eq!(guard.loss(), None);
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    guard.release().await?;
                }
                Ok::<_, konductor_sdk::Error>(())
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("every holder finishes")
            .unwrap()
            .unwrap();
    }
}
