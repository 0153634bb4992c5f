//! `koncli dashboard` in headless Chromium with a large set stored: 1,000 Barriers,
//! 100 Mutexes with 100 waiting Permits each (and one holder), and a WaitGroup of
//! 10,000 members — created directly, with a long ttl, nothing renewing. Measured:
//! first render (the dashboard started just before the page is opened, so its own
//! lists are included; and a reload once it is synced), the DOM's size, the dashboard
//! process's memory, and an arrival's acknowledgement → the page's DOM showing it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use konductor_api::locks::{LockKind, Mutex, MutexSpec, Permit, PermitSpec};
use konductor_api::waitgroup::{WaitGroup, WaitGroupMember, WaitGroupMemberSpec};
use konductor_api::{Barrier, BarrierSpec};
use konductor_testing::browser::{Browser, DashboardProcess};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::server::ServerProcess;

/// The set's sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Barriers.
    pub barriers: usize,
    /// Mutexes.
    pub locks: usize,
    /// Waiting Permits per Mutex (one more holds it).
    pub waiting: usize,
    /// Members of the one WaitGroup.
    pub members: usize,
    /// Arrivals timed.
    pub samples: usize,
}

/// What was measured.
pub struct Measured {
    /// Page opened → every kind drawn, the dashboard started just before (ms).
    pub first_render_cold_ms: f64,
    /// The same, reloading once the dashboard is synced (ms).
    pub first_render_warm_ms: f64,
    /// Elements in the page, and of them rows (table rows, list items, grid cells).
    pub dom_elements: f64,
    /// Rows drawn.
    pub dom_rows: f64,
    /// The dashboard process's resident memory after the first render (MiB).
    pub dashboard_rss_mib: f64,
    /// Each arrival acknowledged → shown in the page (ms).
    pub arrival_to_dom_ms: Vec<f64>,
    /// Objects stored.
    pub objects: usize,
}

const NAMESPACE: &str = "default";
const CONCURRENCY: usize = 16;

async fn create_all<K, I>(api: &Api<K>, objects: I) -> anyhow::Result<Vec<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    I: IntoIterator<Item = K>,
{
    futures::stream::iter(objects)
        .map(|object| async move { api.create(&PostParams::default(), &object).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .context("creating the set")
}

/// Creates the set and waits until the controller has queued every Permit.
async fn store(client: &kube::Client, sizes: Sizes) -> anyhow::Result<usize> {
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), NAMESPACE);
    let spec = |expected| BarrierSpec {
        expected,
        timeout: None,
        quorum: None,
        ttl_after_finished: None,
    };
    create_all(
        &barriers,
        (0..sizes.barriers).map(|i| Barrier::new(&format!("b-{i:04}"), spec(3))),
    )
    .await?;
    create_all(
        &barriers,
        (0..sizes.samples).map(|i| Barrier::new(&format!("lat-{i:02}"), spec(2))),
    )
    .await?;

    let mutexes: Api<Mutex> = Api::namespaced(client.clone(), NAMESPACE);
    let permits: Api<Permit> = Api::namespaced(client.clone(), NAMESPACE);
    let made = create_all(
        &mutexes,
        (0..sizes.locks).map(|i| {
            Mutex::new(
                &format!("m-{i:03}"),
                MutexSpec {
                    ttl: "24h".to_owned(),
                },
            )
        }),
    )
    .await?;
    for mutex in &made {
        let uid = mutex.uid().unwrap_or_default();
        let name = mutex.name_any();
        create_all(
            &permits,
            (0..=sizes.waiting).map(|h| {
                Permit::for_lock(
                    PermitSpec::new(LockKind::Mutex, &name, format!("worker-{h:03}")),
                    &uid,
                )
            }),
        )
        .await?;
    }

    let groups: Api<WaitGroup> = Api::namespaced(client.clone(), NAMESPACE);
    let group: WaitGroup = serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "WaitGroup",
        "metadata": {"name": "ingest"},
        "spec": {"expected": sizes.members},
    }))?;
    let group = groups.create(&PostParams::default(), &group).await?;
    let uid = group.uid().unwrap_or_default();
    let members: Api<WaitGroupMember> = Api::namespaced(client.clone(), NAMESPACE);
    create_all(
        &members,
        (0..sizes.members).map(|i| {
            WaitGroupMember::of_group(
                WaitGroupMemberSpec::new("ingest", format!("f-{i:05}")),
                &uid,
            )
        }),
    )
    .await?;

    // The controller has queued every Permit when every Mutex lists its waiters.
    let started = Instant::now();
    loop {
        let listed = mutexes.list(&ListParams::default()).await?;
        let queued = listed.items.iter().all(|m| {
            m.status
                .as_ref()
                .is_some_and(|s| s.claims.waiting_count as usize == sizes.waiting)
        });
        if queued {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the controller did not queue every Permit within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(sizes.barriers + sizes.samples + sizes.locks * (sizes.waiting + 2) + 1 + sizes.members)
}

/// Every kind drawn: the page says it is ready, and the big objects are in it.
const RENDERED: &str = "return document.body.dataset.ready === 'true' \
    && document.querySelector('[data-key=\"WaitGroup/default/ingest\"] .cell') \
    && document.querySelectorAll('[data-key^=\"Mutex/\"] .queue li').length > 0 \
    && document.querySelectorAll('[data-key^=\"Barrier/\"]').length > 0 || null;";

/// Waits, in the page, until panel `key` shows `text` in `.arrived`, and returns the
/// page's clock then (ms since the epoch, sub-millisecond): a MutationObserver checks
/// on every change, so what is timed is the DOM change itself.
const SHOWN_AT: &str = "const [key, text, done] = arguments; \
    const seen = () => { const p = document.querySelector(`[data-key=\"${key}\"] .arrived`); \
      return p && p.textContent.includes(text); }; \
    if (seen()) { done(performance.timeOrigin + performance.now()); return; } \
    const observer = new MutationObserver(() => { if (seen()) { \
      observer.disconnect(); done(performance.timeOrigin + performance.now()); } }); \
    observer.observe(document.body, {childList: true, subtree: true, characterData: true});";

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn rows(browser: &Browser) -> anyhow::Result<(f64, f64)> {
    let counts = browser
        .execute(
            "return [document.querySelectorAll('*').length, \
             document.querySelectorAll('tr, li, .cell').length];",
            &[],
        )
        .map_err(anyhow::Error::msg)?;
    let at = |i: usize| counts[i].as_f64().unwrap_or(f64::NAN);
    Ok((at(0), at(1)))
}

/// Runs the whole measurement against a fresh server.
pub async fn measure(
    server: &ServerProcess,
    koncli: &std::path::Path,
    sizes: Sizes,
) -> anyhow::Result<Measured> {
    let client = server.client().await?;
    eprintln!("dashboard: storing the set...");
    let objects = store(&client, sizes).await?;
    let browser = tokio::task::spawn_blocking(|| Browser::start(1400, 1000))
        .await?
        .map_err(anyhow::Error::msg)?;
    let browser = std::sync::Arc::new(browser);

    eprintln!("dashboard: first render...");
    let dashboard = DashboardProcess::start(koncli, &server.kubeconfig, &["-n", NAMESPACE])
        .map_err(anyhow::Error::msg)?;
    let (url, b) = (dashboard.url.clone(), browser.clone());
    let (cold, warm, (dom_elements, dom_rows)) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        b.goto(&url)?;
        b.wait_for(RENDERED, &[], Duration::from_secs(60))?;
        let cold = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let base = url.split('?').next().unwrap_or_default().to_owned();
        b.goto(&base)?;
        b.wait_for(RENDERED, &[], Duration::from_secs(60))?;
        let warm = started.elapsed().as_secs_f64() * 1000.0;
        let dom = rows(&b).map_err(|e| e.to_string())?;
        Ok::<_, String>((cold, warm, dom))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    let dashboard_rss_mib = crate::server::proc_status_kib(dashboard.child.id(), "VmRSS:") / 1024.0;

    eprintln!("dashboard: {} arrivals...", sizes.samples);
    let barriers = konductor_sdk::Barriers::new(&konductor_sdk::Connection {
        client: client.clone(),
        namespace: NAMESPACE.to_owned(),
        url: String::new(),
    });
    let mut arrival_to_dom_ms = Vec::with_capacity(sizes.samples);
    for i in 0..sizes.samples {
        let key = format!("Barrier/{NAMESPACE}/lat-{i:02}");
        let name = format!("lat-{i:02}");
        // Draw the barrier (filtered to it), then start watching the DOM for the
        // arrival before making it.
        let (b, shown_key) = (browser.clone(), key.clone());
        let filter = name.clone();
        tokio::task::spawn_blocking(move || {
            b.execute(
                "const f = document.getElementById('filter'); f.value = arguments[0]; \
                 f.dispatchEvent(new Event('input'));",
                &[json!(filter)],
            )?;
            b.wait_for(
                "const p = document.querySelector(`[data-key=\"${arguments[0]}\"] .arrived`); \
                 return p && p.textContent.includes('0 of 2 arrived') || null;",
                &[json!(shown_key)],
                Duration::from_secs(30),
            )
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        let b = browser.clone();
        let watching = tokio::task::spawn_blocking(move || -> Result<Value, String> {
            b.execute_async(SHOWN_AT, &[json!(key), json!("1 of 2 arrived")])
        });
        // The observer is installed within a few milliseconds of the request; the
        // arrival waits for it (the figure would otherwise include nothing extra, but
        // an arrival shown before the observer runs would be timed as 0).
        tokio::time::sleep(Duration::from_millis(100)).await;
        barriers
            .arrive(&name, "bench", konductor_api::Outcome::Succeeded, None)
            .await
            .context("arriving")?;
        let acknowledged = now_ms();
        let shown = watching.await?.map_err(anyhow::Error::msg)?;
        let shown = shown.as_f64().context("the page's clock")?;
        arrival_to_dom_ms.push(shown - acknowledged);
    }
    Ok(Measured {
        first_render_cold_ms: cold,
        first_render_warm_ms: warm,
        dom_elements,
        dom_rows,
        dashboard_rss_mib,
        arrival_to_dom_ms,
        objects,
    })
}
