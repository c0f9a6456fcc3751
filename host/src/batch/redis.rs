//! Batches scaled out over Redis Streams.
//!
//! A submitter ([`submit`]) puts jobs on one stream that every worker
//! reads through a consumer group; workers ([`run_worker`]) run them on
//! their own [`Executor`] (a process pool) and record each result; the
//! submitter collects the results into the same [`Batch`] stream a local
//! batch gives.
//!
//! Keys, under a prefix (default `llmos`), for batch `B`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:jobs` | stream, group `workers` | `batch`, `job` (the [`Job`] JSON, batch limits filled in) |
//! | `P:batch:B:results` | stream | `result` (one result JSON) |
//! | `P:batch:B:done` | hash | job id → 1, for every recorded result |
//! | `P:batch:B:budget` | string | fuel not yet reserved (absent: no budget) |
//! | `P:batch:B:held` | hash | job id → fuel reserved by a job in flight |
//! | `P:batch:B:cancelled` | string | set when the batch is cancelled |
//!
//! Exactly once: a result is recorded by a script that sets the job's
//! `done` field and appends the result only if the field was new, so a job
//! run twice (its worker died after running it, or looked dead) still has
//! one result. A worker acknowledges a job after recording it; a job whose
//! worker died stays pending and is taken over by another worker with
//! `XAUTOCLAIM` once it has been idle for the reclaim time.
//!
//! The fuel budget is the same protocol as [`LocalBudget`](super::LocalBudget)
//! done atomically in Redis: reserve (wait while other reservations are
//! outstanding), run with what was granted, give back what was not used. A
//! taken-over job's old reservation is released when it is reserved again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{Semaphore, mpsc};

use super::result::{JobResult, NOT_RUN};
use super::{Batch, BatchOptions, CANCELLED, Executor, Job, fill, fuel_wanted};
use crate::error::HostError;

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
/// Key prefix unless told otherwise.
pub const DEFAULT_PREFIX: &str = "llmos";
/// How long a finished batch's keys are kept, seconds.
pub const BATCH_TTL_SECS: u64 = 7 * 24 * 3600;

/// Before a job runs: -3 if its batch was cancelled, -1 without a budget,
/// -2 to wait for other reservations, else the fuel granted (0: spent).
const RESERVE: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
local r = redis.call('GET', KEYS[1])
if not r then return -1 end
r = tonumber(r)
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then
  r = r + tonumber(prev)
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local want = tonumber(ARGV[2])
if r < want and redis.call('HLEN', KEYS[2]) > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', r))
  return -2
end
local g = math.min(want, r)
redis.call('SET', KEYS[1], string.format('%.0f', r - g))
if g > 0 then redis.call('HSET', KEYS[2], ARGV[1], string.format('%.0f', g)) end
return g
";

/// After a job: settle its reservation, record its result unless it has
/// one, and acknowledge (and delete) its entry; 1 if recorded.
const FINISH: &str = r"
local g = redis.call('HGET', KEYS[4], ARGV[1])
if g then
  redis.call('HDEL', KEYS[4], ARGV[1])
  local unused = tonumber(g) - tonumber(ARGV[3])
  if unused > 0 then redis.call('INCRBY', KEYS[3], string.format('%.0f', unused)) end
end
local recorded = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 1 then
  redis.call('XADD', KEYS[2], '*', 'result', ARGV[2])
  recorded = 1
end
redis.call('XACK', KEYS[5], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[5], ARGV[5])
return recorded
";

static RESERVE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RESERVE));
static FINISH_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(FINISH));

fn redis_error(what: &'static str) -> impl Fn(redis::RedisError) -> HostError {
    move |e| HostError::System {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

/// The keys of one batch.
#[derive(Debug, Clone)]
struct Keys {
    jobs: String,
    results: String,
    done: String,
    budget: String,
    held: String,
    cancelled: String,
}

impl Keys {
    fn new(prefix: &str, batch: &str) -> Keys {
        let b = format!("{prefix}:batch:{batch}");
        Keys {
            jobs: format!("{prefix}:jobs"),
            results: format!("{b}:results"),
            done: format!("{b}:done"),
            budget: format!("{b}:budget"),
            held: format!("{b}:held"),
            cancelled: format!("{b}:cancelled"),
        }
    }
}

async fn connect(url: &str) -> Result<MultiplexedConnection, HostError> {
    let client = redis::Client::open(url)
        .map_err(|e| HostError::Usage(format!("Redis URL `{url}`: {e}")))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(redis_error("cannot connect to Redis"))
}

async fn ensure_group(con: &mut MultiplexedConnection, stream: &str) -> Result<(), HostError> {
    let r: redis::RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(redis_error("cannot create the workers' consumer group")(e)),
    }
}

/// Where a distributed batch lives.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Key prefix ([`DEFAULT_PREFIX`]).
    pub prefix: String,
}

/// Submit `jobs` as batch `batch_id` and collect their results: the
/// returned [`Batch`] yields one result per job (jobs that already have one
/// in Redis under this id are not submitted again; their results come
/// back first). The budget, if any, is `opts.budget_total`.
pub async fn submit(
    target: &RedisTarget,
    batch_id: &str,
    mut jobs: Vec<Job>,
    opts: &BatchOptions,
    budget_total: Option<u64>,
) -> Result<Batch, HostError> {
    let keys = Keys::new(&target.prefix, batch_id);
    let mut con = connect(&target.url).await?;
    ensure_group(&mut con, &keys.jobs).await?;
    let e = redis_error("cannot submit the batch to Redis");
    if let Some(total) = budget_total {
        // Set once: resuming a batch keeps what is left of its budget.
        let _: bool = redis::cmd("SET")
            .arg(&keys.budget)
            .arg(total)
            .arg("NX")
            .query_async(&mut con)
            .await
            .map(|v: Option<String>| v.is_some())
            .map_err(&e)?;
    }
    let done: HashSet<String> = redis::cmd("HKEYS")
        .arg(&keys.done)
        .query_async::<Vec<String>>(&mut con)
        .await
        .map_err(&e)?
        .into_iter()
        .collect();
    let expected: HashSet<String> = jobs.iter().map(|j| j.id.clone()).collect();
    jobs.retain(|j| !done.contains(&j.id));
    // Workers may run elsewhere: a file is named by its absolute path (the
    // workers need it at that path, e.g. on a shared filesystem; manifests
    // with inline `source` need nothing).
    for job in &mut jobs {
        if let Some(p) = &job.path
            && p.is_relative()
            && !p.to_string_lossy().contains(':')
            && let Ok(abs) = std::path::absolute(p)
        {
            job.path = Some(abs);
        }
    }
    for chunk in jobs.chunks_mut(512) {
        let mut pipe = redis::pipe();
        for job in chunk.iter_mut() {
            fill(&mut job.limits, &opts.limits);
            if job.from.is_none() {
                job.from.clone_from(&opts.from);
            }
            let text = serde_json::to_string(job).map_err(|err| HostError::System {
                what: "cannot serialise a job",
                source: std::io::Error::other(err),
            })?;
            pipe.cmd("XADD")
                .arg(&keys.jobs)
                .arg("*")
                .arg("batch")
                .arg(batch_id)
                .arg("job")
                .arg(text)
                .ignore();
        }
        pipe.query_async::<()>(&mut con).await.map_err(&e)?;
    }

    let (tx, rx) = mpsc::channel(256);
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let url = target.url.clone();
    tokio::spawn(async move {
        if let Err(err) = collect(&url, keys, expected, tx, flag).await {
            tracing::error!("collecting the batch's results from Redis failed: {err}");
        }
    });
    Ok(Batch {
        results: rx,
        cancelled,
    })
}

/// Read the batch's results until every expected id has one.
async fn collect(
    url: &str,
    keys: Keys,
    mut expected: HashSet<String>,
    tx: mpsc::Sender<JobResult>,
    cancelled: Arc<AtomicBool>,
) -> Result<(), HostError> {
    let mut con = connect(url).await?;
    let e = redis_error("cannot read the batch's results from Redis");
    let mut last = "0-0".to_string();
    let mut told = false;
    while !expected.is_empty() {
        if cancelled.load(Ordering::Acquire) && !told {
            let _: () = redis::cmd("SET")
                .arg(&keys.cancelled)
                .arg(1)
                .arg("EX")
                .arg(BATCH_TTL_SECS)
                .query_async(&mut con)
                .await
                .map_err(&e)?;
            told = true;
        }
        let reply: ReadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(500)
            .arg("STREAMS")
            .arg(&keys.results)
            .arg(&last)
            .query_async(&mut con)
            .await
            .map_err(&e)?;
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                last = id;
                let Some(text) = field(&fields, "result") else {
                    continue;
                };
                let Some(r) = serde_json::from_str(text)
                    .ok()
                    .and_then(JobResult::from_value)
                else {
                    tracing::warn!("a result in Redis is not a result: skipped");
                    continue;
                };
                if expected.remove(r.id()) && tx.send(r).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    for key in [&keys.results, &keys.done, &keys.budget, &keys.held] {
        let _: redis::RedisResult<()> = redis::cmd("EXPIRE")
            .arg(key)
            .arg(BATCH_TTL_SECS)
            .query_async(&mut con)
            .await;
    }
    Ok(())
}

/// Stream entries as Redis returns them: id, then fields and values.
type Entries = Vec<(String, Vec<String>)>;
/// An `XREAD`/`XREADGROUP` reply: per stream, its entries (nil on timeout).
type ReadReply = Option<Vec<(String, Entries)>>;

fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks(2)
        .find(|kv| kv.first().map(String::as_str) == Some(name))
        .and_then(|kv| kv.get(1))
        .map(String::as_str)
}

/// How a worker consumes jobs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's consumer name in the group (unique per worker).
    pub consumer: String,
    /// Take over a job another worker has held this long without finishing.
    pub reclaim_after: Duration,
}

/// Consume jobs from Redis with `executor` until `stop` is set, then
/// finish the jobs in flight and return.
pub async fn run_worker(
    target: &RedisTarget,
    executor: Arc<dyn Executor>,
    opts: WorkerOptions,
    stop: Arc<AtomicBool>,
) -> Result<(), HostError> {
    let jobs_key = format!("{}:jobs", target.prefix);
    let mut reader = connect(&target.url).await?;
    let ops = connect(&target.url).await?;
    ensure_group(&mut reader, &jobs_key).await?;
    let e = redis_error("cannot read jobs from Redis");
    let lanes = executor.concurrency().max(1);
    let permits = Arc::new(Semaphore::new(lanes));
    let free_slots = Arc::new(std::sync::Mutex::new((0..lanes).collect::<Vec<_>>()));
    let mut cursor = "0-0".to_string();
    let mut next_reclaim = Instant::now();
    let reclaim_ms = opts.reclaim_after.as_millis().max(1) as u64;
    while !stop.load(Ordering::Acquire) {
        let Ok(first) = permits.clone().acquire_owned().await else {
            break;
        };
        // As many jobs as there are free lanes, in one read.
        let mut held = vec![first];
        while let Ok(p) = permits.clone().try_acquire_owned() {
            held.push(p);
        }
        // First any job a dead worker left, then new ones.
        let mut entries: Entries = Vec::new();
        if Instant::now() >= next_reclaim {
            let (next, claimed, _deleted): (String, Entries, Vec<String>) =
                redis::cmd("XAUTOCLAIM")
                    .arg(&jobs_key)
                    .arg(GROUP)
                    .arg(&opts.consumer)
                    .arg(reclaim_ms)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(held.len())
                    .query_async(&mut reader)
                    .await
                    .map_err(&e)?;
            if next == "0-0" && claimed.is_empty() {
                next_reclaim = Instant::now() + opts.reclaim_after / 4;
            }
            for (entry, _) in &claimed {
                tracing::warn!(entry = %entry, "taking over a job from a worker that stopped answering");
            }
            cursor = next;
            entries = claimed;
        }
        if entries.is_empty() {
            let reply: ReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&opts.consumer)
                .arg("COUNT")
                .arg(held.len())
                .arg("BLOCK")
                .arg(500)
                .arg("STREAMS")
                .arg(&jobs_key)
                .arg(">")
                .query_async(&mut reader)
                .await
                .map_err(&e)?;
            entries = reply
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(_, es)| es)
                .collect();
        }
        // Lanes left over go back when `held` is dropped.
        for ((entry, fields), permit) in entries.into_iter().zip(held.drain(..)) {
            let slot = free_slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or(0);
            let (executor, mut ops, prefix, jobs_key, slots) = (
                executor.clone(),
                ops.clone(),
                target.prefix.clone(),
                jobs_key.clone(),
                free_slots.clone(),
            );
            tokio::spawn(async move {
                if let Err(err) = handle(
                    &mut ops, &*executor, slot, &prefix, &jobs_key, &entry, &fields,
                )
                .await
                {
                    // Not acknowledged: another worker (or this one) takes it over.
                    tracing::error!(entry = %entry, "a job could not be finished: {err}");
                }
                slots.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
                drop(permit);
            });
        }
    }
    // Drain: wait until every job in flight has returned its permit.
    let _all = permits.acquire_many(lanes as u32).await;
    Ok(())
}

async fn handle(
    con: &mut MultiplexedConnection,
    executor: &dyn Executor,
    slot: usize,
    prefix: &str,
    jobs_key: &str,
    entry: &str,
    fields: &[String],
) -> Result<(), HostError> {
    let e = redis_error("a Redis command for a job failed");
    let ack = |con: &mut MultiplexedConnection| {
        let mut p = redis::pipe();
        p.cmd("XACK").arg(jobs_key).arg(GROUP).arg(entry).ignore();
        p.cmd("XDEL").arg(jobs_key).arg(entry).ignore();
        let mut con = con.clone();
        async move { p.query_async::<()>(&mut con).await }
    };
    let (Some(batch), Some(text)) = (field(fields, "batch"), field(fields, "job")) else {
        tracing::warn!(
            entry,
            "a jobs-stream entry without `batch` and `job`: dropped"
        );
        return ack(con).await.map_err(&e);
    };
    let keys = Keys::new(prefix, batch);
    let job: Job = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(err) => {
            tracing::warn!(entry, "a job in Redis is not a job ({err}): dropped");
            return ack(con).await.map_err(&e);
        }
    };
    let want = fuel_wanted(&job);
    let granted = loop {
        let g: i64 = RESERVE_SCRIPT
            .key(&keys.budget)
            .key(&keys.held)
            .key(&keys.cancelled)
            .arg(&job.id)
            .arg(want)
            .invoke_async(con)
            .await
            .map_err(&e)?;
        match g {
            -3 => break Err(CANCELLED),
            -2 => tokio::time::sleep(Duration::from_millis(20)).await,
            -1 => break Ok(None),
            0 => break Err("the batch's fuel budget is spent"),
            g => break Ok(Some(u64::try_from(g).unwrap_or(0))),
        }
    };
    let mut result = match granted {
        Err(reason) => JobResult::without_run(&job.id, NOT_RUN, reason, ""),
        Ok(Some(g)) => {
            let mut r = executor.execute(slot, job.clone(), Some(g)).await;
            if g < want {
                r.set("fuel_granted", g);
            }
            r
        }
        Ok(None) => executor.execute(slot, job.clone(), None).await,
    };
    if result.get("worker").is_none_or(|w| w.as_str() == Some("")) {
        result.set("worker", "redis");
    }
    let used = result.fuel().unwrap_or(0);
    let _recorded: i64 = FINISH_SCRIPT
        .key(&keys.done)
        .key(&keys.results)
        .key(&keys.budget)
        .key(&keys.held)
        .key(jobs_key)
        .arg(&job.id)
        .arg(result.to_line())
        .arg(used)
        .arg(GROUP)
        .arg(entry)
        .invoke_async(con)
        .await
        .map_err(&e)?;
    Ok(())
}
