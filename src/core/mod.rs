//! The pure core: compose annotations and rewrites, policies, planning and drift.
//!
//! Architecture invariant: nothing under `core` does I/O. No filesystem, network,
//! process, environment, clock or async runtime: it takes text and facts and
//! returns decisions, rewrites and diagnostics. Time is passed in.

pub mod annotation;
pub mod build;
pub mod compose;
pub mod convert;
pub mod diag;
pub mod doctor;
pub mod drift;
pub mod duration;
pub mod event;
pub mod interpolate;
pub mod notify;
pub mod observed;
pub mod plan;
pub mod policy;
pub mod quadlet;
pub mod range;
pub mod reference;
pub mod rewrite;
pub mod rollback;
pub mod scan;
pub mod schedule;
pub mod shape;
pub mod signature;
pub mod sigpolicy;
pub mod soak;
pub mod spec;
pub mod stacks;
pub mod trust;
pub mod unitplan;
