//! A parallel map whose results come out in job order: the writers' pipeline.
//!
//! Worker threads (as many as the current rayon pool has) take jobs in order and run them; the
//! calling thread hands each result to a sink in job order as soon as it and all before it are
//! done, so compression never waits for the writing of a batch, and the output does not depend
//! on the thread count. At most a few results per thread wait for the sink (bounded memory).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Results a worker may run ahead of the sink, per thread.
const AHEAD_PER_THREAD: usize = 8;

struct State<R> {
    done: BTreeMap<usize, R>,
    /// The next job the sink takes.
    next_out: usize,
    /// The sink failed or a worker panicked: everyone stops.
    stop: bool,
}

struct Shared<R> {
    state: Mutex<State<R>>,
    /// A result arrived, or `stop`.
    ready: Condvar,
    /// The sink took a result, or `stop`.
    room: Condvar,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // A worker that panicked holds no lock while it runs a job; poisoning is no concern.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the sink when a worker unwinds, so it does not wait for a result that never comes.
struct PanicGuard<'a, R>(&'a Shared<R>);

impl<R> Drop for PanicGuard<'_, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().stop = true;
            self.0.ready.notify_all();
            self.0.room.notify_all();
        }
    }
}

/// Runs `work` on every job in parallel and calls `sink` with the results in job order; stops
/// at the first error of `sink` and returns it.
pub fn for_each<J: Sync, R: Send, E>(
    jobs: &[J],
    work: impl Fn(&J) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || jobs.len() < 2 {
        return jobs.iter().try_for_each(|j| sink(work(j)));
    }
    let window = AHEAD_PER_THREAD * threads;
    let next = AtomicUsize::new(0);
    let shared = Shared {
        state: Mutex::new(State {
            done: BTreeMap::new(),
            next_out: 0,
            stop: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
    };
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len()) {
            s.spawn(|| {
                let _guard = PanicGuard(&shared);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() {
                        return;
                    }
                    {
                        let mut st = shared.lock();
                        while i >= st.next_out + window && !st.stop {
                            st = shared.room.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                        if st.stop {
                            return;
                        }
                    }
                    let r = work(&jobs[i]);
                    let mut st = shared.lock();
                    st.done.insert(i, r);
                    if i == st.next_out {
                        shared.ready.notify_one();
                    }
                }
            });
        }
        for i in 0..jobs.len() {
            let r = {
                let mut st = shared.lock();
                loop {
                    if let Some(r) = st.done.remove(&i) {
                        st.next_out = i + 1;
                        break r;
                    }
                    if st.stop {
                        // A worker panicked: the scope passes its panic on.
                        return Ok(());
                    }
                    st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            shared.room.notify_all();
            if let Err(e) = sink(r) {
                shared.lock().stop = true;
                shared.room.notify_all();
                return Err(e);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_job_order_whatever_the_threads() {
        let jobs: Vec<u64> = (0..1000).collect();
        for threads in [1, 2, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut seen = Vec::new();
            pool.install(|| {
                super::for_each(
                    &jobs,
                    |&j| {
                        // Uneven work, so later jobs often finish first.
                        std::thread::sleep(std::time::Duration::from_micros((j * 7919) % 200));
                        j * 2
                    },
                    |r| {
                        seen.push(r);
                        Ok::<(), ()>(())
                    },
                )
            })
            .unwrap();
            assert_eq!(seen, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_sink_error_stops_the_run() {
        let jobs: Vec<u32> = (0..500).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut taken = 0;
        let r = pool.install(|| {
            super::for_each(
                &jobs,
                |&j| j,
                |j| {
                    taken += 1;
                    if j == 10 { Err(j) } else { Ok(()) }
                },
            )
        });
        assert_eq!(r, Err(10));
        assert_eq!(taken, 11);
    }
}
