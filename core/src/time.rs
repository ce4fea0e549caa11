//! Time as plain data: milliseconds since the Unix epoch.
//!
//! Core never reads a clock. Every [`Input`](crate::Input) carries `now`; the
//! [`Authorizer`](crate::Authorizer) clamps time that goes backwards to the last value it saw, and
//! all arithmetic saturates.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in time: milliseconds since 1970-01-01T00:00:00Z.
///
/// Absolute rather than monotonic because token expiry outlives the process (it is persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// Builds a timestamp from whole seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// How long from `earlier` to `self`, or zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp(u64::MAX).saturating_add(Duration::from_secs(1)), Timestamp(u64::MAX));
        assert_eq!(Timestamp(5).saturating_sub(Duration::from_secs(1)), Timestamp(0));
        assert_eq!(Timestamp(5).duration_since(Timestamp(10)), Duration::ZERO);
        assert_eq!(Timestamp::from_secs(3).as_millis(), 3000);
        assert_eq!(Timestamp(1500).to_string(), "1.500s");
    }
}
