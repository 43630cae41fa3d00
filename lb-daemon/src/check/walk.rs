//! HTTP_GET and SSL_GET rounds as keepalived 2.2.7's check_http.c runs them (`epilog`,
//! `timeout_epilog`): one url per run, the next a `delay_loop` later; a failing url is retried
//! `retry` times `delay_before_retry` apart, and when the retries are spent the server goes
//! down and that url is marked failed (`failed_url`). While marked, only that url is checked,
//! every `max(delay_before_retry, delay_loop)`; its success clears the mark and the walk starts
//! again from the first url, and the server comes back when every url has passed.
//! `fast_recovery` skips the pause while the server is down and nothing is marked, and before
//! the first walk ends. Pure: the checker task probes `url()` and reports the result.

use std::time::Duration;

use super::Begin;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlWalk {
    pub up: bool,
    /// Every url has passed once, or a check has failed (keepalived's `has_run`).
    has_run: bool,
    retry_it: u32,
    retry: u32,
    urls: usize,
    /// The url checked next (`url_it`).
    at: usize,
    /// keepalived's `failed_url`.
    failed: Option<usize>,
    fast: bool,
    delay_loop: Duration,
    delay_before_retry: Duration,
}

/// The timings a walk follows (the checker's resolved ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub retry: u32,
    pub delay_loop: Duration,
    pub delay_before_retry: Duration,
    pub fast_recovery: bool,
}

impl UrlWalk {
    /// A walk over `urls` urls, starting up unless `alpha`. keepalived's start gives the first
    /// failure no retries ("one failure is enough initially"); a checker a reload starts
    /// gets them.
    pub fn new(urls: usize, up: bool, pace: Pace, begin: Begin) -> Self {
        Self {
            up,
            has_run: false,
            retry_it: if begin == Begin::Boot { pace.retry } else { 0 },
            retry: pace.retry,
            urls: urls.max(1),
            at: 0,
            failed: None,
            fast: pace.fast_recovery,
            delay_loop: pace.delay_loop,
            delay_before_retry: pace.delay_before_retry,
        }
    }

    /// The url to check now.
    pub fn url(&self) -> usize {
        self.at
    }

    /// Whether the walk has ended once (or failed), as keepalived's `has_run`.
    pub fn has_run(&self) -> bool {
        self.has_run
    }

    /// The checked url passed (`epilog(REGISTER_CHECKER_NEW)`): the pause before the next run.
    pub fn passed(&mut self) -> Duration {
        let next = self.at + 1;
        self.retry_it = 0;
        if next >= self.urls && self.failed.is_none() {
            // Every url passed.
            if !self.up || !self.has_run {
                self.up = true;
                self.has_run = true;
            }
            self.at = 0;
        } else if self.failed.is_some() {
            // The failed url passes again: start over from the first.
            self.failed = None;
            self.at = 0;
        } else {
            self.at = next;
        }
        if !self.has_run {
            self.retry_it = self.retry;
        }
        self.pause(self.delay_loop)
    }

    /// The checked url failed (`timeout_epilog`): the pause before the next run.
    pub fn failed(&mut self) -> Duration {
        if self.up || !self.has_run {
            self.has_run = true;
            self.retry_it += 1;
            if self.retry_it > self.retry {
                self.up = false;
                self.failed = Some(self.at);
            }
        }
        // A server already down fails as REGISTER_CHECKER_FAILED: nothing else changes.
        let pause = match self.failed {
            Some(_) => self.delay_before_retry.max(self.delay_loop),
            None => self.delay_before_retry,
        };
        self.pause(pause)
    }

    /// Whether the last failure was retried (the server still up, its retries not spent).
    pub fn retrying(&self) -> bool {
        self.up && self.retry_it > 0 && self.failed.is_none()
    }

    fn pause(&self, otherwise: Duration) -> Duration {
        if self.fast && (!self.has_run || (!self.up && self.failed.is_none())) { Duration::ZERO } else { otherwise }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn pace(retry: u32, fast: bool) -> Pace {
        Pace { retry, delay_loop: 6 * S, delay_before_retry: 3 * S, fast_recovery: fast }
    }

    /// Two urls, up, retry 1: each url a delay_loop apart; a failure retried once, then down
    /// with the url marked and checked every max(dbr, delay_loop); its success starts the
    /// walk over, and the server comes back when both have passed.
    #[test]
    fn one_url_a_round_and_back_after_a_whole_walk() {
        let mut w = UrlWalk::new(2, true, pace(1, false), Begin::Reload);
        assert_eq!((w.url(), w.passed(), w.url(), w.up), (0, 6 * S, 1, true));
        assert_eq!((w.passed(), w.url(), w.has_run()), (6 * S, 0, true));
        assert_eq!((w.passed(), w.url()), (6 * S, 1));
        // url 1 fails: retried after delay_before_retry, then down and marked.
        assert_eq!((w.failed(), w.up, w.url()), (3 * S, true, 1));
        assert!(w.retrying());
        assert_eq!((w.failed(), w.up, w.url()), (6 * S, false, 1));
        assert_eq!((w.failed(), w.up, w.url()), (6 * S, false, 1));
        // It passes: the mark goes, the walk starts over, still down.
        assert_eq!((w.passed(), w.up, w.url()), (6 * S, false, 0));
        assert_eq!((w.passed(), w.up, w.url()), (6 * S, false, 1));
        // Down, nothing marked: a failure waits delay_before_retry and marks nothing.
        assert_eq!((w.failed(), w.up, w.url()), (3 * S, false, 1));
        assert_eq!((w.passed(), w.up, w.url()), (6 * S, true, 0));
    }

    /// A url that fails and then passes within its retries resets them: the next failure is
    /// retried again. A marked url that is not the last: its success starts the walk over
    /// from the first, and the server comes back after the last.
    #[test]
    fn a_pass_resets_the_retries_and_a_marked_url_restarts_the_walk() {
        let mut w = UrlWalk::new(3, true, pace(1, false), Begin::Reload);
        for _ in 0..3 {
            w.passed();
        }
        assert_eq!((w.failed(), w.passed(), w.url()), (3 * S, 6 * S, 1));
        assert_eq!((w.failed(), w.up), (3 * S, true));
        assert_eq!((w.failed(), w.up, w.url()), (6 * S, false, 1));
        assert_eq!((w.passed(), w.url(), w.up), (6 * S, 0, false));
        assert_eq!((w.passed(), w.url()), (6 * S, 1));
        assert_eq!((w.passed(), w.url(), w.up), (6 * S, 2, false));
        assert_eq!((w.passed(), w.url(), w.up), (6 * S, 0, true));
    }

    /// fast_recovery: no pause while down with nothing marked, nor before the first walk ends.
    #[test]
    fn fast_recovery_skips_the_pauses_of_a_server_coming_back() {
        let mut w = UrlWalk::new(2, true, pace(0, true), Begin::Reload);
        assert_eq!(w.passed(), Duration::ZERO);
        assert_eq!(w.passed(), 6 * S);
        assert_eq!((w.failed(), w.up), (6 * S, false));
        assert_eq!((w.passed(), w.up), (Duration::ZERO, false));
        assert_eq!((w.passed(), w.up), (Duration::ZERO, false));
        assert_eq!((w.passed(), w.up), (6 * S, true));
        // Down with nothing marked: a failure is checked again at once too.
        assert_eq!((w.failed(), w.up), (6 * S, false));
        assert_eq!((w.passed(), w.up), (Duration::ZERO, false));
        assert_eq!((w.failed(), w.up), (Duration::ZERO, false));
    }

    /// At start the first failure takes the server down (keepalived sets retry_it = retry);
    /// during the first walk a url that fails has no retries either, at start or reload.
    #[test]
    fn no_retries_before_the_first_walk_ends() {
        let mut w = UrlWalk::new(1, true, pace(2, false), Begin::Boot);
        assert_eq!((w.failed(), w.up), (6 * S, false));
        let mut w = UrlWalk::new(2, true, pace(2, false), Begin::Reload);
        assert_eq!(w.passed(), 6 * S);
        assert_eq!((w.failed(), w.up), (6 * S, false));
        // After the first walk, a reload-started checker retries.
        let mut w = UrlWalk::new(1, true, pace(2, false), Begin::Reload);
        assert_eq!((w.failed(), w.up), (3 * S, true));
    }

    /// alpha: down until a whole walk passes; a failed first check marks its url (so its
    /// success only clears the mark).
    #[test]
    fn alpha_comes_up_after_a_whole_walk() {
        let mut w = UrlWalk::new(2, false, pace(1, false), Begin::Boot);
        assert_eq!((w.passed(), w.up), (6 * S, false));
        assert_eq!((w.passed(), w.up), (6 * S, true));
        let mut w = UrlWalk::new(1, false, pace(1, false), Begin::Boot);
        assert_eq!((w.failed(), w.up), (6 * S, false));
        assert_eq!((w.passed(), w.up), (6 * S, false));
        assert_eq!((w.passed(), w.up), (6 * S, true));
    }
}
