//! vcs
