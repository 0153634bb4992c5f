//! The garbage collector: deletes objects whose owners are gone (Arrivals of a deleted
//! Barrier) and the contents of deleted namespaces, in the background, as
//! Kubernetes' garbage collector and namespace controller do.
//!
//! It follows the watch hub; when it falls behind (or at start-up, for deletions made
//! while the server was down) it sweeps every recorded owner instead.

use tokio::sync::broadcast::error::RecvError;

use crate::registry::NAMESPACES;
use crate::service::{ListOptions, Service};
use crate::store::ObjectKey;
use crate::watch::EventType;

/// Runs until `shutdown` resolves.
pub async fn run(service: Service, shutdown: impl std::future::Future<Output = ()>) {
    let mut live = match service
        .store()
        .hub()
        .subscribe(service.store().resource_version())
    {
        Ok(subscription) => subscription.live,
        Err(_) => return,
    };
    sweep_in_background(&service).await;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => return,
            event = live.recv() => event,
        };
        match event {
            Ok(event) if event.event_type == EventType::Deleted => {
                let service = service.clone();
                let result = tokio::task::spawn_blocking(move || {
                    if event.key.bucket == NAMESPACES {
                        purge_namespace(&service, &event.key.name);
                    }
                    if let Some(uid) = event.object["metadata"]["uid"].as_str() {
                        collect(&service, uid);
                    }
                })
                .await;
                if let Err(error) = result {
                    tracing::error!(%error, "garbage collection task failed");
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => sweep_in_background(&service).await,
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sweep_in_background(service: &Service) {
    let service = service.clone();
    if let Err(error) = tokio::task::spawn_blocking(move || sweep(&service)).await {
        tracing::error!(%error, "garbage collection sweep failed");
    }
}

/// Deletes the dependents of every owner that no longer exists.
pub fn sweep(service: &Service) {
    match service.store().owner_uids() {
        Ok(uids) => {
            for uid in uids {
                if !service.store().uid_exists(&uid).unwrap_or(true) {
                    collect(service, &uid);
                }
            }
        }
        Err(error) => tracing::error!(%error, "listing owners for garbage collection"),
    }
}

/// Deletes the dependents of the (deleted) owner `uid` that have no other live owner.
pub fn collect(service: &Service, uid: &str) {
    let dependents = match service.store().dependents(uid) {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(%error, uid, "listing dependents");
            return;
        }
    };
    for key in dependents {
        if has_live_owner(service, &key) {
            continue;
        }
        if let Err(error) = service.delete_key(&key) {
            tracing::warn!(%error, ?key, "garbage-collecting dependent");
        }
    }
}

fn has_live_owner(service: &Service, key: &ObjectKey) -> bool {
    let Ok(Some(object)) = service.store().get(key) else {
        return false;
    };
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
        .any(|uid| service.store().uid_exists(uid).unwrap_or(true))
}

/// Deletes every object in a deleted namespace.
fn purge_namespace(service: &Service, namespace: &str) {
    let registry = service.registry().clone();
    for def in registry.all().iter().filter(|d| d.namespaced) {
        if !registry
            .by_storage(def.storage)
            .is_some_and(|native| std::sync::Arc::ptr_eq(native, def))
        {
            continue; // a converted view of a bucket handled through its native resource
        }
        let listed = match service.list(def, Some(namespace), &ListOptions::default()) {
            Ok(listed) => listed,
            Err(error) => {
                tracing::error!(%error, namespace, "listing a deleted namespace's objects");
                continue;
            }
        };
        for object in listed["items"].as_array().into_iter().flatten() {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let key = ObjectKey::new(def.storage, namespace, name);
            if let Err(error) = service.delete_key(&key) {
                tracing::warn!(%error, ?key, "deleting a deleted namespace's object");
            }
        }
    }
}
