//! Profiles and sweeps: profile -> plan (list of cases) -> run loop -> results store.

pub mod devices;
pub mod plan;
pub mod profile;
pub mod record;
pub mod runner;
pub mod shipped;
pub mod store;
