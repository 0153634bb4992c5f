//! How the SDK's watches notice trouble: every watch asks the server to close it after
//! [`WATCH_TIMEOUT_SECS`] (and the watcher treats a watch silent for that long, plus a
//! margin, as dead and starts it again), so a server cut off without a reset is
//! noticed within a minute rather than waited on forever; and reconnecting backs off
//! from 100 ms, doubling up to a cap well under any lock's ttl.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The server-side timeout of the SDK's watches, in seconds: after it (plus kube's
/// 5 s margin) without a word — not even a bookmark — a watch is taken for dead and
/// re-established. Bookmarks are asked for; `konductor server` sends one every 30 s,
/// kube-apiserver about every minute.
pub const WATCH_TIMEOUT_SECS: u32 = 30;

/// The watcher configuration every SDK watch starts from.
pub fn watch_config() -> kube::runtime::watcher::Config {
    kube::runtime::watcher::Config::default().timeout(WATCH_TIMEOUT_SECS)
}

/// Exponential backoff for reconnecting a watch: 100 ms, doubling, at most `cap`; back
/// to 100 ms once a connection works again.
pub struct CappedBackoff {
    next: Duration,
    cap: Duration,
}

/// The first pause before reconnecting.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

impl CappedBackoff {
    /// A backoff that never waits longer than `cap`.
    pub fn new(cap: Duration) -> Self {
        Self {
            next: FIRST_PAUSE.min(cap),
            cap,
        }
    }
}

impl Iterator for CappedBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let pause = self.next;
        self.next = (self.next * 2).min(self.cap);
        Some(pause)
    }
}

impl Backoff for CappedBackoff {
    fn reset(&mut self) {
        self.next = FIRST_PAUSE.min(self.cap);
    }
}

/// The longest pause between attempts to reconnect a Once's watch.
const FOLLOW_CAP: Duration = Duration::from_millis(500);

/// The object `name` as it changes: `Ok(Some(object))` for each version seen,
/// `Ok(None)` whenever it does not exist (deleted, or absent from a (re)list), riding
/// out lost connections and server restarts (the watch reconnects with a capped
/// backoff); `Err` with the server's message when it refuses the watch (401, 403).
pub(crate) fn follow<K>(
    api: kube::Api<K>,
    name: &str,
) -> impl futures::Stream<Item = std::result::Result<Option<K>, String>> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{Error as WatchError, Event, watcher};
    let config = watch_config().fields(&format!("metadata.name={name}"));
    let name = name.to_owned();
    // `seen`: whether the current (re)list has delivered the object.
    watcher(api, config)
        .backoff(CappedBackoff::new(FOLLOW_CAP))
        .scan(false, move |seen, event| {
            let item = match event {
                Ok(Event::Apply(object) | Event::InitApply(object)) => {
                    *seen = true;
                    Some(Ok(Some(object)))
                }
                Ok(Event::Delete(_)) => Some(Ok(None)),
                Ok(Event::Init) => {
                    *seen = false;
                    None
                }
                Ok(Event::InitDone) => (!*seen).then_some(Ok(None)),
                Err(
                    WatchError::InitialListFailed(kube::Error::Api(status))
                    | WatchError::WatchStartFailed(kube::Error::Api(status)),
                ) if matches!(status.code, 401 | 403) => Some(Err(status.message)),
                Err(error) => {
                    tracing::debug!(%error, name, "watch; reconnecting");
                    None
                }
            };
            futures::future::ready(Some(item))
        })
        .filter_map(futures::future::ready)
}

/// Follows the object `name` until `condition` holds for it (`Ok(Some(object))`) or
/// it is gone (`Ok(None)`), riding out lost connections and server restarts. Fails
/// only when the server refuses the watch.
pub(crate) async fn follow_until<K>(
    api: kube::Api<K>,
    name: &str,
    mut condition: impl FnMut(&K) -> bool,
) -> std::result::Result<Option<K>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    let stream = follow(api, name);
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item? {
            Some(object) if condition(&object) => return Ok(Some(object)),
            Some(_) => {}
            None => return Ok(None),
        }
    }
    Err("the watch ended".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_the_cap_and_starts_over_on_reset() {
        let mut backoff = CappedBackoff::new(Duration::from_millis(500));
        let pauses: Vec<u128> = backoff.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
    }
}
