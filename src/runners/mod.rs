//! Test runners: the commands fixci builds for them and the outcomes it reads from their reports.

pub mod command;
pub mod outcome;
