//! `koncli semaphore|mutex|rwmutex …`: the lock verbs over the SDK's
//! [`konductor_sdk::locks`], and `run`, which holds a lock around a command as
//! `flock(1)` does around a file.

use std::time::Duration;

use konductor_api::locks::{
    LockKind, Mutex, MutexSpec, PermitMode, RWMutex, RWMutexSpec, Semaphore, SemaphoreSpec,
};
use konductor_sdk::locks::{Claim, Locks, Wait};
use konductor_sdk::{Connection, Error};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};

use crate::cli::{AcquireArgs, LockCommand, LockCreateArgs, LockListArgs, ReleaseArgs, RunArgs};
use crate::output::{self, MachineFormat};
use crate::{EXIT_BUSY, EXIT_LOST, EXIT_OK, EXIT_USAGE, EXIT_WAIT_TIMEOUT};

/// What a lock command ends with: an exit code, or an error to print.
type Outcome = konductor_sdk::Result<u8>;

fn lock_error(kind: LockKind, connection: &Connection, name: &str, error: kube::Error) -> Error {
    let message = match &error {
        kube::Error::Api(status) if status.code == 404 => "not found".to_owned(),
        kube::Error::Api(status) if status.code == 409 => "already exists".to_owned(),
        kube::Error::Api(status) => status.message.clone(),
        other => format!("cannot reach the API server: {other}"),
    };
    Error::Lock {
        kind: kind.word(),
        namespace: connection.namespace.clone(),
        lock: name.to_owned(),
        message,
    }
}

/// The `kind` locks of the connection's namespace, as dynamic objects.
fn lock_api(kind: LockKind, connection: &Connection) -> Api<DynamicObject> {
    Api::namespaced_with(
        connection.client.clone(),
        &connection.namespace,
        &kind.api_resource(),
    )
}

/// A usage error found after parsing (a verb or flag that does not fit the kind).
fn usage(message: &str) -> Outcome {
    eprintln!("koncli: {message} (see --help)");
    Ok(EXIT_USAGE)
}

/// Runs one lock command for a `kind` lock.
pub async fn command(kind: LockKind, command: LockCommand, connection: &Connection) -> Outcome {
    let locks = Locks::new(connection);
    let rwmutex_only = |verb: &str| {
        format!(
            "`{verb}` is an rwmutex verb (a {} has no read side)",
            kind.word()
        )
    };
    match command {
        LockCommand::Lock(args) => acquire(kind, PermitMode::Exclusive, &locks, args).await,
        LockCommand::Rlock(args) if kind == LockKind::RWMutex => {
            acquire(kind, PermitMode::Shared, &locks, args).await
        }
        LockCommand::Unlock(args) => release(kind, PermitMode::Exclusive, &locks, args).await,
        LockCommand::Runlock(args) if kind == LockKind::RWMutex => {
            release(kind, PermitMode::Shared, &locks, args).await
        }
        LockCommand::Rlock(_) => usage(&rwmutex_only("rlock")),
        LockCommand::Runlock(_) => usage(&rwmutex_only("runlock")),
        LockCommand::Run(args) if args.read && kind != LockKind::RWMutex => {
            usage(&rwmutex_only("run --read"))
        }
        LockCommand::Run(args) => run(kind, &locks, args).await,
        LockCommand::Create(args) => create(kind, connection, args).await,
        LockCommand::Delete(args) => {
            let api = lock_api(kind, connection);
            api.delete(&args.name, &DeleteParams::default())
                .await
                .map_err(|e| lock_error(kind, connection, &args.name, e))?;
            println!(
                "{} {}/{} deleted",
                kind.word(),
                connection.namespace,
                args.name
            );
            Ok(EXIT_OK)
        }
        LockCommand::List(args) => list(kind, connection, args).await,
        LockCommand::Status(args) => {
            let api = lock_api(kind, connection);
            let lock = api
                .get(&args.name)
                .await
                .map_err(|e| lock_error(kind, connection, &args.name, e))?;
            let raw = serde_json::to_value(&lock).unwrap_or_default();
            match args.output {
                Some(format) => print!(
                    "{}",
                    output::serialized(&raw, MachineFormat::of_create(format))
                ),
                None => print!("{}", summary(kind, &connection.namespace, &raw)),
            }
            Ok(EXIT_OK)
        }
    }
}

/// The claim a command makes.
fn claim(kind: LockKind, mode: PermitMode, name: &str, holder: String, priority: i32) -> Claim {
    let claim = match (kind, mode) {
        (LockKind::Semaphore, _) => Claim::semaphore(name, &holder),
        (LockKind::Mutex, _) => Claim::mutex(name, &holder),
        (LockKind::RWMutex, PermitMode::Shared) => Claim::read(name, &holder),
        (LockKind::RWMutex, PermitMode::Exclusive) => Claim::write(name, &holder),
    };
    claim.with_priority(priority)
}

fn wait_of(wait: bool, timeout: Option<Duration>) -> Wait {
    match (wait, timeout) {
        (false, _) => Wait::No,
        (true, None) => Wait::Forever,
        (true, Some(limit)) => Wait::AtMost(limit),
    }
}

/// The exit code for a failed acquisition, or the error to print.
fn refused(error: Error) -> Outcome {
    match error {
        Error::LockBusy { .. } => {
            eprintln!("koncli: {error}");
            Ok(EXIT_BUSY)
        }
        Error::LockTimeout { .. } => {
            eprintln!("koncli: {error}");
            Ok(EXIT_WAIT_TIMEOUT)
        }
        Error::LockLost { .. } => {
            eprintln!("koncli: {error}");
            Ok(EXIT_LOST)
        }
        other => Err(other),
    }
}

async fn acquire(kind: LockKind, mode: PermitMode, locks: &Locks, args: AcquireArgs) -> Outcome {
    let holder = crate::resolve_holder(args.holder);
    let claim = claim(kind, mode, &args.name, holder, args.priority);
    match locks
        .acquire(&claim, wait_of(args.wait, args.timeout))
        .await
    {
        Ok(guard) => {
            println!("{}", guard.detach());
            Ok(EXIT_OK)
        }
        Err(error) => refused(error),
    }
}

async fn release(kind: LockKind, mode: PermitMode, locks: &Locks, args: ReleaseArgs) -> Outcome {
    let holder = crate::resolve_holder(args.holder);
    let claim = claim(kind, mode, &args.name, holder.clone(), 0);
    if locks.release(&claim).await? {
        println!("{} {} released by {holder}", kind.word(), args.name);
    } else {
        println!("{holder} held no claim on {} {}", kind.word(), args.name);
    }
    Ok(EXIT_OK)
}

async fn create(kind: LockKind, connection: &Connection, args: LockCreateArgs) -> Outcome {
    let ttl = args
        .ttl
        .unwrap_or_else(|| konductor_api::locks::DEFAULT_TTL.to_owned());
    let body = match (kind, args.permits) {
        (LockKind::Semaphore, Some(permits)) => {
            serde_json::to_value(Semaphore::new(&args.name, SemaphoreSpec { permits, ttl }))
        }
        (LockKind::Semaphore, None) => return usage("a semaphore needs --permits N"),
        (_, Some(_)) => {
            return usage(&format!(
                "--permits is for semaphores (a {} has one holder)",
                kind.word()
            ));
        }
        (LockKind::Mutex, None) => serde_json::to_value(Mutex::new(&args.name, MutexSpec { ttl })),
        (LockKind::RWMutex, None) => {
            serde_json::to_value(RWMutex::new(&args.name, RWMutexSpec { ttl }))
        }
    };
    let object: DynamicObject =
        serde_json::from_value(body.expect("a lock serializes")).expect("a lock is an object");
    lock_api(kind, connection)
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| lock_error(kind, connection, &args.name, e))?;
    println!(
        "{} {}/{} created",
        kind.word(),
        connection.namespace,
        args.name
    );
    Ok(EXIT_OK)
}

async fn list(kind: LockKind, connection: &Connection, args: LockListArgs) -> Outcome {
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = if args.all_namespaces {
        Api::all_with(connection.client.clone(), &resource)
    } else {
        lock_api(kind, connection)
    };
    let listed = api
        .list(&Default::default())
        .await
        .map_err(|e| lock_error(kind, connection, "*", e))?;
    let items: Vec<serde_json::Value> = listed
        .items
        .iter()
        .map(|item| serde_json::to_value(item).unwrap_or_default())
        .collect();
    if let Some(format) = args.output {
        let list = serde_json::json!({ "items": items });
        print!(
            "{}",
            output::serialized_list(list, MachineFormat::of_create(format))
        );
        return Ok(EXIT_OK);
    }
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "PHASE",
            "HOLDERS",
            "WAITING",
            "TOKEN",
            "AGE",
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect::<Vec<_>>(),
    ];
    let now = jiff::Timestamp::now();
    for item in &items {
        let status = &item["status"];
        let names = |value: &serde_json::Value| {
            let names: Vec<&str> = match value {
                serde_json::Value::Array(list) => {
                    list.iter().filter_map(serde_json::Value::as_str).collect()
                }
                serde_json::Value::String(one) => vec![one.as_str()],
                _ => Vec::new(),
            };
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            }
        };
        let holders = match kind {
            LockKind::Semaphore => names(&status["holders"]),
            LockKind::Mutex => names(&status["holder"]),
            LockKind::RWMutex => match status["writeHolder"].as_str() {
                Some(writer) => writer.to_owned(),
                None => names(&status["readHolders"]),
            },
        };
        let created = item["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        rows.push(vec![
            item["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            status["phase"].as_str().unwrap_or("-").to_owned(),
            holders,
            names(&status["waiting"]),
            status["fencingToken"].as_i64().unwrap_or(0).to_string(),
            created.map_or("<unknown>".to_owned(), |t| output::age(t, now)),
        ]);
    }
    if !args.all_namespaces {
        for row in &mut rows {
            row.remove(0);
        }
    }
    if rows.len() == 1 {
        eprintln!("No {} found in {}", resource.plural, connection.namespace);
        return Ok(EXIT_OK);
    }
    print!("{}", output::aligned(&rows));
    Ok(EXIT_OK)
}

/// A few lines about a lock, from its status.
fn summary(kind: LockKind, namespace: &str, lock: &serde_json::Value) -> String {
    let status = &lock["status"];
    let list = |field: &str| {
        let names: Vec<&str> = status[field]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let holders = match kind {
        LockKind::Semaphore => format!(
            "{} of {} in use: {}",
            status["inUse"].as_i64().unwrap_or(0),
            lock["spec"]["permits"].as_i64().unwrap_or(0),
            list("holders")
        ),
        LockKind::Mutex => status["holder"].as_str().unwrap_or("none").to_owned(),
        LockKind::RWMutex => match status["writeHolder"].as_str() {
            Some(writer) => format!("{writer} (writing)"),
            None => format!("{} (reading)", list("readHolders")),
        },
    };
    format!(
        "{} {namespace}/{}\n  Phase:         {}\n  Holders:       {holders}\n  Waiting:       {}\n  Fencing token: {}\n  TTL:           {}\n",
        kind.word(),
        lock["metadata"]["name"].as_str().unwrap_or_default(),
        status["phase"]
            .as_str()
            .unwrap_or("none reported yet: is a controller running?"),
        list("waiting"),
        status["fencingToken"].as_i64().unwrap_or(0),
        lock["spec"]["ttl"]
            .as_str()
            .unwrap_or(konductor_api::locks::DEFAULT_TTL),
    )
}

/// `run`: hold the lock around a command.
async fn run(kind: LockKind, locks: &Locks, args: RunArgs) -> Outcome {
    let holder = match args.holder {
        Some(holder) => holder,
        None => format!("{}-{}", crate::resolve_holder(None), std::process::id()),
    };
    let mode = if args.read {
        PermitMode::Shared
    } else {
        PermitMode::Exclusive
    };
    let claim = claim(kind, mode, &args.name, holder, args.priority);
    let wait = args.timeout.map_or(Wait::Forever, Wait::AtMost);
    let guard = match locks.acquire(&claim, wait).await {
        Ok(guard) => guard,
        Err(error) => return refused(error),
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut child = match tokio::process::Command::new(program)
        .args(rest)
        .env("KONDUCTOR_FENCING_TOKEN", guard.token().to_string())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            let _ = guard.release().await;
            eprintln!("koncli: cannot run {program}: {error}");
            return Ok(crate::EXIT_ERROR);
        }
    };
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    let signal_child = |signal: rustix::process::Signal| {
        if let Some(pid) = pid
            && let Err(error) = rustix::process::kill_process(pid, signal)
        {
            say_signal_not_forwarded(&error);
        }
    };
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut terminations = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut lost = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = interrupts.recv() => signal_child(rustix::process::Signal::INT),
            _ = terminations.recv() => signal_child(rustix::process::Signal::TERM),
            () = guard.lost(), if !lost => {
                lost = true;
                eprintln!("koncli: {} {}: the grant was lost; stopping the command", kind.word(), args.name);
                signal_child(rustix::process::Signal::TERM);
            }
        }
    };
    if let Err(error) = guard.release().await {
        eprintln!("koncli: {error}");
    }
    if lost {
        return Ok(EXIT_LOST);
    }
    let code = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1)
        }
        Err(error) => {
            eprintln!("koncli: waiting for {program}: {error}");
            1
        }
    };
    Ok(u8::try_from(code).unwrap_or(1))
}

/// A signal that could not be forwarded (the command already exited): said, not fatal.
fn say_signal_not_forwarded(error: &impl std::fmt::Display) {
    eprintln!("koncli: forwarding a signal to the command: {error}");
}
