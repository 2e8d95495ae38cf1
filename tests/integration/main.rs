//! Integration tests: one binary, one module per area. They drive the real `fixci` binary against
//! real git repositories, real processes and real files.

mod agents;
mod architecture;
mod cleanup;
mod ci_event;
mod common;
mod contain;
mod doctor;
mod faults;
mod feature;
mod flaky;
mod forge;
mod gate;
mod ladder;
mod lifecycle;
mod logs;
mod private_clone;
mod replay;
mod replay_gold;
mod replay_realbugs;
mod replay_report;
mod rules;
mod run;
mod specs;
mod stress;
mod verdict;
