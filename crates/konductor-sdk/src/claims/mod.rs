//! What every kind's claims (a barrier's Arrivals, a lock's Permits, a WaitGroup's
//! members) share on the client side: a claim has a deterministic name, so asking twice
//! is the same create, and a create that finds the name taken reads the claim already
//! there — an earlier ask of the same holder — for the kind to judge; a held claim is
//! kept alive the same way whatever its kind ([`held`]).

pub mod held;

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What creating a claim under its name found.
pub(crate) enum Asked<K> {
    /// The claim was created, as the server returned it.
    Created(K),
    /// The holder's earlier claim was there.
    Found(K),
    /// The name was taken, but the claim went away before it could be read.
    Vanished,
}

/// The request of [`ask`] that failed, and why.
pub(crate) struct AskFailed {
    /// `create` or `get`.
    pub verb: &'static str,
    /// The API server's or the connection's error.
    pub error: kube::Error,
}

/// Creates `claim`, or reads the claim already under its name.
pub(crate) async fn ask<K>(api: &Api<K>, claim: &K) -> Result<Asked<K>, AskFailed>
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = claim.meta().name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), claim).await {
        Ok(created) => return Ok(Asked::Created(created)),
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => {
            return Err(AskFailed {
                verb: "create",
                error,
            });
        }
    }
    match api.get_opt(&name).await {
        Ok(Some(existing)) => Ok(Asked::Found(existing)),
        Ok(None) => Ok(Asked::Vanished),
        Err(error) => Err(AskFailed { verb: "get", error }),
    }
}

/// Deletes the claim `name` (only the one with `uid`, when given), retrying for up to
/// `bound` while the server does not answer. A claim already gone (or replaced by a
/// newer one of the same name) is fine.
pub(crate) async fn withdraw<K>(
    api: &Api<K>,
    name: &str,
    uid: Option<&str>,
    bound: Duration,
) -> Result<(), String>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        // No attempt outlasts the bound: a holder cut off from the server must not
        // linger on a request that will not be answered.
        let left = bound
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(50));
        let attempt =
            tokio::time::timeout(left.min(Duration::from_secs(5)), api.delete(name, &params)).await;
        let error = match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(kube::Error::Api(status))) if matches!(status.code, 404 | 409) => return Ok(()),
            Ok(Err(kube::Error::Api(status))) if status.code != 429 && status.code < 500 => {
                return Err(status.message.clone());
            }
            Ok(Err(error)) => crate::error::plain(&error),
            Err(_) => "no answer in time".to_owned(),
        };
        if started.elapsed() + pause > bound {
            return Err(error);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
