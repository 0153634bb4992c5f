//! The lock controller against a real `konductor server` (in-process, HTTPS on
//! loopback): grants in order, handover on release, tokens that keep rising, a
//! semaphore's limit, readers and writers, and expiry of a grant nobody renews.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use konductor_api::locks::{
    LockKind, Mutex, MutexSpec, Permit, PermitMode, PermitPhase, PermitSpec, RWMutex, RWMutexSpec,
    Semaphore, SemaphoreSpec, permit_name,
};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use common::{HANG, Harness};
use konductor_testing::keep_renewing;

impl Harness {
    fn permits(&self) -> Api<Permit> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Asks for the `kind` lock `lock` as `holder`.
    async fn ask(&self, kind: LockKind, lock: &str, holder: &str, mode: PermitMode) -> String {
        let name = permit_name(kind, lock, holder);
        let spec = PermitSpec::new(kind, lock, holder).with_mode(mode);
        self.permits()
            .create(&PostParams::default(), &Permit::new(&name, spec))
            .await
            .unwrap();
        name
    }

    /// Waits until the permit reaches `phase`, returning it.
    async fn until(&self, name: &str, phase: PermitPhase) -> Permit {
        konductor_testing::until(self.permits(), name, |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.phase == phase)
        })
        .await
        .expect("it is there")
    }

    async fn phase(&self, name: &str) -> Option<PermitPhase> {
        self.permits()
            .get(name)
            .await
            .unwrap()
            .status
            .map(|s| s.phase)
    }

    async fn release(&self, name: &str) {
        self.permits()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

fn token(permit: &Permit) -> i64 {
    permit.status.as_ref().unwrap().fencing_token.unwrap()
}

#[tokio::test]
async fn a_mutex_is_handed_from_holder_to_holder_with_rising_tokens() {
    let h = Harness::start().await;
    let mutexes: Api<Mutex> = Api::namespaced(h.client.clone(), "default");
    mutexes
        .create(
            &PostParams::default(),
            &Mutex::new("db-migrate", MutexSpec { ttl: "5m".into() }),
        )
        .await
        .unwrap();
    let first = h
        .ask(
            LockKind::Mutex,
            "db-migrate",
            "job-a",
            PermitMode::Exclusive,
        )
        .await;
    let granted = h.until(&first, PermitPhase::Granted).await;
    let second = h
        .ask(
            LockKind::Mutex,
            "db-migrate",
            "job-b",
            PermitMode::Exclusive,
        )
        .await;
    let waiting = h.until(&second, PermitPhase::Pending).await;
    assert_eq!(waiting.status.unwrap().position, Some(1));
    let locked = tokio::time::timeout(
        HANG,
        await_condition(mutexes.clone(), "db-migrate", |m: Option<&Mutex>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.claims.waiting == ["job-b"])
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let status = locked.status.unwrap();
    assert_eq!(status.holder.as_deref(), Some("job-a"));
    assert_eq!(status.claims.fencing_token, token(&granted));

    h.release(&first).await;
    let next = h.until(&second, PermitPhase::Granted).await;
    assert!(token(&next) > token(&granted), "tokens rise");
    let metrics = h.controller().unwrap().metrics().encode();
    let value = |series: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        value("konductor_lock_grants_total{kind=\"mutex\"}"),
        Some(2.0),
        "{metrics}"
    );
    // The engine counts every kind's reconciles and writes under the kind's name.
    for series in [
        "konductor_reconciles_total{kind=\"mutex\"}",
        "konductor_status_writes_total{kind=\"mutex\"}",
    ] {
        assert!(
            value(series).is_some_and(|v| v >= 2.0),
            "{series}: {metrics}"
        );
    }
    assert_eq!(
        value("konductor_status_writes_total{kind=\"semaphore\"}"),
        Some(0.0),
        "every kind's series is there from the start: {metrics}"
    );

    // The handover is on the lock's record of Events.
    let events: Api<CoreEvent> = Api::namespaced(h.client.clone(), "default");
    let recorded = tokio::time::timeout(
        HANG,
        watcher(
            events.clone(),
            watcher::Config::default().fields("involvedObject.name=db-migrate"),
        )
        .applied_objects()
        .map_ok(|e| e.reason.unwrap_or_default())
        // kube's Recorder folds a repeated reason into a series: Granted, Released.
        .take(2)
        .try_collect::<Vec<String>>(),
    )
    .await;
    let reasons = match recorded {
        Ok(reasons) => reasons.unwrap(),
        Err(_) => {
            let all = events.list(&Default::default()).await.unwrap();
            panic!(
                "two events on the mutex: {:?}",
                all.items
                    .iter()
                    .map(|e| (&e.reason, &e.involved_object.name, &e.message))
                    .collect::<Vec<_>>()
            );
        }
    };
    for reason in ["Granted", "Released"] {
        assert!(reasons.iter().any(|r| r == reason), "{reasons:?}");
    }
}

#[tokio::test]
async fn a_semaphore_lets_in_exactly_its_permits() {
    let h = Harness::start().await;
    let semaphores: Api<Semaphore> = Api::namespaced(h.client.clone(), "default");
    semaphores
        .create(
            &PostParams::default(),
            &Semaphore::new(
                "db",
                SemaphoreSpec {
                    permits: 2,
                    ttl: "5m".into(),
                },
            ),
        )
        .await
        .unwrap();
    let mut names = Vec::new();
    for holder in ["a", "b", "c"] {
        names.push(
            h.ask(LockKind::Semaphore, "db", holder, PermitMode::Exclusive)
                .await,
        );
    }
    h.until(&names[0], PermitPhase::Granted).await;
    h.until(&names[1], PermitPhase::Granted).await;
    h.until(&names[2], PermitPhase::Pending).await;
    let exhausted = tokio::time::timeout(
        HANG,
        await_condition(semaphores, "db", |s: Option<&Semaphore>| {
            s.and_then(|s| s.status.as_ref())
                .is_some_and(|s| s.in_use == 2 && s.claims.waiting == ["c"])
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let status = exhausted.status.unwrap();
    assert_eq!(status.available, 0);
    let ready = status
        .claims
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "SpecAccepted")
    );
    h.release(&names[0]).await;
    h.until(&names[2], PermitPhase::Granted).await;
    assert_eq!(h.phase(&names[1]).await, Some(PermitPhase::Granted));
}

#[tokio::test]
async fn readers_share_an_rwmutex_and_a_queued_writer_goes_before_later_readers() {
    let h = Harness::start().await;
    let rwmutexes: Api<RWMutex> = Api::namespaced(h.client.clone(), "default");
    rwmutexes
        .create(
            &PostParams::default(),
            &RWMutex::new("cache", RWMutexSpec { ttl: "5m".into() }),
        )
        .await
        .unwrap();
    let r1 = h
        .ask(LockKind::RWMutex, "cache", "r1", PermitMode::Shared)
        .await;
    let r2 = h
        .ask(LockKind::RWMutex, "cache", "r2", PermitMode::Shared)
        .await;
    h.until(&r1, PermitPhase::Granted).await;
    h.until(&r2, PermitPhase::Granted).await;
    let writer = h
        .ask(LockKind::RWMutex, "cache", "w", PermitMode::Exclusive)
        .await;
    h.until(&writer, PermitPhase::Pending).await;
    let r3 = h
        .ask(LockKind::RWMutex, "cache", "r3", PermitMode::Shared)
        .await;
    let late = h.until(&r3, PermitPhase::Pending).await;
    assert_eq!(late.status.unwrap().position, Some(2), "behind the writer");
    h.release(&r1).await;
    h.release(&r2).await;
    h.until(&writer, PermitPhase::Granted).await;
    assert_eq!(h.phase(&r3).await, Some(PermitPhase::Pending));
    h.release(&writer).await;
    h.until(&r3, PermitPhase::Granted).await;
}

#[tokio::test]
async fn a_grant_nobody_renews_expires_and_the_next_holder_gets_the_lock() {
    let h = Harness::start().await;
    let mutexes: Api<Mutex> = Api::namespaced(h.client.clone(), "default");
    mutexes
        .create(
            &PostParams::default(),
            &Mutex::new("short", MutexSpec { ttl: "2s".into() }),
        )
        .await
        .unwrap();
    let silent = h
        .ask(LockKind::Mutex, "short", "silent", PermitMode::Exclusive)
        .await;
    let granted = h.until(&silent, PermitPhase::Granted).await;
    let next = h
        .ask(LockKind::Mutex, "short", "next", PermitMode::Exclusive)
        .await;
    let renewing = keep_renewing(h.permits(), &next);
    let expired = h.until(&silent, PermitPhase::Expired).await;
    let successor = h.until(&next, PermitPhase::Granted).await;
    renewing.abort();
    assert!(token(&successor) > token(&granted));
    assert_eq!(expired.name_any(), silent);
}

#[tokio::test]
async fn a_ttl_below_the_minimum_is_refused_naming_the_field() {
    let h = Harness::start().await;
    let mutexes: Api<Mutex> = Api::namespaced(h.client.clone(), "default");
    for ttl in ["0s", "1s", "1999ms"] {
        let refused = mutexes
            .create(
                &PostParams::default(),
                &Mutex::new("broken", MutexSpec { ttl: ttl.into() }),
            )
            .await
            .unwrap_err();
        let kube::Error::Api(status) = refused else {
            panic!("{ttl}: {refused}");
        };
        assert_eq!(status.code, 422, "{ttl}: {status:?}");
        assert!(
            status.message.contains("spec.ttl") && status.message.contains("at least 2s"),
            "{ttl}: {}",
            status.message
        );
    }
    mutexes
        .create(
            &PostParams::default(),
            &Mutex::new("fine", MutexSpec { ttl: "2s".into() }),
        )
        .await
        .unwrap();
}
