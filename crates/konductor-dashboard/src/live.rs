//! The dashboard's live picture: one watch per kind (with the user's credentials), the
//! objects they deliver, and the panels made from them — kept up to date, and handed
//! to each page as a first snapshot and then as the changes since the last one it saw.
//!
//! A change only marks its panel dirty (claims mark their subject's); a flush — at once
//! after a quiet spell, else at most every 20 ms — remakes each dirty panel once,
//! however many changes hit it, and records the batch in a short log of changes. A page reads the log from where it
//! left off, so the work per change does not grow with the number of objects shown.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::Value;

use crate::panels::{self, Claim};
use crate::{Role, WATCHED, Watched};

/// The least time between two flushes: changes meanwhile gather into one batch.
const GATHER: Duration = Duration::from_millis(20);
/// How many batches the log keeps: a page further behind gets a fresh snapshot.
const LOG_BATCHES: usize = 1_000;
/// How many recent Events are kept.
const EVENTS_KEPT: usize = 100;

/// Whether the user's credentials let the dashboard see a kind.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "state", content = "message", rename_all = "camelCase")]
pub enum Visibility {
    /// Its first list has not come back yet.
    Loading,
    /// Listed and watched.
    Live,
    /// Listing it was refused (403): not visible to you.
    Forbidden(String),
    /// The cluster does not serve it (its CRD is not installed).
    NotServed(String),
    /// Listing it fails for another reason (retried).
    Failing(String),
}

/// One Event of a Konductor object, as the page lists it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    uid: String,
    /// When it last happened.
    pub time: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The object's kind.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// How often it happened.
    pub count: i32,
}

/// What one flush changed.
#[derive(Default)]
struct Batch {
    seq: u64,
    panels: HashSet<String>,
    events: bool,
    visibility: bool,
}

/// Everything the dashboard knows, behind one lock.
#[derive(Default)]
struct Model {
    /// Subjects by panel key, with their kind.
    subjects: HashMap<String, (&'static str, DynamicObject)>,
    /// Claims by the key of the subject they count for, in the order its panel lists
    /// them ([`panels::ClaimOrder`]): a panel is made in one pass, not a sort.
    claims: HashMap<String, BTreeMap<panels::ClaimOrder, Claim>>,
    /// Where each claim (by `Kind/ns/name`) is filed, so that a change moves it.
    claim_parent: HashMap<String, (String, panels::ClaimOrder)>,
    /// Each panel, serialized once for every page.
    panels: HashMap<String, Arc<str>>,
    /// Recent Events, oldest first.
    events: VecDeque<EventLine>,
    visibility: BTreeMap<&'static str, Visibility>,
    /// Objects seen by a relist in progress, per kind.
    relisting: HashMap<&'static str, HashSet<String>>,
    dirty: HashSet<String>,
    events_dirty: bool,
    visibility_dirty: bool,
    seq: u64,
    log: VecDeque<Batch>,
}

/// The kind's own key of an object (claims and subjects alike): `Kind/ns/name`.
fn object_key(kind: &str, object: &DynamicObject) -> String {
    panels::key(
        kind,
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
    )
}

impl Model {
    fn apply(&mut self, watched: &Watched, object: DynamicObject) {
        let own = object_key(watched.kind, &object);
        if let Some(seen) = self.relisting.get_mut(watched.kind) {
            seen.insert(own.clone());
        }
        match watched.role {
            Role::Subject => {
                self.dirty.insert(own.clone());
                self.subjects.insert(own, (watched.kind, object));
            }
            Role::Claim => {
                let claim = panels::claim_of(watched.kind, &object);
                self.remove_claim(&own);
                if let Some((parent, claim)) = claim {
                    let order = panels::ClaimOrder::of(&claim, &own);
                    self.dirty.insert(parent.clone());
                    self.claims
                        .entry(parent.clone())
                        .or_default()
                        .insert(order.clone(), claim);
                    self.claim_parent.insert(own, (parent, order));
                }
            }
            Role::Events => self.event(object),
        }
    }

    fn remove(&mut self, watched: &Watched, own: &str) {
        match watched.role {
            Role::Subject => {
                if self.subjects.remove(own).is_some() {
                    self.dirty.insert(own.to_owned());
                }
            }
            Role::Claim => self.remove_claim(own),
            Role::Events => {}
        }
    }

    fn remove_claim(&mut self, own: &str) {
        if let Some((parent, order)) = self.claim_parent.remove(own) {
            if let Some(claims) = self.claims.get_mut(&parent) {
                claims.remove(&order);
                if claims.is_empty() {
                    self.claims.remove(&parent);
                }
            }
            self.dirty.insert(parent);
        }
    }

    fn event(&mut self, object: DynamicObject) {
        let Some(line) = event_line(&object) else {
            return;
        };
        self.events.retain(|e| e.uid != line.uid);
        self.events.push_back(line);
        if self.events.len() > EVENTS_KEPT {
            let mut sorted: Vec<EventLine> = self.events.drain(..).collect();
            sorted.sort_by(|a, b| a.time.cmp(&b.time));
            self.events = sorted.into_iter().rev().take(EVENTS_KEPT).rev().collect();
        }
        self.events_dirty = true;
    }

    fn begin_relist(&mut self, kind: &'static str) {
        self.relisting.insert(kind, HashSet::new());
    }

    /// A relist is complete: whatever of the kind it did not deliver is gone.
    fn end_relist(&mut self, watched: &Watched) {
        let seen = self.relisting.remove(watched.kind).unwrap_or_default();
        let prefix = format!("{}/", watched.kind);
        let gone: Vec<String> = match watched.role {
            Role::Subject => self.subjects.keys().cloned().collect(),
            Role::Claim => self.claim_parent.keys().cloned().collect(),
            Role::Events => Vec::new(),
        };
        for own in gone {
            if own.starts_with(&prefix) && !seen.contains(&own) {
                self.remove(watched, &own);
            }
        }
        self.set_visibility(watched.kind, Visibility::Live);
    }

    fn set_visibility(&mut self, kind: &'static str, visibility: Visibility) {
        if self.visibility.get(kind) != Some(&visibility) {
            self.visibility.insert(kind, visibility);
            self.visibility_dirty = true;
        }
    }

    /// Remakes every dirty panel and records what changed; `false` if nothing did.
    fn flush(&mut self) -> bool {
        if self.dirty.is_empty() && !self.events_dirty && !self.visibility_dirty {
            return false;
        }
        let mut batch = Batch {
            events: std::mem::take(&mut self.events_dirty),
            visibility: std::mem::take(&mut self.visibility_dirty),
            ..Batch::default()
        };
        for key in std::mem::take(&mut self.dirty) {
            let made = self.subjects.get(&key).and_then(|(kind, object)| {
                let claims = self.claims.get(&key).into_iter().flat_map(|c| c.values());
                panels::panel(kind, object, claims)
            });
            let changed = match made {
                Some(panel) => {
                    let json: Arc<str> = serde_json::to_string(&panel)
                        .unwrap_or_else(|_| "null".to_owned())
                        .into();
                    let changed = self.panels.get(&key).is_none_or(|old| *old != json);
                    self.panels.insert(key.clone(), json);
                    changed
                }
                None => self.panels.remove(&key).is_some(),
            };
            if changed {
                batch.panels.insert(key);
            }
        }
        if batch.panels.is_empty() && !batch.events && !batch.visibility {
            return false;
        }
        self.seq += 1;
        batch.seq = self.seq;
        self.log.push_back(batch);
        if self.log.len() > LOG_BATCHES {
            self.log.pop_front();
        }
        true
    }

    /// Everything, for a page that has nothing yet (or fell too far behind).
    fn snapshot(&self) -> String {
        let panels: Vec<&str> = self.panels.values().map(|p| &**p).collect();
        format!(
            r#"{{"seq":{},"snapshot":true,"panels":[{}],"removed":[],"events":{},"visibility":{}}}"#,
            self.seq,
            panels.join(","),
            json(&self.events),
            json(&self.visibility),
        )
    }

    /// What changed after batch `after`; `None` if the log no longer reaches back that
    /// far (a snapshot is due).
    fn changes_since(&self, after: u64) -> Option<String> {
        let first = self.log.front().map_or(self.seq + 1, |b| b.seq);
        if after + 1 < first {
            return None;
        }
        let mut keys = HashSet::new();
        let (mut events, mut visibility) = (false, false);
        for batch in self.log.iter().filter(|b| b.seq > after) {
            keys.extend(batch.panels.iter().map(String::as_str));
            events |= batch.events;
            visibility |= batch.visibility;
        }
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        for key in keys {
            match self.panels.get(key) {
                Some(panel) => changed.push(&**panel),
                None => removed.push(key),
            }
        }
        Some(format!(
            r#"{{"seq":{},"snapshot":false,"panels":[{}],"removed":{}{}{}}}"#,
            self.seq,
            changed.join(","),
            json(&removed),
            if events {
                format!(r#","events":{}"#, json(&self.events))
            } else {
                String::new()
            },
            if visibility {
                format!(r#","visibility":{}"#, json(&self.visibility))
            } else {
                String::new()
            },
        ))
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// An Event about a Konductor object (or one a Gate resumed), as the page lists it.
fn event_line(object: &DynamicObject) -> Option<EventLine> {
    let data = &object.data;
    let involved = data.get("involvedObject")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let api_version = text(involved.get("apiVersion"));
    let reason = text(data.get("reason"));
    if !api_version.starts_with(konductor_api::GROUP) && reason != "ResumedByGate" {
        return None;
    }
    let time = ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|f| data.get(*f).and_then(Value::as_str))
        .map(str::to_owned)
        .or_else(|| {
            object
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default();
    Some(EventLine {
        uid: object.uid().unwrap_or_else(|| object.name_any()),
        time,
        type_: text(data.get("type")),
        kind: text(involved.get("kind")),
        namespace: text(involved.get("namespace")),
        name: text(involved.get("name")),
        reason,
        message: text(data.get("message")),
        count: data.get("count").and_then(Value::as_i64).unwrap_or(1) as i32,
    })
}

/// The live picture, shared by the watches and every page being served.
#[derive(Clone)]
pub struct Live {
    model: Arc<Mutex<Model>>,
    wake: Arc<tokio::sync::Notify>,
    seq: tokio::sync::watch::Receiver<u64>,
}

/// What a page receives: the snapshot first, then batches of changes.
pub struct Feed {
    live: Live,
    seq: tokio::sync::watch::Receiver<u64>,
    seen: Option<u64>,
}

impl Feed {
    /// The next message for the page: a snapshot first (or when it fell behind), then
    /// the changes since the last message, waiting for some.
    pub async fn next(&mut self) -> String {
        loop {
            if let Some(seen) = self.seen {
                if self.seq.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                let _ = self.seq.borrow_and_update();
                let model = self.live.lock();
                if model.seq == seen {
                    continue;
                }
                self.seen = Some(model.seq);
                if let Some(changes) = model.changes_since(seen) {
                    return changes;
                }
                return model.snapshot();
            }
            let _ = self.seq.borrow_and_update();
            let model = self.live.lock();
            self.seen = Some(model.seq);
            return model.snapshot();
        }
    }
}

impl Live {
    /// Starts watching every kind of [`WATCHED`] (and Events) in `namespace`, or in all
    /// namespaces, with `client`'s credentials.
    pub fn start(client: kube::Client, namespace: Option<String>) -> Self {
        let (publish, seq) = tokio::sync::watch::channel(0);
        let mut model = Model::default();
        for watched in WATCHED {
            model.visibility.insert(watched.kind, Visibility::Loading);
        }
        let live = Live {
            model: Arc::new(Mutex::new(model)),
            wake: Arc::new(tokio::sync::Notify::new()),
            seq,
        };
        for watched in WATCHED {
            let api = match &namespace {
                Some(ns) => {
                    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &(watched.resource)())
                }
                None => Api::<DynamicObject>::all_with(client.clone(), &(watched.resource)()),
            };
            tokio::spawn(live.clone().watch(watched, api));
        }
        tokio::spawn(live.clone().flushes(publish));
        live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A page's feed.
    pub fn feed(&self) -> Feed {
        Feed {
            live: self.clone(),
            seq: self.seq.clone(),
            seen: None,
        }
    }

    /// The stored object behind panel `key`, for its YAML view (managed fields left
    /// out); `None` if there is no such panel.
    pub fn object(&self, key: &str) -> Option<DynamicObject> {
        let model = self.lock();
        let (_, object) = model.subjects.get(key)?;
        let mut object = object.clone();
        object.metadata.managed_fields = None;
        Some(object)
    }

    /// How many panels there are and whether every kind's first list is in: for tests
    /// and the bench.
    pub fn counts(&self) -> (usize, bool) {
        let model = self.lock();
        let loaded = model.visibility.values().all(|v| *v != Visibility::Loading);
        (model.panels.len(), loaded)
    }

    async fn watch(self, watched: &'static Watched, api: Api<DynamicObject>) {
        let config = konductor_sdk::watching::watch_config().page_size(500);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(next) = stream.next().await {
            {
                let mut model = self.lock();
                match next {
                    Ok(Event::Init) => model.begin_relist(watched.kind),
                    Ok(Event::InitApply(object) | Event::Apply(object)) => {
                        model.apply(watched, object)
                    }
                    Ok(Event::InitDone) => model.end_relist(watched),
                    Ok(Event::Delete(object)) => {
                        let own = object_key(watched.kind, &object);
                        model.remove(watched, &own);
                    }
                    Err(error) => model.set_visibility(watched.kind, visibility_of(&error)),
                }
            }
            self.wake.notify_one();
        }
    }

    /// Flushes at once when a change comes after a quiet spell, then at most once per
    /// [`GATHER`] while changes keep coming: a lone change is sent without delay, a
    /// burst in a few batches.
    async fn flushes(self, publish: tokio::sync::watch::Sender<u64>) {
        loop {
            self.wake.notified().await;
            let seq = {
                let mut model = self.lock();
                model.flush().then_some(model.seq)
            };
            if let Some(seq) = seq {
                publish.send_replace(seq);
            }
            tokio::time::sleep(GATHER).await;
        }
    }
}

/// What a failing watch means for the page.
fn visibility_of(error: &watcher::Error) -> Visibility {
    let response = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(r))
        | watcher::Error::WatchStartFailed(kube::Error::Api(r)) => Some(r),
        _ => None,
    };
    match response {
        Some(r) if r.code == 403 => Visibility::Forbidden(r.message.clone()),
        Some(r) if r.code == 404 => Visibility::NotServed(r.message.clone()),
        _ => Visibility::Failing(error.to_string()),
    }
}

#[cfg(test)]
mod tests;
