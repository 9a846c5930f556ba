//! The single writer: one `std::thread` owning the only read-write connection.
//!
//! Callers send a job over a bounded channel and await its answer on a oneshot.
//! The thread takes whatever is queued (up to `max_batch` jobs), runs each in its
//! own `SAVEPOINT` inside one `BEGIN IMMEDIATE` transaction, so one job's failure
//! (a `Conflict`) rolls back only that job, then commits once and answers every
//! caller: group commit, one fsync per batch. A job answered `Ok` is committed.
//!
//! Touches only its own connection. The thread ends when the [`Writer`] is
//! dropped or closed, after finishing what was queued, and is joined then.

use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// How many jobs may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 1024;

/// A unit of work for the writer thread, type-erased.
trait Job: Send {
    /// Runs the job on the connection (inside its savepoint); `false` if it
    /// failed and its savepoint must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller; `batch` is the fate of the transaction the job's
    /// work was part of (an error if that work was not committed).
    fn answer(self: Box<Self>, batch: Result<(), &str>);
}

/// A typed job: the closure, then its result until answered.
struct Op<T, F> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Op<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Closed),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, batch: Result<(), &str>) {
        let result = match (self.result, batch) {
            (Some(Ok(_)), Err(why)) => {
                Err(StoreError::Unavailable(format!("sqlite write not committed: {why}")))
            }
            (Some(result), _) => result,
            (None, Err(why)) => Err(StoreError::Unavailable(format!("sqlite write not run: {why}"))),
            (None, Ok(())) => Err(StoreError::Closed),
        };
        // The caller may have gone away (cancelled); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// The handle on the writer thread.
pub struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (already configured and migrated).
    pub fn start(conn: Connection, max_batch: usize) -> StoreResult<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1)))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the sqlite writer: {e}")))?;
        Ok(Writer { jobs: Some(tx), thread: Some(thread) })
    }

    /// Runs `work` on the writer connection in its own savepoint and returns its
    /// result once the batch it was part of is committed.
    pub async fn call<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let op: Box<dyn Job> = Box::new(Op { work: Some(work), result: None, reply });
        jobs.send(op).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether the writer thread still takes jobs.
    pub fn is_running(&self) -> bool {
        self.jobs.as_ref().is_some_and(|jobs| !jobs.is_closed())
    }

    /// Stops taking jobs, lets the thread finish what is queued, and joins it.
    /// `Err(Closed)` if the thread had died.
    pub fn close(&mut self) -> StoreResult<()> {
        self.jobs = None;
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| StoreError::Closed),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.close().is_err() {
            tracing::error!("the sqlite writer thread had panicked");
        }
    }
}

/// The thread's loop: one batch per wake-up until every sender is gone.
fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::with_capacity(max_batch);
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
}

/// Runs and answers one batch.
fn run_batch(conn: &Connection, batch: Vec<Box<dyn Job>>) {
    let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        answer_all(jobs, Err(&e.to_string()));
        return;
    }
    while let Some(mut job) = jobs.next() {
        let step = run_one(conn, job.as_mut());
        if step.is_err() || conn.is_autocommit() {
            // SQLite ended the transaction (I/O error, disk full): the work of
            // the jobs before this one is gone too. Tell them, start afresh.
            let why = step.err().unwrap_or_else(|| "transaction rolled back".into());
            rollback(conn);
            answer_all(done.drain(..), Err(&why));
            job.answer(Err(&why));
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                answer_all(jobs, Err(&e.to_string()));
                return;
            }
            continue;
        }
        done.push(job);
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => answer_all(done.drain(..), Ok(())),
        Err(e) => {
            rollback(conn);
            answer_all(done.drain(..), Err(&e.to_string()));
        }
    }
}

/// One job inside its savepoint. `Err` only when the savepoint itself failed.
fn run_one(conn: &Connection, job: &mut dyn Job) -> Result<(), String> {
    conn.execute_batch("SAVEPOINT job").map_err(|e| e.to_string())?;
    let end = if job.run(conn) { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
    conn.execute_batch(end).map_err(|e| e.to_string())
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "sqlite rollback failed");
    }
}

fn answer_all(jobs: impl Iterator<Item = Box<dyn Job>>, batch: Result<(), &str>) {
    for job in jobs {
        job.answer(batch);
    }
}
