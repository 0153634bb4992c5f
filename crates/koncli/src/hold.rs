//! Every `run` of the lock family — `KIND run NAME -- CMD` ([`run_one`]) and `koncli
//! run --hold KIND/NAME … -- CMD` ([`run`]) — one path ([`run_holding`]): the locks are
//! taken one by one in the global order of [`konductor_sdk::locks::in_global_order`]
//! (namespace, kind, name — whatever order or spelling the flags came in), so two such
//! runs never deadlock. Each lock's fencing token reaches the command as
//! `KONDUCTOR_FENCING_TOKEN_<KIND>_<NAMESPACE>_<NAME>`, the first's also as
//! `KONDUCTOR_FENCING_TOKEN`; losing any grant stops the command (exit 7).

use clap::Args;
use konductor_api::locks::{LockKind, PermitMode};
use konductor_sdk::locks::{Claim, Guard, Held, Locks, Wait, in_global_order};
use konductor_sdk::{Connection, Error};

use crate::exit::{EXIT_LOST, EXIT_USAGE};
use crate::locks::{FirstUse, IfBusy, IfBusyArgs, RunHow, acquire_first_use, refused};
use crate::run::{FENCING_TOKEN_ENV, Ran, check_runnable, supervised};
use crate::signals::Interrupts;

/// What `run --hold` does, for its `--help`.
pub const HOLD_HELP: &str = "\
Every lock is held before the command starts. They are taken one by one in one global
order — by namespace, kind and name, whatever order the --hold flags came in — so two
runs that need the same locks never deadlock: while one waits for a later lock it
holds the earlier ones, and the other asks for the earlier ones first.

--hold KIND/NAME       a mutex or a semaphore permit, or an rwmutex's write side
--hold rwmutex/NAME=read   an rwmutex's read side (=write: the write side)
--hold semaphore/NAME=N    a semaphore of N permits if created on first use
KIND is mutex, semaphore or rwmutex (or their plurals, or the kind: Mutex).

The command gets each lock's fencing token as
KONDUCTOR_FENCING_TOKEN_<KIND>_<NAMESPACE>_<NAME> (upper case, other characters as _)
and the first lock's as KONDUCTOR_FENCING_TOKEN. Losing any grant stops the command
(SIGTERM, then SIGKILL) and exits 7; interrupted while waiting, every claim is
withdrawn. Locks that do not exist are created on first use (--no-create refuses).
--if-busy skip exits 10 without running when any lock cannot be had at once.";

/// `koncli run`.
#[derive(Args, Debug)]
#[command(after_help = HOLD_HELP)]
pub struct HoldArgs {
    /// A lock to hold (repeat for each): KIND/NAME, rwmutex/NAME=read|write,
    /// semaphore/NAME=PERMITS.
    #[arg(long = "hold", value_name = "KIND/NAME[=MODE]", required = true, value_parser = parse_hold)]
    pub holds: Vec<Hold>,
    /// Who holds them, how long to wait, what to do when busy, and the command.
    #[command(flatten)]
    pub how: RunHow,
}

/// One `--hold` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The lock's kind.
    pub kind: LockKind,
    /// Its name.
    pub name: String,
    /// Read (an RWMutex's shared side) or not.
    pub mode: PermitMode,
    /// A Semaphore's permits, for first use.
    pub permits: Option<i32>,
}

/// The lock kind a `--hold` spells: its word, plural or kind name, any case, optionally
/// with the group (`mutexes.konductor.io`).
fn lock_kind(spelled: &str) -> Option<LockKind> {
    let lower = spelled.to_ascii_lowercase();
    let bare = lower
        .strip_suffix(&format!(".{}", konductor_api::GROUP))
        .unwrap_or(&lower);
    [LockKind::Mutex, LockKind::Semaphore, LockKind::RWMutex]
        .into_iter()
        .find(|kind| bare == kind.word() || bare == kind.plural())
}

/// Parses a `--hold` value; the error says what is wrong.
pub fn parse_hold(text: &str) -> Result<Hold, String> {
    let (object, mode) = match text.split_once('=') {
        Some((object, mode)) => (object, Some(mode)),
        None => (text, None),
    };
    let (kind, name) = object
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .ok_or_else(|| format!("{text:?}: expected KIND/NAME, like mutex/db"))?;
    let kind = lock_kind(kind).ok_or_else(|| {
        format!("{text:?}: {kind:?} is not a lock kind (mutex, semaphore or rwmutex)")
    })?;
    crate::args::parse_name(name).map_err(|why| format!("{text:?}: {why}"))?;
    let mut hold = Hold {
        kind,
        name: name.to_owned(),
        mode: PermitMode::Exclusive,
        permits: None,
    };
    match (kind, mode) {
        (_, None) | (LockKind::RWMutex, Some("write")) => {}
        (LockKind::RWMutex, Some("read")) => hold.mode = PermitMode::Shared,
        (LockKind::Semaphore, Some(permits)) => {
            hold.permits = Some(
                permits
                    .parse()
                    .ok()
                    .filter(|n: &i32| *n >= 1)
                    .ok_or_else(|| {
                        format!("{text:?}: a semaphore's =N is its permits, at least 1")
                    })?,
            );
        }
        (LockKind::RWMutex, Some(other)) => {
            return Err(format!("{text:?}: {other:?} is not read or write"));
        }
        (_, Some(_)) => {
            return Err(format!(
                "{text:?}: only an rwmutex takes =read|write, and a semaphore =PERMITS"
            ));
        }
    }
    Ok(hold)
}

/// The variable that carries one held lock's fencing token:
/// `KONDUCTOR_FENCING_TOKEN_<KIND>_<NAMESPACE>_<NAME>`, upper case, every character but
/// a letter or digit as `_`.
pub fn token_variable(kind: LockKind, namespace: &str, name: &str) -> String {
    let part = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{FENCING_TOKEN_ENV}_{}_{}_{}",
        part(kind.word()),
        part(namespace),
        part(name)
    )
}

/// A usage error: one line, exit 2.
fn usage(message: &str) -> u8 {
    eprintln!("{}: {message} (see --help)", crate::exit::program_name());
    EXIT_USAGE
}

/// Runs `koncli run --hold …`.
pub async fn run(args: HoldArgs, connection: &Connection) -> konductor_sdk::Result<u8> {
    let locks = Locks::new(connection);
    let holder = crate::holder::run_identity(args.how.holder.clone());
    let claims: Vec<(Claim, FirstUse)> = args
        .holds
        .iter()
        .map(|hold| {
            let claim =
                crate::locks::claim(hold.kind, hold.mode, &hold.name, &holder, args.how.priority);
            let sizing = crate::locks::Sizing::permits(hold.permits);
            (claim, FirstUse::of(&args.how.first_use, sizing))
        })
        .collect();
    run_holding(&locks, claims, &args.how).await
}

/// `KIND run NAME -- CMD`: hold one lock around a command — `run --hold` with one lock
/// (the supervision is [`crate::run`](mod@crate::run)'s).
pub async fn run_one(
    kind: LockKind,
    mode: PermitMode,
    locks: &Locks,
    args: crate::locks::RunArgs,
    sizing: crate::locks::Sizing,
) -> konductor_sdk::Result<u8> {
    let holder = crate::holder::run_identity(args.how.holder.clone());
    let claim = crate::locks::claim(kind, mode, &args.name, &holder, args.how.priority);
    let first_use = FirstUse::of(&args.how.first_use, sizing);
    run_holding(locks, vec![(claim, first_use)], &args.how).await
}

/// Holds every lock `claims` name — each made on first use as its [`FirstUse`] allows —
/// taken one by one in the global order, around `how.command`: every `run` of the lock
/// family (`mutex run NAME` is this with one claim). Usage errors (a lock named twice,
/// token variables that collide, `--timeout` with a policy that does not wait) exit 2
/// before anything is claimed.
pub async fn run_holding(
    locks: &Locks,
    claims: Vec<(Claim, FirstUse)>,
    how: &RunHow,
) -> konductor_sdk::Result<u8> {
    let (program, _) = how.command.split_first().expect("clap requires a command");
    if let Err((code, why)) = check_runnable(program) {
        eprintln!("{}: {why}", crate::exit::program_name());
        return Ok(code);
    }
    let namespace = locks.namespace().to_owned();
    let (bare, first_uses): (Vec<Claim>, Vec<FirstUse>) = claims.iter().cloned().unzip();
    let ordered = match in_global_order(&namespace, &bare) {
        Ok(ordered) => ordered,
        Err(error) => return Ok(usage(&error.to_string())),
    };
    let first_use_of = |claim: &Claim| {
        bare.iter()
            .position(|c| c.kind == claim.kind && c.lock == claim.lock)
            .map(|i| first_uses[i].clone())
            .unwrap_or_default()
    };
    let mut variables: Vec<(String, &Claim)> = Vec::new();
    for claim in &ordered {
        let variable = token_variable(claim.kind, &namespace, &claim.lock);
        if let Some((_, other)) = variables.iter().find(|(v, _)| *v == variable) {
            return Ok(usage(&format!(
                "{}/{} and {}/{} would both pass their token as {variable}: rename one",
                other.kind.word(),
                other.lock,
                claim.kind.word(),
                claim.lock
            )));
        }
        variables.push((variable, claim));
    }
    let wait = match how.if_busy.wait(how.timeout) {
        Ok(wait) => wait,
        Err(why) => return Ok(usage(&why)),
    };
    let mut interrupts = Interrupts::new();
    let taken = take_in_order(
        locks,
        &ordered,
        &first_use_of,
        &how.if_busy,
        wait,
        &mut interrupts,
    );
    let held = match taken.await {
        Ok(held) => held,
        Err(Taken::Exit(code)) => return Ok(code),
        Err(Taken::Failed(error)) => return refused(error),
    };
    let mut env: Vec<(String, String)> = held
        .guards()
        .iter()
        .map(|guard| {
            (
                token_variable(guard.kind(), &namespace, guard.lock()),
                guard.token().to_string(),
            )
        })
        .collect();
    env.push((FENCING_TOKEN_ENV.to_owned(), held.token().to_string()));
    let what = ordered
        .iter()
        .map(|c| format!("{} {namespace}/{}", c.kind.word(), c.lock))
        .collect::<Vec<_>>()
        .join(", ");
    let several = ordered.len() > 1;
    let ran = supervised(
        &how.command,
        &env,
        held.timing(),
        async {
            let (kind, name, loss) = held.lost().await;
            if several {
                eprintln!(
                    "{}: lost {} {namespace}/{name}",
                    crate::exit::program_name(),
                    kind.word()
                );
            }
            loss
        },
        &mut interrupts,
        &what,
        held.mark_interrupting(),
    )
    .await;
    if ran == Ran::Lost {
        held.release_lost().await;
        return Ok(EXIT_LOST);
    }
    if let Err(error) = held.release().await {
        eprintln!("{}: {error}", crate::exit::program_name());
    }
    let released = if several {
        "locks released"
    } else {
        "lock released"
    };
    Ok(ran.report(&what, program, released))
}

/// Why the locks were not all taken.
enum Taken {
    /// Interrupted, skipped or busy: exit with this code (said on stderr).
    Exit(u8),
    /// An error to report.
    Failed(Error),
}

/// Takes `ordered` one by one (each made on first use as `first_use_of` it says),
/// within `wait` in all; gives back what it took when it cannot take them all.
async fn take_in_order(
    locks: &Locks,
    ordered: &[Claim],
    first_use_of: &impl Fn(&Claim) -> FirstUse,
    if_busy: &IfBusyArgs,
    wait: Wait,
    interrupts: &mut Interrupts,
) -> Result<Held, Taken> {
    let deadline = match wait {
        Wait::AtMost(limit) => Some(tokio::time::Instant::now() + limit),
        _ => None,
    };
    let waiting = if_busy.if_busy == IfBusy::Wait;
    let mut guards: Vec<Guard> = Vec::with_capacity(ordered.len());
    for claim in ordered {
        let this_wait = match deadline {
            Some(deadline) => {
                Wait::AtMost(deadline.saturating_duration_since(tokio::time::Instant::now()))
            }
            None => wait,
        };
        let first_use = first_use_of(claim);
        let taken =
            acquire_first_use(locks, claim, this_wait, waiting, interrupts, &first_use).await;
        match taken {
            Ok(guard) => guards.push(guard),
            Err(error) => {
                Held::new(guards).release().await.ok();
                return Err(match error {
                    Error::LockCancelled { .. } => Taken::Exit(interrupts.withdrawn()),
                    error => match if_busy.busy(&error) {
                        Some(code) => Taken::Exit(code),
                        None => Taken::Failed(error),
                    },
                });
            }
        }
    }
    Ok(Held::new(guards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_in_any_spelling_and_modes_only_where_they_mean_something() {
        for spelled in [
            "mutex/db",
            "mutexes/db",
            "Mutex/db",
            "mutexes.konductor.io/db",
        ] {
            let hold = parse_hold(spelled).unwrap();
            assert_eq!(
                (hold.kind, hold.name.as_str()),
                (LockKind::Mutex, "db"),
                "{spelled}"
            );
        }
        assert_eq!(
            parse_hold("rwmutex/cfg=read").unwrap().mode,
            PermitMode::Shared
        );
        assert_eq!(
            parse_hold("rwmutexes/cfg=write").unwrap().mode,
            PermitMode::Exclusive
        );
        assert_eq!(parse_hold("semaphore/gpus=4").unwrap().permits, Some(4));
        for bad in [
            "mutex/db=read",
            "semaphore/gpus=0",
            "rwmutex/cfg=both",
            "lock/x",
            "db",
            "mutex/Bad",
        ] {
            assert!(parse_hold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_variables_are_upper_case_with_other_characters_as_underscores() {
        assert_eq!(
            token_variable(LockKind::RWMutex, "team-a", "cfg.v2"),
            "KONDUCTOR_FENCING_TOKEN_RWMUTEX_TEAM_A_CFG_V2"
        );
    }
}
