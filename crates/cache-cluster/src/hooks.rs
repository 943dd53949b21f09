//! Fault injection for this crate's tests, compiled only with the cargo feature `test-hooks`
//! (the crate's tests enable it through a dev-dependency on the crate itself): cut a node off
//! from its peers, and make the leader's side of a join stop at chosen steps. Without the
//! feature every hook is a constant "off" in an empty struct, so a production node carries and
//! checks nothing.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
#[cfg(feature = "test-hooks")]
use std::sync::Arc;

/// Whether a node is cut off from every peer, both directions (shared by the node, its
/// listener and its outgoing connections).
#[derive(Clone, Default)]
pub struct Partition {
    #[cfg(feature = "test-hooks")]
    on: Arc<AtomicBool>,
}

impl Partition {
    #[inline]
    pub fn cut_off(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.on.load(Relaxed);
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    #[cfg(feature = "test-hooks")]
    pub fn set(&self, on: bool) {
        self.on.store(on, Relaxed);
    }
}

/// One-shot faults of the leader's side of the next join ([`crate::Cluster`]'s test hooks).
#[derive(Default)]
pub struct JoinHooks {
    #[cfg(feature = "test-hooks")]
    fail_promotion: AtomicBool,
    #[cfg(feature = "test-hooks")]
    stall_catch_up: AtomicBool,
    #[cfg(feature = "test-hooks")]
    half_promotion: AtomicBool,
}

macro_rules! one_shot {
    ($take:ident, $arm:ident, $field:ident) => {
        /// Whether the fault is armed (and disarm it).
        #[inline]
        pub fn $take(&self) -> bool {
            #[cfg(feature = "test-hooks")]
            return self.$field.swap(false, Relaxed);
            #[cfg(not(feature = "test-hooks"))]
            false
        }

        #[cfg(feature = "test-hooks")]
        pub fn $arm(&self) {
            self.$field.store(true, Relaxed);
        }
    };
}

impl JoinHooks {
    one_shot!(take_fail_promotion, arm_fail_promotion, fail_promotion);
    one_shot!(take_stall_catch_up, arm_stall_catch_up, stall_catch_up);
    one_shot!(take_half_promotion, arm_half_promotion, half_promotion);
}
