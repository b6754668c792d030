//! One retry delay policy for the project: start at `initial`, multiply by `factor`
//! after each failure up to `cap`, start again after a success.

use std::time::Duration;

/// Exponential backoff (a `factor` of 1 keeps the delay constant).
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    factor: u32,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, factor: u32, cap: Duration) -> Backoff {
        Backoff { initial, factor, cap, next: initial }
    }

    /// The same delay every time.
    pub const fn constant(delay: Duration) -> Backoff {
        Backoff::new(delay, 1, delay)
    }

    /// The delay to wait now; the one after it grows by `factor`, up to `cap`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(self.factor).min(self.cap);
        delay
    }

    /// What the next [`Backoff::next_delay`] will return, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), 2, ms(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        b.reset();
        assert_eq!(b.peek(), ms(100));
        let mut c = Backoff::constant(ms(5));
        assert_eq!((c.next_delay(), c.next_delay()), (ms(5), ms(5)));
    }
}
