//! The garbage collector: deletes objects whose owners are gone (Arrivals of a deleted
//! Barrier) and the contents of deleted namespaces, in the background, as
//! Kubernetes' garbage collector and namespace controller do.
//!
//! It is incremental: the store queues a task in the same transaction as the delete
//! that causes it ([`GcTask`]), and the collector works through the queue, each task
//! costing in proportion to what it deletes — never a sweep over every object. Tasks
//! stay queued until done, so a crash or restart in the middle loses none.

use std::time::Duration;

use crate::error::ApiError;
use crate::key::ObjectKey;
use crate::registry::NAMESPACES;
use crate::service::{ListOptions, Service};
use crate::store::GcTask;

/// Tasks taken from the queue at a time.
const BATCH: usize = 64;

/// How long to wait before retrying after a task failed (e.g. a storage error).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs until `shutdown` resolves.
pub async fn run(service: Service, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let worker = service.clone();
        let drained = tokio::task::spawn_blocking(move || drain(&worker))
            .await
            .unwrap_or_else(|error| Err(ApiError::Internal(error.to_string())));
        let pause = match drained {
            Ok(()) => None,
            Err(error) => {
                tracing::error!(%error, "garbage collection failed; retrying");
                Some(RETRY_AFTER)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = service.store().gc_wakeup().notified(), if pause.is_none() => {}
            _ = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
        }
    }
}

/// Does every queued task.
pub fn drain(service: &Service) -> Result<(), ApiError> {
    loop {
        let tasks = service.store().gc_pending(BATCH)?;
        if tasks.is_empty() {
            return Ok(());
        }
        for task in tasks {
            match &task {
                GcTask::Owner(uid) => collect(service, uid)?,
                GcTask::Namespace(name) => purge_namespace(service, name)?,
            }
            service.store().gc_done(&task)?;
        }
    }
}

/// Deletes the dependents of the (deleted) owner `uid` that have no other live owner.
pub fn collect(service: &Service, uid: &str) -> Result<(), ApiError> {
    for key in service.store().dependents(uid)? {
        if !has_live_owner(service, &key)? {
            service.delete_key(&key)?;
        }
    }
    Ok(())
}

fn has_live_owner(service: &Service, key: &ObjectKey) -> Result<bool, ApiError> {
    let Some(object) = service.store().get(key)? else {
        return Ok(false);
    };
    for uid in object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
    {
        if service.store().uid_exists(uid)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes every object in a deleted namespace (unless it was created again).
fn purge_namespace(service: &Service, namespace: &str) -> Result<(), ApiError> {
    if service
        .store()
        .get(&ObjectKey::new(NAMESPACES, "", namespace))?
        .is_some()
    {
        return Ok(());
    }
    let registry = service.registry().clone();
    for def in registry.all().iter().filter(|d| d.namespaced) {
        if !registry
            .by_storage(&def.storage)
            .is_some_and(|native| std::sync::Arc::ptr_eq(native, def))
        {
            continue; // a converted view of a bucket handled through its native resource
        }
        let listed = service.list(def, Some(namespace), &ListOptions::default())?;
        for object in &listed.items {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            service.delete_key(&ObjectKey::new(&def.storage, namespace, name))?;
        }
    }
    Ok(())
}
